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
/// <c>terminationGracePeriodSeconds</c>. With <see cref="PodDeletionCost"/> it is told which it should prefer.</para>
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

    /// <summary>Whether a scale-down first sets <see cref="DeletionCostAnnotation"/> on the pods the scaler prefers to stop
    /// (<see cref="KubernetesOrchestratorOptions.PodDeletionCost"/>).</summary>
    public bool PodDeletionCost { get; init; }

    /// <summary>The annotation the ReplicaSet controller reads when it picks pods to delete: lower goes first.</summary>
    public const string DeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost";

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
    public ValueTask SetReplicasAsync(int replicas, CancellationToken cancellationToken) => SetReplicasAsync(replicas, [], cancellationToken);

    /// <summary>With <see cref="PodDeletionCost"/>, first gives each pod in <paramref name="preferredToStop"/> (worker ids
    /// are pod names, <c>infra/k8s/worker.yaml</c>) a deletion cost below zero, the first lowest, then patches the scale
    /// subresource. A pod that cannot be annotated (gone, not a pod name, forbidden) is logged and passed over: the
    /// preference is advice, the replica count is not.</summary>
    public async ValueTask SetReplicasAsync(int replicas, IReadOnlyList<string> preferredToStop, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(replicas);
        cancellationToken.ThrowIfCancellationRequested();
        if (PodDeletionCost)
        {
            for (var i = 0; i < preferredToStop.Count; i++)
            {
                await MarkAsync(preferredToStop[i], cost: i - preferredToStop.Count, cancellationToken).ConfigureAwait(false);
            }
        }

        await ScaleAsync(replicas, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask MarkAsync(string pod, int cost, CancellationToken cancellationToken)
    {
        if (!KubernetesOrchestratorOptionsValidator.IsPodName(pod))
        {
            Log.NotAPod(_logger, pod);
            return;
        }

        var patch = new V1Patch(
            "{\"metadata\":{\"annotations\":{\"" + DeletionCostAnnotation + "\":\"" + cost.ToString(CultureInfo.InvariantCulture) + "\"}}}",
            V1Patch.PatchType.MergePatch);
        try
        {
            await _client.CoreV1.PatchNamespacedPodAsync(patch, pod, Namespace, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (HttpOperationException ex)
        {
            Log.MarkFailed(_logger, pod, Namespace, (int?)ex.Response?.StatusCode ?? 0);
        }
    }

    private async ValueTask ScaleAsync(int replicas, CancellationToken cancellationToken)
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

        [LoggerMessage(2, LogLevel.Warning, "Could not set the deletion cost of pod {Namespace}/{Pod} (status {Status}; the gateway's Role needs patch on pods, docs/kubernetes.md); the Deployment picks which pod to remove")]
        public static partial void MarkFailed(ILogger logger, string pod, string @namespace, int status);

        [LoggerMessage(3, LogLevel.Warning, "Worker id {WorkerId} is not a pod name; its deletion cost is not set")]
        public static partial void NotAPod(ILogger logger, string workerId);
    }
}
