using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ServerlessInference.Azure.Scaling;
using ServerlessInference.Hosting.Orchestration;
using ServerlessInference.Embedded;
using ServerlessInference.Kubernetes;
using ServerlessInference.Scaling;

namespace ServerlessInference.DevHost.Tests;

/// <summary>Start-up with each <c>Inference:Orchestrator:Provider</c>. Hosts over Redis point at a loopback port where
/// nothing listens: the Redis providers connect lazily, so the host starts and its scaler ticks fail and are logged,
/// never reaching the orchestrator's API.</summary>
public sealed class OrchestratorStartupTests : IDisposable
{
    private const string Orchestrator = "Inference:Orchestrator:Provider";

    private readonly string _root = Path.Combine(Path.GetTempPath(), "si-orchestrator-startup-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public void Start_UnknownOrchestrator_FailsNamingTheSetting()
    {
        using var host = Host(new() { [Orchestrator] = "Nomad" });

        var ex = Assert.ThrowsAny<Exception>(() => host.Server);

        Assert.Contains($"{Orchestrator} is 'Nomad'; known providers: InProcess, ChildProcess, ContainerApps, Kubernetes", ex.ToString());
    }

    [Theory]
    [InlineData("ChildProcess")]
    [InlineData("ContainerApps")]
    [InlineData("Kubernetes")]
    public void Start_OutOfProcessOrchestratorOverEmbeddedProviders_FailsNamingTheSettings(string orchestrator)
    {
        using var host = Host(new() { [Orchestrator] = orchestrator });

        var ex = Assert.ThrowsAny<Exception>(() => host.Server);

        var message = ex.ToString();
        Assert.Contains($"{Orchestrator} is {orchestrator}", message);
        Assert.Contains("Inference:Queue:Provider, Inference:Results:Provider, Inference:Registry:Provider", message);
    }

    [Fact]
    public void Start_Default_RunsWorkersInProcess()
    {
        using var host = Host(new());

        Assert.IsType<InProcessWorkerOrchestrator>(host.Services.GetRequiredService<IWorkerOrchestrator>());
    }

    [Fact]
    public void Start_ServicesProfile_DefaultsToChildProcesses()
    {
        using var host = Host(Services());

        Assert.IsType<ChildProcessWorkerOrchestrator>(host.Services.GetRequiredService<IWorkerOrchestrator>());
    }

    [Fact]
    public async Task Start_ServicesProfileWithKubernetes_DrivesTheDeploymentAndServes()
    {
        var settings = Services();
        settings[Orchestrator] = "Kubernetes";
        settings["Inference:Orchestrator:Kubernetes:KubeConfigPath"] = KubeConfig();
        settings["Inference:Orchestrator:Kubernetes:Namespace"] = "inference";
        using var host = Host(settings);

        var orchestrator = Assert.IsType<KubernetesWorkerOrchestrator>(host.Services.GetRequiredService<IWorkerOrchestrator>());
        using var client = host.CreateClient();
        var live = await client.GetAsync(new Uri("/v2/health/live", UriKind.Relative));

        Assert.Equal("inference", orchestrator.Namespace);
        Assert.Equal("serverless-inference-worker", orchestrator.Deployment);
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
    }

    [Fact]
    public void Start_ServicesProfileWithKubernetesOutsideAClusterWithoutKubeConfig_FailsNamingTheSetting()
    {
        var settings = Services();
        settings[Orchestrator] = "Kubernetes";
        using var host = Host(settings);

        var ex = Assert.ThrowsAny<Exception>(() => host.Server);

        Assert.Contains(nameof(OptionsValidationException), ex.ToString());
        Assert.Contains("Inference:Orchestrator:Kubernetes:KubeConfigPath", ex.ToString());
    }

    [Fact]
    public void Start_ServicesProfileWithContainerApps_DrivesTheApp()
    {
        var settings = Services();
        settings[Orchestrator] = "ContainerApps";
        settings["Inference:Orchestrator:ContainerApps:SubscriptionId"] = "00000000-1111-2222-3333-444444444444";
        settings["Inference:Orchestrator:ContainerApps:ResourceGroup"] = "rg-inference";
        settings["Inference:Orchestrator:ContainerApps:AppName"] = "si-worker";
        using var host = Host(settings);

        var orchestrator = Assert.IsType<ContainerAppsWorkerOrchestrator>(host.Services.GetRequiredService<IWorkerOrchestrator>());

        Assert.EndsWith("/resourceGroups/rg-inference/providers/Microsoft.App/containerApps/si-worker?api-version=2025-07-01", orchestrator.AppUri.AbsoluteUri);
    }

    [Fact]
    public void Start_ServicesProfileWithContainerAppsUnconfigured_FailsNamingTheSettings()
    {
        var settings = Services();
        settings[Orchestrator] = "ContainerApps";
        using var host = Host(settings);

        var ex = Assert.ThrowsAny<Exception>(() => host.Server);

        Assert.Contains(nameof(OptionsValidationException), ex.ToString());
        Assert.Contains("Inference:Orchestrator:ContainerApps:SubscriptionId", ex.ToString());
        Assert.Contains("Inference:Orchestrator:ContainerApps:AppName", ex.ToString());
    }

    private DevHostFactory Host(Dictionary<string, string?> settings)
    {
        settings["Inference:DemoModels:Seed"] = "false";
        return new DevHostFactory(_root, settings);
    }

    /// <summary>The services profile on backing services that are not there (nothing listens on port 1).</summary>
    private static Dictionary<string, string?> Services() => new()
    {
        ["profile"] = "services",
        ["Inference:Redis:ConnectionString"] = "127.0.0.1:1,connectTimeout=200",
        ["Inference:ModelStore:Blob:ConnectionString"] =
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;",
    };

    private string KubeConfig()
    {
        Directory.CreateDirectory(_root);
        var path = Path.Combine(_root, "kubeconfig");
        File.WriteAllText(path, """
            apiVersion: v1
            kind: Config
            clusters:
            - name: nowhere
              cluster:
                server: https://127.0.0.1:1
            users:
            - name: tester
              user:
                token: not-a-real-token
            contexts:
            - name: nowhere
              context:
                cluster: nowhere
                user: tester
            current-context: nowhere
            """);
        return path;
    }
}
