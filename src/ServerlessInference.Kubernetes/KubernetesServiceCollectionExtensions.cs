using k8s;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Hosting;
using ServerlessInference.Scaling;

namespace ServerlessInference.Kubernetes;

/// <summary>Start-up wiring of the Kubernetes orchestrator.</summary>
public static class KubernetesServiceCollectionExtensions
{
    /// <summary><see cref="IWorkerOrchestrator"/> → <see cref="KubernetesWorkerOrchestrator"/>, with
    /// <see cref="KubernetesOrchestratorOptions"/> bound from <c>Inference:Orchestrator:Kubernetes</c> and validated at start.
    /// It replaces any orchestrator registered before. The API server is first called when the scaler ticks.</summary>
    public static IServiceCollection AddKubernetesOrchestrator(this IServiceCollection services)
    {
        services.AddValidatedOptions<KubernetesOrchestratorOptions, KubernetesOrchestratorOptionsValidator>(KubernetesOrchestratorOptions.Section);
        services.TryAddSingleton(sp => Create(
            sp.GetRequiredService<IOptions<KubernetesOrchestratorOptions>>().Value,
            sp.GetRequiredService<ILogger<KubernetesWorkerOrchestrator>>()));
        services.Replace(ServiceDescriptor.Singleton<IWorkerOrchestrator>(sp => sp.GetRequiredService<KubernetesWorkerOrchestrator>()));
        return services;
    }

    /// <summary>An orchestrator on a client of its own: the kubeconfig file when one is set, else the pod's service
    /// account. The namespace is the setting, else the config's (the pod's own, or the kubeconfig context's), else
    /// <c>default</c>.</summary>
    public static KubernetesWorkerOrchestrator Create(KubernetesOrchestratorOptions options, ILogger<KubernetesWorkerOrchestrator> logger)
    {
        var config = ClientConfiguration(options);
        var @namespace = FirstNonEmpty(options.Namespace, config.Namespace, "default");
        return new KubernetesWorkerOrchestrator(new k8s.Kubernetes(config), @namespace, options.Deployment.Trim(), logger, ownsClient: true)
        {
            PodDeletionCost = options.PodDeletionCost,
        };
    }

    /// <summary>The client configuration <paramref name="options"/> choose.</summary>
    public static KubernetesClientConfiguration ClientConfiguration(KubernetesOrchestratorOptions options) =>
        string.IsNullOrWhiteSpace(options.KubeConfigPath)
            ? KubernetesClientConfiguration.InClusterConfig()
            : KubernetesClientConfiguration.BuildConfigFromConfigFile(options.KubeConfigPath.Trim());

    private static string FirstNonEmpty(params string?[] values) => values.First(v => !string.IsNullOrWhiteSpace(v))!.Trim();
}
