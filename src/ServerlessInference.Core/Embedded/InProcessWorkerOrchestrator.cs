using Microsoft.Extensions.Logging;
using ServerlessInference.Scaling;
using ServerlessInference.Workers;

namespace ServerlessInference.Embedded;

/// <summary>An <see cref="IWorkerOrchestrator"/> whose workers are loops in this process.</summary>
/// <remarks>Scale-down stops the idle workers the scaler prefers first, then the idlest, and always drains (<see cref="InferenceWorker.RequestStop"/>), so no job
/// is cut short. Thread-safe. Disposing drains every worker.</remarks>
public sealed partial class InProcessWorkerOrchestrator(Func<string, InferenceWorker> createWorker, ILogger<InProcessWorkerOrchestrator> logger)
    : IWorkerOrchestrator, IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly List<(InferenceWorker Worker, Task Run)> _running = [];
    private readonly List<Task> _draining = [];
    private int _next;

    /// <summary>Workers running now (not draining).</summary>
    public IReadOnlyList<InferenceWorker> Workers
    {
        get
        {
            lock (_lock)
            {
                return _running.Select(r => r.Worker).ToList();
            }
        }
    }

    public ValueTask<int> GetReplicasAsync(CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<int>(cancellationToken);
        }

        lock (_lock)
        {
            PruneEndedLocked();
            return ValueTask.FromResult(_running.Count);
        }
    }

    /// <summary>A worker loop that ended on its own (a bug, not a scale-down) no longer counts; the next tick replaces it.</summary>
    private void PruneEndedLocked()
    {
        foreach (var ended in _running.Where(r => r.Run.IsCompleted).ToList())
        {
            _running.Remove(ended);
            Log.Ended(logger, ended.Run.Exception, ended.Worker.Id);
        }
    }

    public ValueTask SetReplicasAsync(int replicas, CancellationToken cancellationToken) => SetReplicasAsync(replicas, [], cancellationToken);

    /// <summary>Starts or stops worker loops until <paramref name="replicas"/> run. Stopping takes the idle workers of
    /// <paramref name="preferredToStop"/> first, in its order, then the idlest.</summary>
    public ValueTask SetReplicasAsync(int replicas, IReadOnlyList<string> preferredToStop, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(replicas);
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        lock (_lock)
        {
            _draining.RemoveAll(t => t.IsCompleted);
            PruneEndedLocked();
            while (_running.Count < replicas)
            {
                var worker = createWorker($"worker-{Interlocked.Increment(ref _next)}");
                var run = Task.Run(() => worker.RunAsync(CancellationToken.None), CancellationToken.None);
                _running.Add((worker, run));
                Log.Started(logger, worker.Id);
            }

            while (_running.Count > replicas)
            {
                // A preferred idle worker first, then the idlest; a busy one drains its batch before it ends.
                var victim = _running
                    .OrderBy(r => Preference(preferredToStop, r.Worker.Id, r.Worker.InFlight))
                    .ThenBy(r => r.Worker.InFlight)
                    .First();
                _running.Remove(victim);
                victim.Worker.RequestStop();
                _draining.Add(victim.Run);
                Log.Stopping(logger, victim.Worker.Id, victim.Worker.InFlight);
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>Where a worker stands in the scaler's preference: its index there when idle, else after every named one.</summary>
    internal static int Preference(IReadOnlyList<string> preferredToStop, string workerId, int inFlight)
    {
        if (inFlight > 0)
        {
            return int.MaxValue;
        }

        for (var i = 0; i < preferredToStop.Count; i++)
        {
            if (preferredToStop[i] == workerId)
            {
                return i;
            }
        }

        return int.MaxValue;
    }

    public async ValueTask DisposeAsync()
    {
        await SetReplicasAsync(0, CancellationToken.None).ConfigureAwait(false);
        Task[] all;
        lock (_lock)
        {
            all = [.. _draining];
        }

        await Task.WhenAll(all).ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Started in-process worker {WorkerId}")]
        public static partial void Started(ILogger logger, string workerId);

        [LoggerMessage(2, LogLevel.Information, "Stopping in-process worker {WorkerId} ({InFlight} jobs in flight drain first)")]
        public static partial void Stopping(ILogger logger, string workerId, int inFlight);

        [LoggerMessage(3, LogLevel.Error, "In-process worker {WorkerId} ended unexpectedly")]
        public static partial void Ended(ILogger logger, Exception? exception, string workerId);
    }
}
