using ServerlessInference.Workers;

namespace ServerlessInference.Scaling;

/// <summary>When a job that just arrived needs the scaler now rather than at its next tick (Knative's activator).</summary>
public static class ScaleActivation
{
    /// <summary>True when no live worker can take a job at once: none is registered, or every one is draining or busy
    /// (a worker loop runs one batch at a time, so one with jobs in flight takes the new job only after it).</summary>
    public static bool Needed(IReadOnlyList<WorkerStatus> workers) =>
        !workers.Any(w => w.State == WorkerState.Running && w.InFlight == 0);

    /// <summary>Reads the registry and applies <see cref="Needed(IReadOnlyList{WorkerStatus})"/>; when the registry cannot be
    /// read the answer is yes (a tick that finds nothing to do costs less than a job left waiting).</summary>
    public static async ValueTask<bool> NeededAsync(IWorkerRegistry registry, CancellationToken cancellationToken)
    {
        try
        {
            return Needed(await registry.ListAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return true;
        }
    }
}
