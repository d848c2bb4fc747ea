using System.Globalization;
using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;
using Microsoft.Extensions.Logging;
using ServerlessInference.Scaling;

namespace ServerlessInference.Kubernetes;

/// <summary>An <see cref="IWorkerOrchestrator"/> whose workers are the pods of a Deployment, scaled through its
/// <c>scale</c> subresource (what <c>kubectl scale</c> and the HPA use).</summary>
/// <remarks>
/// <para><b>Current replicas</b> is the scale subresource's <c>spec.replicas</c>, the count the Deployment is told to
/// keep (as the HPA reads it), not <c>status.readyReplicas</c>: a GPU pod can take minutes to pull and start, and
/// counting only ready pods would make the scaler ask again on every tick and skip its scale-down window.</para>
/// <para><b>Setting</b> sends a JSON merge patch <c>{"spec":{"replicas":N}}</c> to the scale subresource, which changes
/// nothing else of the Deployment and needs only <c>get</c> and <c>patch</c> on <c>deployments/scale</c> (see
/// <c>infra/k8s/rbac.yaml</c>), not the right to rewrite the pod template. Sending the same count again is a no-op.
/// The Deployment picks which pods to remove; they get SIGTERM and drain within
/// <c>terminationGracePeriodSeconds</c>.</para>
/// <para><b>Failures</b> (the API server unreachable, 403, 404, 409, 5xx) throw <see cref="HttpRequestException"/>
/// naming the status, the Deployment and what to check; the scaler logs them and tries again on its next tick.</para>
/// <para>Thread-safe. Disposing releases the client when this orchestrator created it; it never scales the
/// Deployment (a restarting gateway must not stop the workers).</para>
/// </remarks>
public sealed partial class KubernetesWorkerOrchestrator : IWorkerOrchestrator, IDisposable
{
    private readonly IKubernetes _client;
    private readonly bool _ownsClient;
    private readonly ILogger _logger;

    /// <param name="client">The API client (in a cluster: the pod's service account).</param>
    /// <param name="namespace">The Deployment's namespace.</param>
    /// <param name="deployment">The worker Deployment's name.</param>
    /// <param name="logger">Where changes are logged.</param>
    /// <param name="ownsClient">Whether disposing this disposes <paramref name="client"/>.</param>
    public KubernetesWorkerOrchestrator(IKubernetes client, string @namespace, string deployment, ILogger<KubernetesWorkerOrchestrator> logger, bool ownsClient = false)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(@namespace);
        ArgumentException.ThrowIfNullOrWhiteSpace(deployment);
        _client = client;
        _ownsClient = ownsClient;
        _logger = logger;
        Namespace = @namespace;
        Deployment = deployment;
    }

    public string Namespace { get; }

    public string Deployment { get; }

    /// <summary>The scale subresource's <c>spec.replicas</c> (absent means 0).</summary>
    public async ValueTask<int> GetReplicasAsync(CancellationToken cancellationToken)
    {
        try
        {
            var scale = await _client.AppsV1.ReadNamespacedDeploymentScaleAsync(Deployment, Namespace, cancellationToken: cancellationToken).ConfigureAwait(false);
            return scale.Spec?.Replicas ?? 0;
        }
        catch (HttpOperationException ex)
        {
            throw Failure("get", ex);
        }
    }

    /// <summary>Patches the scale subresource's <c>spec.replicas</c> to <paramref name="replicas"/>.</summary>
    public async ValueTask SetReplicasAsync(int replicas, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(replicas);
        var patch = new V1Patch("{\"spec\":{\"replicas\":" + replicas.ToString(CultureInfo.InvariantCulture) + "}}", V1Patch.PatchType.MergePatch);
        try
        {
            var scale = await _client.AppsV1.PatchNamespacedDeploymentScaleAsync(patch, Deployment, Namespace, cancellationToken: cancellationToken).ConfigureAwait(false);
            Log.Scaled(_logger, Namespace, Deployment, replicas, scale.Status?.Replicas ?? 0);
        }
        catch (HttpOperationException ex)
        {
            throw Failure("patch", ex);
        }
    }

    private HttpRequestException Failure(string verb, HttpOperationException ex)
    {
        var status = ex.Response?.StatusCode;
        var hint = status switch
        {
            HttpStatusCode.Forbidden => $"; the gateway's service account needs get and patch on deployments/scale for '{Deployment}' in '{Namespace}' (infra/k8s/rbac.yaml)",
            HttpStatusCode.NotFound => $"; there is no Deployment '{Deployment}' in namespace '{Namespace}' (check {KubernetesOrchestratorOptions.Section}:Deployment and :Namespace)",
            HttpStatusCode.Unauthorized => $"; the API server refused the credentials (the service-account token, or the user in {KubernetesOrchestratorOptions.Section}:KubeConfigPath)",
            _ => "",
        };
        var detail = string.IsNullOrWhiteSpace(ex.Response?.Content) ? "" : $": {Truncate(ex.Response.Content)}";
        var code = status is { } s ? $"{(int)s} {s}" : "no answer";
        return new HttpRequestException(
            $"{verb} deployments/scale '{Deployment}' in namespace '{Namespace}' failed with {code}{detail}{hint}", ex, status);
    }

    private static string Truncate(string text) => text.Length <= 400 ? text : text[..400] + "...";

    public void Dispose()
    {
        if (_ownsClient)
        {
            _client.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Deployment {Namespace}/{Deployment} scaled to {Replicas} replicas ({Running} exist now)")]
        public static partial void Scaled(ILogger logger, string @namespace, string deployment, int replicas, int running);
    }
}
