using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Scaling;

namespace ServerlessInference.Kubernetes.Tests;

public sealed class KubernetesOrchestratorOptionsTests : IDisposable
{
    private const string Section = "Inference:Orchestrator:Kubernetes";

    private readonly string _folder = Directory.CreateTempSubdirectory("si-kubeconfig-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Failures_InClusterWithDefaults_None() =>
        Assert.Empty(KubernetesOrchestratorOptionsValidator.Failures(new KubernetesOrchestratorOptions(), inCluster: true));

    [Fact]
    public void Failures_OutsideAClusterWithoutKubeConfig_NamesKubeConfigPath()
    {
        var failure = Assert.Single(KubernetesOrchestratorOptionsValidator.Failures(new KubernetesOrchestratorOptions(), inCluster: false));

        Assert.StartsWith($"{Section}:KubeConfigPath", failure);
    }

    [Fact]
    public void Failures_KubeConfigPathMissingFile_NamesTheSetting()
    {
        var failure = Assert.Single(KubernetesOrchestratorOptionsValidator.Failures(
            new KubernetesOrchestratorOptions { KubeConfigPath = Path.Combine(_folder, "absent") }, inCluster: true));

        Assert.StartsWith($"{Section}:KubeConfigPath names no file", failure);
    }

    [Theory]
    [InlineData("Worker")]
    [InlineData("-worker")]
    [InlineData("worker_1")]
    [InlineData("")]
    public void Failures_BadDeploymentName_NamesTheSetting(string deployment)
    {
        var failure = Assert.Single(KubernetesOrchestratorOptionsValidator.Failures(new KubernetesOrchestratorOptions { Deployment = deployment }, inCluster: true));

        Assert.StartsWith($"{Section}:Deployment", failure);
    }

    [Fact]
    public void Failures_BadNamespace_NamesTheSetting()
    {
        var failure = Assert.Single(KubernetesOrchestratorOptionsValidator.Failures(new KubernetesOrchestratorOptions { Namespace = "My.Namespace" }, inCluster: true));

        Assert.StartsWith($"{Section}:Namespace", failure);
    }

    [Fact]
    public void Create_KubeConfigWithoutNamespaceSetting_UsesTheContextNamespace()
    {
        using var orchestrator = KubernetesServiceCollectionExtensions.Create(
            new KubernetesOrchestratorOptions { KubeConfigPath = KubeConfig(contextNamespace: "inference") }, NullLogger<KubernetesWorkerOrchestrator>.Instance);

        Assert.Equal("inference", orchestrator.Namespace);
        Assert.Equal(KubernetesOrchestratorOptions.DefaultDeployment, orchestrator.Deployment);
    }

    [Fact]
    public void Create_KubeConfigWithoutAnyNamespace_UsesDefault()
    {
        using var orchestrator = KubernetesServiceCollectionExtensions.Create(
            new KubernetesOrchestratorOptions { KubeConfigPath = KubeConfig(contextNamespace: null) }, NullLogger<KubernetesWorkerOrchestrator>.Instance);

        Assert.Equal("default", orchestrator.Namespace);
    }

    [Fact]
    public void AddKubernetesOrchestrator_Settings_ResolvesTheOrchestratorForThem()
    {
        using var provider = Provider(new Dictionary<string, string?>
        {
            [$"{Section}:KubeConfigPath"] = KubeConfig(contextNamespace: "inference"),
            [$"{Section}:Namespace"] = "gpu-workers",
            [$"{Section}:Deployment"] = "workers-a100",
        });

        var orchestrator = Assert.IsType<KubernetesWorkerOrchestrator>(provider.GetRequiredService<IWorkerOrchestrator>());

        Assert.Equal("gpu-workers", orchestrator.Namespace);
        Assert.Equal("workers-a100", orchestrator.Deployment);
    }

    [Fact]
    public void AddKubernetesOrchestrator_BadSetting_FailsValidationNamingIt()
    {
        using var provider = Provider(new Dictionary<string, string?>
        {
            [$"{Section}:KubeConfigPath"] = KubeConfig(contextNamespace: null),
            [$"{Section}:Deployment"] = "Not_A_Name",
        });

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<KubernetesOrchestratorOptions>>().Value);

        Assert.Contains($"{Section}:Deployment", ex.Message);
    }

    private static ServiceProvider Provider(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        return new ServiceCollection().AddLogging().AddSingleton<IConfiguration>(configuration).AddKubernetesOrchestrator().BuildServiceProvider();
    }

    private string KubeConfig(string? contextNamespace)
    {
        var path = Path.Combine(_folder, Guid.NewGuid().ToString("N"));
        File.WriteAllText(path, $"""
            apiVersion: v1
            kind: Config
            clusters:
            - name: test
              cluster:
                server: https://k8s.test:6443
            users:
            - name: tester
              user:
                token: not-a-real-token
            contexts:
            - name: test
              context:
                cluster: test
                user: tester
            {(contextNamespace is null ? "" : $"    namespace: {contextNamespace}")}
            current-context: test
            """);
        return path;
    }
}
