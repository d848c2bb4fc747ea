using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ServerlessInference.Azure;
using ServerlessInference.Functions.Hosting;
using ServerlessInference.Functions.Scaling;
using ServerlessInference.Hosting;
using ServerlessInference.Redis;
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
    public void UseFunctionsDefaults_NothingSet_SharedProvidersContainerAppsAndAWaitUnder230Seconds()
    {
        var builder = Builder(new Dictionary<string, string?>()).UseFunctionsDefaults();

        Assert.Equal("ServiceBus", builder.Configuration["Inference:Queue:Provider"]);
        Assert.Equal("Redis", builder.Configuration["Inference:Results:Provider"]);
        Assert.Equal("Redis", builder.Configuration["Inference:Registry:Provider"]);
        Assert.Equal("Blob", builder.Configuration["Inference:ModelStore:Provider"]);
        Assert.Equal("ContainerApps", builder.Configuration["Inference:Orchestrator:Provider"]);
        Assert.True(TimeSpan.Parse(builder.Configuration["Inference:Gateway:MaxWait"]!, System.Globalization.CultureInfo.InvariantCulture) < TimeSpan.FromSeconds(230));
    }

    [Theory]
    [InlineData("ContainerApps", typeof(ServerlessInference.Azure.Scaling.ContainerAppsWorkerOrchestrator))]
    [InlineData("kubernetes", typeof(ServerlessInference.Kubernetes.KubernetesWorkerOrchestrator))]
    public void AddWorkerOrchestrator_CloudProvider_RegistersThatOrchestrator(string provider, Type expected)
    {
        var builder = Builder(new Dictionary<string, string?> { ["Inference:Orchestrator:Provider"] = provider });

        builder.Services.AddWorkerOrchestrator(builder.Configuration);

        var registered = Assert.Single(builder.Services, d => d.ServiceType == typeof(IWorkerOrchestrator));
        Assert.Contains(builder.Services, d => d.ServiceType == expected);
        Assert.NotNull(registered.ImplementationFactory);
    }

    [Theory]
    [InlineData("InProcess")]
    [InlineData("ChildProcess")]
    public void AddWorkerOrchestrator_WorkersInsideTheApp_FailsNamingTheSetting(string provider)
    {
        var builder = Builder(new Dictionary<string, string?> { ["Inference:Orchestrator:Provider"] = provider });

        var error = Assert.Throws<InvalidOperationException>(() => builder.Services.AddWorkerOrchestrator(builder.Configuration));

        Assert.Contains("Inference:Orchestrator:Provider", error.Message);
        Assert.Contains("Inference__Orchestrator__Provider", error.Message);
    }

    [Fact]
    public void UseFunctionsDefaults_ExplicitSetting_Wins()
    {
        var builder = Builder(new Dictionary<string, string?>
        {
            ["Inference:Queue:Provider"] = "Redis",
            ["Inference:Orchestrator:Provider"] = "Kubernetes",
        }).UseFunctionsDefaults();

        Assert.Equal("Redis", builder.Configuration["Inference:Queue:Provider"]);
        Assert.Equal("Kubernetes", builder.Configuration["Inference:Orchestrator:Provider"]);
    }

    [Theory]
    [InlineData("Inference:Queue:Provider")]
    [InlineData("Inference:Results:Provider")]
    [InlineData("Inference:Registry:Provider")]
    public void UseFunctionsDefaults_EmbeddedSharedContract_FailsNamingTheSetting(string setting)
    {
        var builder = Builder(new Dictionary<string, string?> { [setting] = "Embedded" });

        var ex = Assert.Throws<InvalidOperationException>(() => builder.UseFunctionsDefaults());

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
        var builder = Builder(settings).UseFunctionsDefaults();
        builder.Services
            .AddServerlessInference(builder.Configuration)
            .AddRedisProviders(builder.Configuration)
            .AddBlobModelStore(builder.Configuration)
            .AddGatewayFunctions();
        builder.Services.AddSingleton<IWorkerOrchestrator>(new NoWorkers());
        using var host = builder.Build();

        await host.StartAsync(); // runs ValidateOnStart for every options class registered above
        await host.StopAsync();
    }

    private static Dictionary<string, string> SampleValues()
    {
        using var json = JsonDocument.Parse(File.ReadAllText(RepoFiles.Path("local.settings.sample.json")));
        Assert.False(json.RootElement.GetProperty("IsEncrypted").GetBoolean());
        return json.RootElement.GetProperty("Values").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
    }

    private sealed class NoWorkers : IWorkerOrchestrator
    {
        public ValueTask<int> GetReplicasAsync(CancellationToken cancellationToken) => ValueTask.FromResult(0);

        public ValueTask SetReplicasAsync(int replicas, CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }
}
