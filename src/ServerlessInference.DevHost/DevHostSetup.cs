using Microsoft.Extensions.Configuration.Memory;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using ServerlessInference.Azure;
using ServerlessInference.DevHost.Services;
using ServerlessInference.Hosting;
using ServerlessInference.Onnx;
using ServerlessInference.Redis;
using ServerlessInference.Scaling;
using ServerlessInference.Telemetry;

namespace ServerlessInference.DevHost;

/// <summary>The DevHost's wiring: the whole platform in one process on embedded providers, or (profile
/// <c>services</c>) a gateway and scaler over Redis (or Service Bus for the queue) and Blob storage with workers as
/// child processes.</summary>
public static class DevHostSetup
{
    public const string DefaultUrl = "http://127.0.0.1:7071";
    public const string ServicesProfile = "services";

    /// <summary>What the services profile assumes unless configured otherwise: the providers, and the addresses
    /// <c>infra/local/services.sh start</c> prints.</summary>
    public static IReadOnlyDictionary<string, string?> ServicesDefaults { get; } = new Dictionary<string, string?>
    {
        [ProviderSettings.Queue.Key] = ProviderSettings.Redis,
        [ProviderSettings.Results.Key] = ProviderSettings.Redis,
        [ProviderSettings.Registry.Key] = ProviderSettings.Redis,
        [ProviderSettings.ModelStore.Key] = ProviderSettings.Blob,
        ["Inference:Redis:ConnectionString"] = "127.0.0.1:6379",
        ["Inference:ModelStore:Blob:ConnectionString"] =
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
    };

    public static bool IsServicesProfile(IConfiguration configuration) =>
        string.Equals(configuration["profile"], ServicesProfile, StringComparison.OrdinalIgnoreCase);

    public static WebApplicationBuilder AddDevHost(this WebApplicationBuilder builder)
    {
        if (string.IsNullOrEmpty(builder.Configuration["urls"]) && string.IsNullOrEmpty(builder.Configuration["ASPNETCORE_URLS"]))
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }

        var services = IsServicesProfile(builder.Configuration);
        if (services)
        {
            // Lowest priority: every explicit setting (appsettings, environment, command line) still wins.
            builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = ServicesDefaults });
        }

        builder.Services
            .AddServerlessInference(builder.Configuration)
            .AddRedisProviders(builder.Configuration)
            .AddServiceBusJobQueue(builder.Configuration)
            .AddBlobModelStore(builder.Configuration);
        if (services)
        {
            builder.Services.AddOptions<ChildProcessOptions>().BindConfiguration("Inference:Workers")
                .Validate(o => o.DrainTimeout > TimeSpan.Zero, "Inference:Workers:DrainTimeout must be positive")
                .ValidateOnStart();
            builder.Services.AddSingleton<ChildProcessWorkerOrchestrator>();
            builder.Services.AddSingleton<IWorkerOrchestrator>(sp => sp.GetRequiredService<ChildProcessWorkerOrchestrator>());
            builder.Services.AddScaler();
        }
        else
        {
            builder.Services.AddOnnxEngine(builder.Configuration).AddInProcessWorkers();
        }

        builder.Services.AddOptions<DemoModelOptions>().BindConfiguration("Inference:DemoModels");
        builder.Services.AddHostedService<DemoModelSeeder>();
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("serverless-inference-devhost"))
            .WithMetrics(metrics => metrics
                .AddMeter(InferenceMetrics.MeterName)
                .AddPrometheusExporter());
        return builder;
    }
}
