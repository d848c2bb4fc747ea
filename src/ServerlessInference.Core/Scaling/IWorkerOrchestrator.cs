namespace ServerlessInference.Scaling;

/// <summary>Starts and stops workers (in-process loops, child processes, a Deployment, a Container App).</summary>
/// <remarks>Stopping drains: a stopped worker finishes its batch first. Implementations pick idle workers to stop.</remarks>
public interface IWorkerOrchestrator
{
    /// <summary>Workers running now, not counting those draining.</summary>
    ValueTask<int> GetReplicasAsync(CancellationToken cancellationToken);

    /// <summary>Starts or stops workers until <paramref name="replicas"/> run.</summary>
    ValueTask SetReplicasAsync(int replicas, CancellationToken cancellationToken);
}
