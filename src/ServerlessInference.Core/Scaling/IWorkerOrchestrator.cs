namespace ServerlessInference.Scaling;

/// <summary>Starts and stops workers (in-process loops, child processes, a Deployment, a Container App).</summary>
/// <remarks>
/// <para>Stopping drains: a stopped worker finishes its batch first. Implementations that can choose pick idle workers
/// to stop (a Deployment or a Container App chooses for itself; its workers drain on SIGTERM).</para>
/// <para>Failures throw; the <see cref="Scaler"/> logs them and tries again on its next tick. A call whose token is
/// already cancelled throws <see cref="OperationCanceledException"/> and changes nothing.</para>
/// </remarks>
public interface IWorkerOrchestrator
{
    /// <summary>The number of workers this orchestrator keeps running, not counting those draining: for in-process
    /// loops and child processes the ones started, for a platform that starts replicas itself (a Deployment, a Container
    /// App) the replica count it was told to keep, like HPA's <c>spec.replicas</c>, not the replicas ready so far. So a
    /// replica that is still pulling its image counts, and the scaler does not ask for it again on every tick.</summary>
    ValueTask<int> GetReplicasAsync(CancellationToken cancellationToken);

    /// <summary>Starts or stops workers until <paramref name="replicas"/> run; asking for the count already kept starts
    /// and stops nothing.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="replicas"/> is negative.</exception>
    ValueTask SetReplicasAsync(int replicas, CancellationToken cancellationToken);

    /// <summary>As <see cref="SetReplicasAsync(int, CancellationToken)"/>; when that stops workers, those named in
    /// <paramref name="preferredToStop"/> go first, in that order (the scaler names idle workers whose models are warm
    /// elsewhere: <see cref="ScalingPolicy.Place"/>). A named worker that is unknown or busy by now is passed over. The
    /// default ignores the preference: a platform that chooses for itself (a Container App) or cannot be told.</summary>
    ValueTask SetReplicasAsync(int replicas, IReadOnlyList<string> preferredToStop, CancellationToken cancellationToken)
        => SetReplicasAsync(replicas, cancellationToken);
}
