using Microsoft.Extensions.Options;
using ServerlessInference.Jobs;

namespace ServerlessInference.Embedded;

/// <summary>An in-process <see cref="IJobQueue"/>: one FIFO partition per affinity key, chosen by the receiver's
/// <see cref="JobPreference"/>; leases with a visibility timeout, redelivery of expired leases, a capacity bound in jobs
/// and in bytes (and per model, <see cref="InferenceJob.ModelQueueCapacity"/>), and a dead-letter list.</summary>
/// <remarks>Thread-safe. A job put back (abandoned, or its lease expired) goes to the front of its partition and counts as
/// waiting from then on. A receive that finds only jobs kept for other workers wakes when the first of them becomes
/// overdue, on the injected clock. Nothing survives the process; use a Redis or Service Bus queue for that. Memory stays bounded:
/// queued and in-flight jobs by <see cref="JobQueueOptions.Capacity"/> and <see cref="JobQueueOptions.MaxQueuedBytes"/>
/// (<see cref="InferenceJob.ApproximateBytes"/>), dead letters by <see cref="MaxDeadLetters"/> and the same byte budget
/// (the oldest are dropped first).</remarks>
public sealed class InMemoryJobQueue : IJobQueue
{
    private readonly JobQueueOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly Lock _lock = new();
    private readonly Dictionary<string, Partition> _partitions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ModelCount> _models = new(StringComparer.Ordinal);
    private readonly Dictionary<Entry, long> _leased = [];
    private readonly PriorityQueue<LeaseTicket, DateTimeOffset> _expiries = new();
    private readonly LinkedList<(DeadLetter Letter, long Bytes)> _deadLetters = new();
    private TaskCompletionSource _signal = NewSignal();
    private long _bytes;
    private long _deadLetterBytes;
    private int _readyCount;
    private long _nextOrder;
    private long _nextReturnOrder;

    public InMemoryJobQueue(IOptions<JobQueueOptions> options, TimeProvider timeProvider)
    {
        _options = options.Value;
        _timeProvider = timeProvider;
    }

    /// <summary>Most dead letters kept; older ones are dropped.</summary>
    public const int MaxDeadLetters = 1000;

    public int MaxDeliveryCount => _options.MaxDeliveryCount;

    /// <summary>Bytes of the jobs queued or in flight, as counted against <see cref="JobQueueOptions.MaxQueuedBytes"/>.</summary>
    public long QueuedBytes
    {
        get
        {
            lock (_lock)
            {
                return _bytes;
            }
        }
    }

    /// <summary>Jobs that were dead-lettered, oldest first.</summary>
    public IReadOnlyList<DeadLetter> DeadLetters
    {
        get
        {
            lock (_lock)
            {
                return [.. _deadLetters.Select(d => d.Letter)];
            }
        }
    }

    public ValueTask EnqueueAsync(InferenceJob job, CancellationToken cancellationToken)
    {
        var bytes = job.ApproximateBytes;
        if (bytes > _options.MaxQueuedBytes)
        {
            throw new InferenceException(InferenceError.PayloadTooLarge,
                $"the job is {bytes} bytes, more than the whole queue may hold ({JobQueueOptions.Section}:MaxQueuedBytes = {_options.MaxQueuedBytes})");
        }

        TaskCompletionSource signal;
        lock (_lock)
        {
            if (_readyCount + _leased.Count >= _options.Capacity)
            {
                throw new InferenceException(InferenceError.QueueFull, $"the job queue is full ({_options.Capacity} jobs)")
                {
                    RetryAfterSeconds = _options.RetryAfterSeconds,
                };
            }

            if (_bytes + bytes > _options.MaxQueuedBytes)
            {
                throw new InferenceException(InferenceError.QueueFull, $"the job queue is full ({_options.MaxQueuedBytes} bytes of requests)")
                {
                    RetryAfterSeconds = _options.RetryAfterSeconds,
                };
            }

            var model = _models.GetValueOrDefault(job.Model);
            if (job.ModelQueueCapacity is { } modelCapacity && model is not null && model.Queued + model.InFlight >= modelCapacity)
            {
                throw ModelFull(job.Model, modelCapacity);
            }

            if (model is null)
            {
                _models[job.Model] = model = new ModelCount();
            }

            _bytes += bytes;
            model.Queued++;
            var entry = new Entry(job, bytes) { Order = ++_nextOrder, WaitingSince = _timeProvider.GetUtcNow() };
            PartitionOf(entry).Ready.AddLast(entry);
            _readyCount++;
            signal = _signal;
            _signal = NewSignal();
        }

        signal.TrySetResult();
        return ValueTask.CompletedTask;
    }

