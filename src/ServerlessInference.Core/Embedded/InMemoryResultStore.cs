using Microsoft.Extensions.Options;
using ServerlessInference.Jobs;

namespace ServerlessInference.Embedded;

/// <summary>An in-process <see cref="IResultStore"/> with a TTL per record.</summary>
/// <remarks>Thread-safe. Expired records are swept lazily as new jobs arrive.</remarks>
public sealed class InMemoryResultStore(IOptions<ResultStoreOptions> options, TimeProvider timeProvider) : IResultStore
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Slot> _slots = new(StringComparer.Ordinal);
    private readonly TimeSpan _ttl = options.Value.Ttl;
    // Expiry order for an incremental sweep; an entry whose slot got a later expiry since is re-queued when popped.
    private readonly PriorityQueue<string, DateTimeOffset> _expiries = new();

    public ValueTask TrackAsync(InferenceJob job, CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        lock (_lock)
        {
            SweepLocked(now);
            var ttl = job.Deadline > now ? job.Deadline - now + _ttl : _ttl;
            _expiries.Enqueue(job.Id, now + ttl);
            _slots[job.Id] = new Slot(new JobRecord
            {
                Id = job.Id,
                Model = job.Model,
                Version = job.Version,
                Status = JobStatus.Queued,
                SubmittedAt = job.SubmittedAt,
                Tenant = job.Tenant,
            }, now + ttl);
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<bool> TryStartAsync(string jobId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (!_slots.TryGetValue(jobId, out var slot) || slot.Record.Status.IsTerminal())
            {
                return ValueTask.FromResult(false);
            }

            // Running → Running is a redelivery after a worker died: let the new worker take it.
            slot.Record = slot.Record with { Status = JobStatus.Running, StartedAt = timeProvider.GetUtcNow() };
            return ValueTask.FromResult(true);
        }
    }

    public ValueTask<(bool Cancelled, JobRecord? Record)> TryCancelAsync(string jobId, CancellationToken cancellationToken)
    {
        Slot? slot;
        lock (_lock)
        {
            if (!_slots.TryGetValue(jobId, out slot))
            {
                return ValueTask.FromResult<(bool, JobRecord?)>((false, null));
            }

            if (slot.Record.Status != JobStatus.Queued)
            {
                return ValueTask.FromResult<(bool, JobRecord?)>((false, slot.Record));
            }

            var now = timeProvider.GetUtcNow();
            slot.Record = slot.Record with { Status = JobStatus.Cancelled, CompletedAt = now, Error = "cancelled by the client" };
            slot.ExpiresAt = now + _ttl;
        }

        slot.Done.TrySetResult();
        return ValueTask.FromResult<(bool, JobRecord?)>((true, slot.Record));
    }

    public ValueTask PublishAsync(JobRecord result, CancellationToken cancellationToken)
    {
        if (!result.Status.IsTerminal())
        {
            throw new ArgumentException($"only terminal records are published, not {result.Status}", nameof(result));
        }

        Slot slot;
        lock (_lock)
        {
            var now = timeProvider.GetUtcNow();
            if (_slots.TryGetValue(result.Id, out var existing))
            {
                if (existing.Record.Status.IsTerminal())
                {
                    return ValueTask.CompletedTask;
                }

                existing.Record = result with { StartedAt = existing.Record.StartedAt, Tenant = existing.Record.Tenant };
                existing.ExpiresAt = now + _ttl;
                slot = existing;
            }
            else
            {
                slot = new Slot(result, now + _ttl);
                _slots[result.Id] = slot;
                _expiries.Enqueue(result.Id, slot.ExpiresAt);
            }
        }

        slot.Done.TrySetResult();
        return ValueTask.CompletedTask;
    }

    public ValueTask<JobRecord?> GetAsync(string jobId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return ValueTask.FromResult(_slots.TryGetValue(jobId, out var slot) && slot.ExpiresAt > timeProvider.GetUtcNow() ? slot.Record : null);
        }
    }

    public async ValueTask<JobRecord?> WaitAsync(string jobId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        Slot? slot;
        lock (_lock)
        {
            _slots.TryGetValue(jobId, out slot);
        }

        if (slot is null)
        {
            return null;
        }

        if (!slot.Done.Task.IsCompleted && timeout > TimeSpan.Zero)
        {
            try
            {
                await slot.Done.Task.WaitAsync(timeout, timeProvider, cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Not done yet: the caller answers 202.
            }
        }

        lock (_lock)
        {
            return slot.Record;
        }
    }

    /// <summary>Removes expired records from the front of the expiry order: a few per call, never a full scan.</summary>
    private void SweepLocked(DateTimeOffset now)
    {
        while (_expiries.TryPeek(out var id, out var expiry) && expiry <= now)
        {
            _expiries.Dequeue();
            if (!_slots.TryGetValue(id, out var slot))
            {
                continue;
            }

            if (slot.ExpiresAt > now)
            {
                _expiries.Enqueue(id, slot.ExpiresAt);
            }
            else
            {
                _slots.Remove(id);
            }
        }
    }

    private sealed class Slot(JobRecord record, DateTimeOffset expiresAt)
    {
        public JobRecord Record { get; set; } = record;
        public DateTimeOffset ExpiresAt { get; set; } = expiresAt;
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
