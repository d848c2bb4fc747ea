using Microsoft.Extensions.Configuration.Memory;
using ServerlessInference.Hosting;
using ServerlessInference.Hosting.Providers;

namespace ServerlessInference.DevHost;

/// <summary>The DevHost's wiring: the whole platform in one process on embedded providers, or (profile
/// <c>services</c>) a gateway and scaler over Redis (or Service Bus for the queue) and Blob storage whose workers run
/// elsewhere: child processes by default, or a Kubernetes Deployment or an Azure Container App
/// (<c>Inference:Orchestrator:Provider</c>). The providers are chosen by the shared composition
/// (<see cref="InferencePlatform"/>); this host adds its address, its profile's defaults and the demo models.</summary>
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
        [ProviderSettings.Orchestrator.Key] = ProviderSettings.ChildProcess,
        ["Inference:Redis:ConnectionString"] = "127.0.0.1:6379",
        ["Inference:ModelStore:Blob:ConnectionString"] =
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
    };

    /// <summary>The DevHost as the composition sees it: a gateway that may run any orchestrator, with the services
    /// profile's defaults when <paramref name="servicesProfile"/>.</summary>
    public static InferenceHost Host(bool servicesProfile) => new()
    {
        ServiceName = "serverless-inference-devhost",
        Role = InferenceHostRole.Gateway,
        SharedProvidersHint = $", run with --profile {ServicesProfile}, or set {ProviderSettings.Orchestrator.Key} to {ProviderSettings.InProcess}",
        Defaults = servicesProfile ? ServicesDefaults : new Dictionary<string, string?>(),
    };

    /// <summary>The host a command line tool (<c>keys</c>, <c>models</c>) runs its providers in: the DevHost's settings
    /// and profile defaults from <paramref name="settings"/>, the providers they choose, and whatever
    /// <paramref name="addServices"/> adds.</summary>
    public static (IHost Host, ProviderChoice Choice) CommandHost(IEnumerable<string> settings, Action<IServiceCollection>? addServices = null)
    {
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = [.. settings] });
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource { InitialData = Host(IsServicesProfile(builder.Configuration)).Defaults });
        var choice = ProviderChoice.Read(builder.Configuration);
        addServices?.Invoke(builder.Services);
        builder.Services.AddProviders(choice);
        return (builder.Build(), choice);
    }

    public static bool IsServicesProfile(IConfiguration configuration) =>
        string.Equals(configuration["profile"], ServicesProfile, StringComparison.OrdinalIgnoreCase);

    public static WebApplicationBuilder AddDevHost(this WebApplicationBuilder builder)
    {
        builder.UseDefaultUrl(DefaultUrl);
        builder.UseKestrelLimits();
        builder.UseManagementUrl();
        builder.AddInferencePlatform(Host(IsServicesProfile(builder.Configuration)));
        builder.Services.AddHostedService<ListenAddressCheck>(); // before the server listens: the loopback rule
        builder.Services.AddOptions<DemoModelOptions>().BindConfiguration(DemoModelOptions.Section).ValidateOnStart();
        builder.Services.AddHostedService<DemoModelSeeder>();
        return builder;
    }
}
