using Microsoft.Extensions.Options;
using ServerlessInference.Jobs;

namespace ServerlessInference.Embedded;

/// <summary>An in-process <see cref="IResultStore"/> with a TTL per record and a bound on what ended jobs keep.</summary>
/// <remarks>Thread-safe. Expired records are swept lazily as records arrive. Records of ended jobs count against
/// <see cref="ResultStoreOptions.MaxRetainedRecords"/> and <see cref="ResultStoreOptions.MaxRetainedBytes"/>
/// (<see cref="JobRecord.ApproximateBytes"/>); beyond either, the ones closest to expiry go early, so a flood of results
/// ends old ones sooner instead of exhausting memory. Records of queued or running jobs are never evicted: the queue's
/// capacity bounds them.</remarks>
public sealed class InMemoryResultStore(IOptions<ResultStoreOptions> options, TimeProvider timeProvider) : IResultStore
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Slot> _slots = new(StringComparer.Ordinal);
    private readonly ResultStoreOptions _options = options.Value;
    private readonly TimeSpan _ttl = options.Value.Ttl;
    // Expiry order for an incremental sweep; an entry whose slot got a later expiry since is re-queued when popped.
    private readonly PriorityQueue<string, DateTimeOffset> _expiries = new();
    // Ended jobs, closest to expiry first (then oldest first), for early eviction; an entry whose slot's version moved on is stale (skipped).
    private readonly PriorityQueue<(string Id, int Version), (DateTimeOffset Expires, long Order)> _retained = new();
    private long _retainedOrder;
    private long _retainedBytes;
    private int _retainedCount;

    /// <summary>Records of ended jobs kept now.</summary>
    public int RetainedRecords
    {
        get
        {
            lock (_lock)
            {
                return _retainedCount;
            }
        }
    }

    /// <summary>Bytes of the records of ended jobs kept now (<see cref="JobRecord.ApproximateBytes"/>).</summary>
    public long RetainedBytes
    {
        get
        {
            lock (_lock)
            {
                return _retainedBytes;
            }
        }
    }

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
        JobRecord record;
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
            record = slot.Record;
            RetainLocked(jobId, slot, now);
        }

        slot.Done.TrySetResult();
        return ValueTask.FromResult<(bool, JobRecord?)>((true, record));
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
                if (existing.Record.Status.IsTerminal() && !SupersedesLocked(existing.Record, result))
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

            RetainLocked(result.Id, slot, now);
        }

        slot.Done.TrySetResult();
        return ValueTask.CompletedTask;
    }

    public ValueTask MarkAnsweredAsync(string jobId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var now = timeProvider.GetUtcNow();
            if (_slots.TryGetValue(jobId, out var slot) && slot.Record.Status.IsTerminal() && now + _options.AnsweredRetention < slot.ExpiresAt)
            {
                slot.ExpiresAt = now + _options.AnsweredRetention;
                _expiries.Enqueue(jobId, slot.ExpiresAt);
                if (slot.Bytes > 0)
                {
                    _retained.Enqueue((jobId, ++slot.Version), (slot.ExpiresAt, _retainedOrder++));
                }
            }

            SweepLocked(now);
        }

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

    /// <summary>Counts a slot that just ended against the retention bounds, then evicts beyond them.</summary>
    private void RetainLocked(string id, Slot slot, DateTimeOffset now)
    {
        SweepLocked(now);
        if (slot.Bytes == 0)
        {
            _retainedCount++;
        }

        // A success that replaces a dead-letter is counted at its own size.
        var bytes = slot.Record.ApproximateBytes;
        _retainedBytes += bytes - slot.Bytes;
        slot.Bytes = bytes;

        _retained.Enqueue((id, ++slot.Version), (slot.ExpiresAt, _retainedOrder++));

        // Closest to expiry first; the newest record stays even when it alone is over the byte bound.
        while (_retainedCount > 1 && (_retainedCount > _options.MaxRetainedRecords || _retainedBytes > _options.MaxRetainedBytes)
            && _retained.TryDequeue(out var entry, out _))
        {
            if (_slots.TryGetValue(entry.Id, out var victim) && victim.Version == entry.Version && victim.Bytes > 0)
            {
                RemoveLocked(entry.Id, victim);
            }
        }
    }

    /// <summary>The one exception to "the first terminal result wins": a worker's success replaces a dead-letter or
    /// expiry the platform decided while that worker still ran the job (IResultStore.PublishAsync).</summary>
    private static bool SupersedesLocked(JobRecord existing, JobRecord result) =>
        existing.ReplaceableBySuccess && result.Status == JobStatus.Succeeded;

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
                RemoveLocked(id, slot);
            }
        }

        // Drop stale eviction entries at the front, so they hold nothing for long.
        while (_retained.TryPeek(out var entry, out _)
            && (!_slots.TryGetValue(entry.Id, out var current) || current.Version != entry.Version || current.Bytes == 0))
        {
            _retained.Dequeue();
        }

        // Entries left behind by shortened or evicted records: rebuild both orders once they outnumber the records, so
        // a flood of answered jobs cannot grow them for a whole TTL.
        if (_expiries.Count + _retained.Count > 4 * _slots.Count + 1024)
        {
            _expiries.Clear();
            _retained.Clear();
            foreach (var (id, slot) in _slots)
            {
                _expiries.Enqueue(id, slot.ExpiresAt);
                if (slot.Bytes > 0)
                {
                    _retained.Enqueue((id, slot.Version), (slot.ExpiresAt, _retainedOrder++));
                }
            }
        }
    }

    private void RemoveLocked(string id, Slot slot)
    {
        _slots.Remove(id);
        if (slot.Bytes > 0)
        {
            _retainedBytes -= slot.Bytes;
            _retainedCount--;
            slot.Bytes = 0;
        }
    }

    private sealed class Slot(JobRecord record, DateTimeOffset expiresAt)
    {
        public JobRecord Record { get; set; } = record;
        public DateTimeOffset ExpiresAt { get; set; } = expiresAt;
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Bytes counted against the retention bound; 0 while the job has not ended.</summary>
        public long Bytes { get; set; }

        /// <summary>Moves on whenever the slot is queued for eviction again, so older entries are known to be stale.</summary>
        public int Version { get; set; }
    }
}
