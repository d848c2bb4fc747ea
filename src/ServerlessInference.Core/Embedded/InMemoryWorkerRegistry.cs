using System.Collections.Concurrent;
using ServerlessInference.Workers;

namespace ServerlessInference.Embedded;

/// <summary>An in-process <see cref="IWorkerRegistry"/>.</summary>
public sealed class InMemoryWorkerRegistry(TimeProvider timeProvider, TimeSpan? ttl = null) : IWorkerRegistry
{
    private readonly ConcurrentDictionary<string, WorkerStatus> _workers = new(StringComparer.Ordinal);
    private readonly TimeSpan _ttl = ttl ?? TimeSpan.FromSeconds(15);
    private readonly LinkedList<ColdStart> _coldStarts = new();

    public ValueTask HeartbeatAsync(WorkerStatus status, CancellationToken cancellationToken)
    {
        _workers[status.Id] = status;
        return ValueTask.CompletedTask;
    }

    public ValueTask RemoveAsync(string workerId, CancellationToken cancellationToken)
    {
        _workers.TryRemove(workerId, out _);
        return ValueTask.CompletedTask;
    }

    public ValueTask<IReadOnlyList<WorkerStatus>> ListAsync(CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        var live = new List<WorkerStatus>(_workers.Count);
        foreach (var (id, status) in _workers)
        {
            if (now - status.LastHeartbeat > _ttl)
            {
                _workers.TryRemove(id, out _);
            }
            else
            {
                live.Add(status);
            }
        }

        return ValueTask.FromResult<IReadOnlyList<WorkerStatus>>(live.OrderBy(w => w.StartedAt).ToList());
    }

    public ValueTask RecordColdStartAsync(ColdStart coldStart, CancellationToken cancellationToken)
    {
        lock (_coldStarts)
        {
            _coldStarts.AddFirst(coldStart);
            while (_coldStarts.Count > IWorkerRegistry.ColdStartsKept)
            {
                _coldStarts.RemoveLast();
            }
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<IReadOnlyList<ColdStart>> ListColdStartsAsync(CancellationToken cancellationToken)
    {
        lock (_coldStarts)
        {
            return ValueTask.FromResult<IReadOnlyList<ColdStart>>([.. _coldStarts]);
        }
    }
}
