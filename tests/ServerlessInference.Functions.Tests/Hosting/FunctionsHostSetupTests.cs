using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ServerlessInference.Functions.Hosting;
using ServerlessInference.Functions.Scaling;
using OpenTelemetry.Metrics;
using ServerlessInference.Hosting;
using ServerlessInference.Hosting.Providers;
using ServerlessInference.Scaling;

namespace ServerlessInference.Functions.Tests.Hosting;

public sealed class FunctionsHostSetupTests
{
    private static HostApplicationBuilder Builder(IReadOnlyDictionary<string, string?> settings)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(settings);
        return builder;
    }

    [Fact]
    public void AddFunctionsHost_NothingSet_SharedProvidersContainerAppsAndAWaitUnder230Seconds()
    {
        var builder = Builder(new Dictionary<string, string?>
        {
            ["Inference:Orchestrator:ContainerApps:SubscriptionId"] = "00000000-1111-2222-3333-444444444444",
        }).AddFunctionsHost();

        Assert.Equal("ServiceBus", builder.Configuration["Inference:Queue:Provider"]);
        Assert.Equal("Redis", builder.Configuration["Inference:Results:Provider"]);
        Assert.Equal("Redis", builder.Configuration["Inference:Registry:Provider"]);
        Assert.Equal("Blob", builder.Configuration["Inference:ModelStore:Provider"]);
        Assert.Equal("ContainerApps", builder.Configuration["Inference:Orchestrator:Provider"]);
        Assert.True(TimeSpan.Parse(builder.Configuration["Inference:Gateway:MaxWait"]!, System.Globalization.CultureInfo.InvariantCulture) < TimeSpan.FromSeconds(230));

        // The composition registered exactly those providers, the scaler without a background service, and metrics.
        Assert.Equal(new ProviderChoice("ServiceBus", "Redis", "Redis", "Blob", "ContainerApps"), Single<ProviderChoice>(builder));
        Assert.Contains(builder.Services, d => d.ServiceType == typeof(ServerlessInference.Azure.Jobs.ServiceBusJobQueue));
        Assert.Contains(builder.Services, d => d.ServiceType == typeof(ServerlessInference.Redis.RedisResultStore));
        Assert.Contains(builder.Services, d => d.ServiceType == typeof(ServerlessInference.Redis.RedisWorkerRegistry));
        Assert.Contains(builder.Services, d => d.ServiceType == typeof(Scaler));
        Assert.DoesNotContain(builder.Services, d => d.ServiceType == typeof(ScalerService));
        Assert.Contains(builder.Services, d => d.ServiceType == typeof(MeterProvider));

        // The scaler's placement inputs: the manifests, and a board the workers read, Redis beside the registry (the
        // in-process board is an instance, which workers in another app could never see).
        Assert.Contains(builder.Services, d => d.ServiceType == typeof(ServerlessInference.Models.ModelCatalog));
        var board = builder.Services.Last(d => d.ServiceType == typeof(IPlacementBoard));
        Assert.Null(board.ImplementationInstance);
        Assert.NotNull(board.ImplementationFactory);
    }

    [Fact]
    public void AddFunctionsHost_Webhooks_DispatcherRunsOverTheRedisOutbox()
    {
        var builder = Builder(new Dictionary<string, string?> { ["Inference:Orchestrator:Provider"] = "Kubernetes" }).AddFunctionsHost();

        // Any instance delivers any webhook: the outbox is in Redis beside the results, not in the instance's memory.
        Assert.Contains(builder.Services, d => d.ServiceType == typeof(Microsoft.Extensions.Hosting.IHostedService)
            && d.ImplementationType == typeof(ServerlessInference.Webhooks.WebhookDispatcherService));
        Assert.Null(Assert.Single(builder.Services, d => d.ServiceType == typeof(ServerlessInference.Webhooks.IWebhookOutbox)).ImplementationType);
        Assert.Contains(builder.Services, d => d.ServiceType == typeof(ServerlessInference.Redis.RedisWebhookOutbox));
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("http://127.0.0.1:4317", true)]
    public void AddFunctionsHost_OtlpEndpoint_TracesOnlyWhenSet(string? endpoint, bool traced)
    {
        var builder = Builder(new Dictionary<string, string?>
        {
            ["Inference:Orchestrator:Provider"] = "Kubernetes",
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint,
        }).AddFunctionsHost();

        Assert.Equal(traced, builder.Services.Any(d => d.ServiceType == typeof(OpenTelemetry.Trace.TracerProvider)));
    }

    [Theory]
    [InlineData("ContainerApps", typeof(ServerlessInference.Azure.Scaling.ContainerAppsWorkerOrchestrator))]
    [InlineData("kubernetes", typeof(ServerlessInference.Kubernetes.KubernetesWorkerOrchestrator))]
    public void AddFunctionsHost_CloudOrchestrator_RegistersThatOrchestrator(string provider, Type expected)
    {
        var builder = Builder(new Dictionary<string, string?> { ["Inference:Orchestrator:Provider"] = provider }).AddFunctionsHost();

        var registered = Assert.Single(builder.Services, d => d.ServiceType == typeof(IWorkerOrchestrator));
        Assert.Contains(builder.Services, d => d.ServiceType == expected);
        Assert.NotNull(registered.ImplementationFactory);
    }

    [Theory]
    [InlineData("InProcess")]
    [InlineData("ChildProcess")]
    public void AddFunctionsHost_WorkersInsideTheApp_FailsNamingTheSetting(string provider)
    {
        var builder = Builder(new Dictionary<string, string?> { ["Inference:Orchestrator:Provider"] = provider });

        var error = Assert.Throws<InvalidOperationException>(() => builder.AddFunctionsHost());

        Assert.Contains("Inference:Orchestrator:Provider", error.Message);
        Assert.Contains("Inference__Orchestrator__Provider", error.Message);
        Assert.Contains("ContainerApps or Kubernetes", error.Message);
    }

    [Fact]
    public void AddFunctionsHost_ExplicitSetting_Wins()
    {
        var builder = Builder(new Dictionary<string, string?>
        {
            ["Inference:Queue:Provider"] = "Redis",
            ["Inference:Orchestrator:Provider"] = "Kubernetes",
        }).AddFunctionsHost();

        Assert.Equal("Redis", builder.Configuration["Inference:Queue:Provider"]);
        Assert.Equal("Kubernetes", builder.Configuration["Inference:Orchestrator:Provider"]);
        Assert.Equal("Redis", Single<ProviderChoice>(builder).Queue);
    }

    [Theory]
    [InlineData("Inference:Queue:Provider")]
    [InlineData("Inference:Results:Provider")]
    [InlineData("Inference:Registry:Provider")]
    public void AddFunctionsHost_EmbeddedSharedContract_FailsNamingTheSetting(string setting)
    {
        var builder = Builder(new Dictionary<string, string?> { [setting] = "Embedded" });

        var ex = Assert.Throws<InvalidOperationException>(() => builder.AddFunctionsHost());

        Assert.Contains(setting, ex.Message);
        Assert.Contains(setting.Replace(":", "__", StringComparison.Ordinal), ex.Message);
    }

    [Fact]
    public void LocalSettingsSample_HasTheHostSettingsAndTheScalerSchedule()
    {
        var values = SampleValues();

        Assert.Equal("UseDevelopmentStorage=true", values["AzureWebJobsStorage"]);
        Assert.Equal("dotnet-isolated", values["FUNCTIONS_WORKER_RUNTIME"]);
        Assert.Equal(ScalerFunction.DefaultSchedule, values[ScalerFunction.ScheduleSetting]);
        Assert.Equal(6, ScalerFunction.DefaultSchedule.Split(' ').Length); // NCRONTAB with seconds
        Assert.Contains("UseDevelopmentEmulator=true", values["Inference__ServiceBus__ConnectionString"]);
    }

    [Fact]
    public async Task LocalSettingsSample_PassesStartUpValidation()
    {
        // The Functions host hands app settings to the worker as environment variables: '__' stands for ':'.
        var settings = SampleValues().ToDictionary(v => v.Key.Replace("__", ":", StringComparison.Ordinal), v => (string?)v.Value);

        // The one setting docs/azure.md asks a local run to add: func start runs outside the cluster.
        var kubeConfig = Path.GetTempFileName();
        settings["Inference:Orchestrator:Kubernetes:KubeConfigPath"] = kubeConfig;
        var builder = Builder(settings).AddFunctionsHost();
        using var host = builder.Build();

        try
        {
            await host.StartAsync(); // runs ValidateOnStart for every options class the composition registered
            await host.StopAsync();
        }
        finally
        {
            File.Delete(kubeConfig);
        }
    }

    private static T Single<T>(HostApplicationBuilder builder) =>
        Assert.IsType<T>(Assert.Single(builder.Services, d => d.ServiceType == typeof(T)).ImplementationInstance);

    private static Dictionary<string, string> SampleValues()
    {
        using var json = JsonDocument.Parse(File.ReadAllText(RepoFiles.Path("local.settings.sample.json")));
        Assert.False(json.RootElement.GetProperty("IsEncrypted").GetBoolean());
        return json.RootElement.GetProperty("Values").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
    }
}
