using System.ComponentModel.DataAnnotations;
using k8s;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Kubernetes;

/// <summary>Settings of the Kubernetes orchestrator (section <c>Inference:Orchestrator:Kubernetes</c>): which Deployment
/// runs the workers, and how to reach the API server.</summary>
public sealed class KubernetesOrchestratorOptions : IValidatableObject
{
    public const string Section = "Inference:Orchestrator:Kubernetes";

    /// <summary>The worker Deployment's name in <c>infra/k8s</c>; the gateway's Role may touch only it.</summary>
    public const string DefaultDeployment = "serverless-inference-worker";

    /// <summary>The Deployment's namespace; default: the pod's own namespace in a cluster, the kubeconfig context's
    /// namespace outside one, else <c>default</c>.</summary>
    public string? Namespace { get; set; }

    /// <summary>The worker Deployment, whose replica count the scaler owns.</summary>
    public string Deployment { get; set; } = DefaultDeployment;

    /// <summary>Before a scale-down, mark the pods the scaler would stop first with a low
    /// <c>controller.kubernetes.io/pod-deletion-cost</c>, so the ReplicaSet removes them rather than pods whose models are
    /// warm nowhere else. Off by default: it needs <c>patch</c> on <c>pods</c> in the namespace (see docs/kubernetes.md),
    /// a wider right than the scale subresource alone.</summary>
    public bool PodDeletionCost { get; set; }

    /// <summary>A kubeconfig file (its current context is used); when empty, the in-cluster service account.</summary>
    public string? KubeConfigPath { get; set; }

    /// <summary>The rules of <see cref="KubernetesOrchestratorOptionsValidator.Failures"/>, run at start-up by the source-generated validator.</summary>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext) =>
        KubernetesOrchestratorOptionsValidator.Failures(this, KubernetesClientConfiguration.IsInCluster()).Select(failure => new ValidationResult(failure));
}

/// <summary>Validates <see cref="KubernetesOrchestratorOptions"/> at start-up, naming the full setting in every message.</summary>
[OptionsValidator]
public sealed partial class KubernetesOrchestratorOptionsValidator : IValidateOptions<KubernetesOrchestratorOptions>
{
    private const string Prefix = KubernetesOrchestratorOptions.Section + ":";

    /// <summary>What is wrong with <paramref name="options"/>; empty when nothing.</summary>
    public static IReadOnlyList<string> Failures(KubernetesOrchestratorOptions options, bool inCluster)
    {
        var failures = new List<string>();
        if (!IsDnsSubdomain(options.Deployment))
        {
            failures.Add($"{Prefix}Deployment must be a Deployment name (lower-case letters, digits, '-' and '.', at most 253, starting and ending with a letter or digit); got '{options.Deployment}'");
        }

        if (options.Namespace is not null && !IsDnsLabel(options.Namespace))
        {
            failures.Add($"{Prefix}Namespace must be a namespace name (1-63 lower-case letters, digits and '-', starting and ending with a letter or digit); got '{options.Namespace}'");
        }

        if (!string.IsNullOrWhiteSpace(options.KubeConfigPath))
        {
            if (!File.Exists(options.KubeConfigPath))
            {
                failures.Add($"{Prefix}KubeConfigPath names no file: '{options.KubeConfigPath}'");
            }
        }
        else if (!inCluster)
        {
            failures.Add($"{Prefix}KubeConfigPath is not set and this process is not in a Kubernetes pod (no KUBERNETES_SERVICE_HOST or service-account token); set it to a kubeconfig file, or run the gateway in the cluster");
        }

        return failures;
    }

    /// <summary>Whether <paramref name="name"/> can be a pod's name (a DNS subdomain).</summary>
    public static bool IsPodName(string? name) => IsDnsSubdomain(name);

    private static bool IsDnsLabel(string? name) =>
        name is { Length: >= 1 and <= 63 }
        && name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-')
        && name[0] != '-' && name[^1] != '-';

    private static bool IsDnsSubdomain(string? name) =>
        name is { Length: >= 1 and <= 253 }
        && name.Split('.').All(IsDnsLabel);
}