    /// <summary>The oldest jobs first, whatever their key (<see cref="JobPreference.None"/>).</summary>
    public ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, CancellationToken cancellationToken) =>
        ReceiveAsync(maxCount, maxWait, JobPreference.None, cancellationToken);

    public async ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, JobPreference preference, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCount, 1);
        ArgumentNullException.ThrowIfNull(preference);
        var started = _timeProvider.GetTimestamp();
        while (true)
        {
            Task signal;
            TimeSpan? untilOverdue;
            lock (_lock)
            {
                ReclaimExpiredLocked();
                var taken = TakeLocked(maxCount, preference, out untilOverdue);
                if (taken.Count > 0)
                {
                    return taken;
                }

                signal = _signal.Task;
            }

            var remaining = maxWait - _timeProvider.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero)
            {
                return [];
            }

            // Wake on a new job, or when a job kept for another worker becomes overdue, or when the next lease expires,
            // or when the wait is over.
            var wake = untilOverdue < remaining ? untilOverdue.Value : remaining;
            lock (_lock)
            {
                DropSettledLocked();
                if (_expiries.TryPeek(out _, out var nextExpiry))
                {
                    var untilExpiry = nextExpiry - _timeProvider.GetUtcNow();
                    wake = untilExpiry < wake ? (untilExpiry < TimeSpan.Zero ? TimeSpan.Zero : untilExpiry) : wake;
                }
            }

            using var delayCancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var delay = Task.Delay(wake, _timeProvider, delayCancel.Token);
            await Task.WhenAny(signal, delay).ConfigureAwait(false);
            await delayCancel.CancelAsync().ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    public ValueTask<QueueDepth> GetDepthAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            ReclaimExpiredLocked();
            var byModel = new Dictionary<string, ModelDepth>(_models.Count, StringComparer.Ordinal);
            foreach (var (model, count) in _models)
            {
                byModel[model] = new ModelDepth(count.Queued, count.InFlight);
            }

            return ValueTask.FromResult(new QueueDepth(_readyCount, _leased.Count) { ByModel = byModel });
        }
    }

    /// <summary>Takes up to <paramref name="maxCount"/> jobs by the rule in <see cref="JobPreference"/>. When it takes
    /// none, <paramref name="untilOverdue"/> is how long until a waiting job becomes due (<see cref="JobPreference.WaitFor"/>).</summary>
    private List<JobLease> TakeLocked(int maxCount, JobPreference preference, out TimeSpan? untilOverdue)
    {
        untilOverdue = null;
        var leases = new List<JobLease>();
        if (_readyCount == 0)
        {
            return leases;
        }

        var now = _timeProvider.GetUtcNow();
        if (preference.IsNone)
        {
            // FIFO over every partition: the partition whose head came first (put-back jobs sort before all others), as
            // long as its head comes before the next partition's.
            while (leases.Count < maxCount && _readyCount > 0)
            {
                Partition? first = null;
                var nextHead = long.MaxValue;
                foreach (var partition in _partitions.Values)
                {
                    var order = partition.Ready.First!.Value.Order;
                    if (first is null || order < first.Ready.First!.Value.Order)
                    {
                        nextHead = first?.Ready.First!.Value.Order ?? long.MaxValue;
                        first = partition;
                    }
                    else if (order < nextHead)
                    {
                        nextHead = order;
                    }
                }

                var run = 0;
                foreach (var entry in first!.Ready)
                {
                    if (entry.Order > nextHead || run == maxCount - leases.Count)
                    {
                        break;
                    }

                    run++;
                }

                TakeFromLocked(first, run, now, leases);
            }

            return leases;
        }

        // 1. Warm here, in the worker's fair order.
        foreach (var key in preference.Warm)
        {
            if (_partitions.TryGetValue(key, out var partition))
            {
                TakeFromLocked(partition, maxCount - leases.Count, now, leases);
                if (leases.Count == maxCount)
                {
                    return leases;
                }
            }
        }

        // Every other key not closed, once it has waited what JobPreference.WaitFor says: free (its model is warm here: a
        // prompt prefix this worker does not hold), cold (warm nowhere) or overdue (kept for the worker holding it warm).
        var warmModels = preference.Warm.Select(JobPreference.ModelOf).ToHashSet(StringComparer.Ordinal);
        List<Partition>? free = null, cold = null, overdue = null;
        DateTimeOffset? nextDue = null;
        foreach (var (key, partition) in _partitions)
        {
            if (partition.Ready.Count == 0 || IsWarm(preference, key) || preference.IsClosed(key))
            {
                continue;
            }

            // A key of a model warm here waits only for a worker holding that very key (its prompt prefix); another key
            // waits for any worker holding its model, as taking it here would load the model.
            var modelWarm = warmModels.Contains(partition.Model);
            var elsewhere = modelWarm ? preference.WarmElsewhere.Contains(key) : preference.IsWarmElsewhere(key);
            var due = partition.Ready.First!.Value.WaitingSince + preference.WaitFor(elsewhere, modelWarm);
            if (due <= now)
            {
                (modelWarm ? free ??= [] : elsewhere ? overdue ??= [] : cold ??= []).Add(partition);
            }
            else if (nextDue is null || due < nextDue)
            {
                nextDue = due;
            }
        }

        // 2. Free keys, oldest first: no load either.
        if (free is not null)
        {
            free.Sort(static (a, b) => OldestFirst(a, b));
            foreach (var partition in free)
            {
                TakeFromLocked(partition, maxCount - leases.Count, now, leases);
                if (leases.Count == maxCount)
                {
                    return leases;
                }
            }
        }

        // A worker with work it holds warm does not fill its batch with other models' jobs: each would cost a load and
        // evict a model with demand of its own. It comes back for them when its warm keys are empty.
        if (leases.Count > 0)
        {
            return leases;
        }

        // 3. One model to load: the oldest cold key that has waited its load wait, else the oldest overdue one (kept for
        // another worker, waited past the affinity wait); with it, that model's other due keys. One load per receive.
        cold?.Sort(static (a, b) => OldestFirst(a, b));
        overdue?.Sort(static (a, b) => OldestFirst(a, b));
        List<Partition> load = [.. cold ?? [], .. overdue ?? []];
        if (load.Count > 0)
        {
            var model = load[0].Model;
            foreach (var partition in load)
            {
                if (partition.Model == model)
                {
                    TakeFromLocked(partition, maxCount - leases.Count, now, leases);
                    if (leases.Count == maxCount)
                    {
                        break;
                    }
                }
            }

            return leases;
        }

        if (nextDue is { } next)
        {
            untilOverdue = next - now;
        }

        return leases;
    }

    private static bool IsWarm(JobPreference preference, string key)
    {
        foreach (var warm in preference.Warm)
        {
            if (string.Equals(warm, key, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    private static int OldestFirst(Partition a, Partition b)
    {
        var x = a.Ready.First!.Value;
        var y = b.Ready.First!.Value;
        var bySince = x.WaitingSince.CompareTo(y.WaitingSince);
        return bySince != 0 ? bySince : x.Order.CompareTo(y.Order);
    }

    /// <summary>Leases up to <paramref name="count"/> jobs from the head of <paramref name="partition"/>; an emptied
    /// partition is dropped (keys come and go with prompts).</summary>
    private void TakeFromLocked(Partition partition, int count, DateTimeOffset now, List<JobLease> leases)
    {
        for (var i = 0; i < count && partition.Ready.First is { } node; i++)
        {
            partition.Ready.RemoveFirst();
            _readyCount--;
            var entry = node.Value;
            var model = _models[entry.Job.Model];
            model.Queued--;
            model.InFlight++;
            entry.DeliveryCount++;
            _leased[entry] = entry.DeliveryCount;
            entry.Ticket = new LeaseTicket(entry);
            _expiries.Enqueue(entry.Ticket, now + _options.LeaseDuration);
            leases.Add(new Lease(this, entry, entry.DeliveryCount));
        }

        if (partition.Ready.Count == 0)
        {
            _partitions.Remove(partition.Key);
        }
    }

    /// <summary>Puts a job whose lease ended back at the front of its partition, waiting from now.</summary>
    private void ReturnLocked(Entry entry)
    {
        var model = _models[entry.Job.Model];
        model.InFlight--;
        model.Queued++;
        entry.Order = --_nextReturnOrder;
        entry.WaitingSince = _timeProvider.GetUtcNow();
        PartitionOf(entry).Ready.AddFirst(entry);
        _readyCount++;
    }

    private Partition PartitionOf(Entry entry)
    {
        if (!_partitions.TryGetValue(entry.Key, out var partition))
        {
            _partitions[entry.Key] = partition = new Partition(entry.Key, entry.Job.Model);
        }

        return partition;
    }

    private InferenceException ModelFull(string model, int capacity) =>
        new(InferenceError.QueueFull, $"the queue of model '{model}' is full (its max_queued is {capacity} jobs queued or running)")
        {
            RetryAfterSeconds = _options.RetryAfterSeconds,
        };

    private void ReclaimExpiredLocked()
    {
        var now = _timeProvider.GetUtcNow();
        DropSettledLocked();
        while (_expiries.TryPeek(out var ticket, out var expiry) && expiry <= now)
        {
            _expiries.Dequeue();
            if (ticket.Entry is not { } entry)
            {
                continue;
            }

            if (entry.ExpiresAgain > now)
            {
                // Renewed: track the new expiry instead.
                _expiries.Enqueue(ticket, entry.ExpiresAgain);
                entry.ExpiresAgain = DateTimeOffset.MinValue;
                continue;
            }

            ticket.Entry = null;
            _leased.Remove(entry);
            entry.LastError ??= JobLease.LeaseExpiredError;
            ReturnLocked(entry);
        }
    }

    /// <summary>Pops tickets of settled leases from the front, so they neither hold their job nor set the next wake.</summary>
    private void DropSettledLocked()
    {
        while (_expiries.TryPeek(out var ticket, out _) && ticket.Entry is null)
        {
            _expiries.Dequeue();
        }
    }

    /// <summary>Settles a lease if it is still the current delivery of its job; stale leases do nothing.</summary>
    private bool Settle(Entry entry, int delivery, Action<Entry>? then)
    {
        TaskCompletionSource? signal = null;
        lock (_lock)
        {
            if (!_leased.TryGetValue(entry, out var current) || current != delivery)
            {
                return false;
            }

            _leased.Remove(entry);
            if (entry.Ticket is { } ticket)
            {
                // Settled: the ticket in the expiry heap no longer holds the job (a big body would live until expiry).
                ticket.Entry = null;
                entry.Ticket = null;
            }

            then?.Invoke(entry);
            if (_readyCount > 0)
            {
                signal = _signal;
                _signal = NewSignal();
            }
        }

        signal?.TrySetResult();
        return true;
    }

    /// <summary>A settled job leaves the queue: its bytes no longer count.</summary>
    private void LeaveLocked(Entry entry)
    {
        _bytes -= entry.Bytes;
        var model = _models[entry.Job.Model];
        if (--model.InFlight == 0 && model.Queued == 0)
        {
            _models.Remove(entry.Job.Model);
        }
    }

    /// <summary>Keeps a dead letter, dropping the oldest beyond <see cref="MaxDeadLetters"/> or the byte budget.</summary>
    private void AddDeadLetterLocked(Entry entry, string reason)
    {
        LeaveLocked(entry);
        _deadLetters.AddLast((new DeadLetter(entry.Job, reason, entry.DeliveryCount, _timeProvider.GetUtcNow()), entry.Bytes));
        _deadLetterBytes += entry.Bytes;
        while (_deadLetters.Count > 1 && (_deadLetters.Count > MaxDeadLetters || _deadLetterBytes > _options.MaxQueuedBytes))
        {
            _deadLetterBytes -= _deadLetters.First!.Value.Bytes;
            _deadLetters.RemoveFirst();
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private sealed class Entry(InferenceJob job, long bytes)
    {
        public InferenceJob Job { get; } = job;
        public string Key { get; } = job.AffinityKey;
        public long Bytes { get; } = bytes;

        /// <summary>FIFO order across partitions: enqueues count up, put-back jobs count down (they go first).</summary>
        public long Order { get; set; }

        /// <summary>When the job was queued or last put back: what <see cref="JobPreference.AffinityWait"/> runs from.</summary>
        public DateTimeOffset WaitingSince { get; set; }

        public int DeliveryCount { get; set; }
        public string? LastError { get; set; }
        public DateTimeOffset ExpiresAgain { get; set; } = DateTimeOffset.MinValue;
        public LeaseTicket? Ticket { get; set; }
    }

    /// <summary>The waiting jobs of one affinity key, oldest first.</summary>
    private sealed class Partition(string key, string model)
    {
        public string Key { get; } = key;
        public string Model { get; } = model;
        public LinkedList<Entry> Ready { get; } = new();
    }

    /// <summary>Jobs of one model queued and in flight (for <see cref="InferenceJob.ModelQueueCapacity"/> and depth).</summary>
    private sealed class ModelCount
    {
        public long Queued { get; set; }
        public long InFlight { get; set; }
    }

    /// <summary>An entry of the expiry heap; emptied when its lease is settled (the heap cannot remove from the middle).</summary>
    private sealed class LeaseTicket(Entry entry)
    {
        public Entry? Entry { get; set; } = entry;
    }

    private sealed class Lease(InMemoryJobQueue queue, Entry entry, int delivery) : JobLease
    {
        public override InferenceJob Job => entry.Job;

        public override int DeliveryCount => delivery;

        public override string? LastError => entry.LastError;

        public override ValueTask CompleteAsync(CancellationToken cancellationToken)
        {
            queue.Settle(entry, delivery, queue.LeaveLocked);
            return ValueTask.CompletedTask;
        }

        public override ValueTask AbandonAsync(string? error, CancellationToken cancellationToken)
        {
            queue.Settle(entry, delivery, e =>
            {
                e.LastError = error ?? e.LastError;
                queue.ReturnLocked(e);
            });
            return ValueTask.CompletedTask;
        }

        public override ValueTask DeadLetterAsync(string reason, CancellationToken cancellationToken)
        {
            queue.Settle(entry, delivery, e => queue.AddDeadLetterLocked(e, reason));
            return ValueTask.CompletedTask;
        }

        public override ValueTask RenewAsync(CancellationToken cancellationToken)
        {
            lock (queue._lock)
            {
                if (queue._leased.TryGetValue(entry, out var current) && current == delivery)
                {
                    entry.ExpiresAgain = queue._timeProvider.GetUtcNow() + queue._options.LeaseDuration;
                }
            }

            return ValueTask.CompletedTask;
        }
    }
}
