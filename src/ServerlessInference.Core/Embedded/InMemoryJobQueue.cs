using Microsoft.Extensions.Options;
using ServerlessInference.Jobs;

namespace ServerlessInference.Embedded;

/// <summary>An in-process <see cref="IJobQueue"/>: FIFO, leases with a visibility timeout, redelivery of
/// expired leases, a capacity bound in jobs and in bytes, and a dead-letter list.</summary>
/// <remarks>Thread-safe. Nothing survives the process; use a Redis or Service Bus queue for that. Memory stays bounded:
/// queued and in-flight jobs by <see cref="JobQueueOptions.Capacity"/> and <see cref="JobQueueOptions.MaxQueuedBytes"/>
/// (<see cref="InferenceJob.ApproximateBytes"/>), dead letters by <see cref="MaxDeadLetters"/> and the same byte budget
/// (the oldest are dropped first).</remarks>
public sealed class InMemoryJobQueue : IJobQueue
{
    private readonly JobQueueOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly Lock _lock = new();
    private readonly LinkedList<Entry> _ready = new();
    private readonly Dictionary<Entry, long> _leased = [];
    private readonly PriorityQueue<LeaseTicket, DateTimeOffset> _expiries = new();
    private readonly LinkedList<(DeadLetter Letter, long Bytes)> _deadLetters = new();
    private TaskCompletionSource _signal = NewSignal();
    private long _bytes;
    private long _deadLetterBytes;

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
            if (_ready.Count + _leased.Count >= _options.Capacity)
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

            // A per-model bound (the manifest's max_queued): a scan only for models that set one.
            if (job.ModelQueueCapacity is { } modelCapacity
                && _ready.Count(e => e.Job.Model == job.Model) + _leased.Keys.Count(e => e.Job.Model == job.Model) >= modelCapacity)
            {
                throw new InferenceException(InferenceError.QueueFull,
                    $"the queue of model '{job.Model}' is full (its max_queued is {modelCapacity} jobs queued or running)")
                {
                    RetryAfterSeconds = _options.RetryAfterSeconds,
                };
            }

            _bytes += bytes;
            _ready.AddLast(new Entry(job, bytes));
            signal = _signal;
            _signal = NewSignal();
        }

        signal.TrySetResult();
        return ValueTask.CompletedTask;
    }

    public async ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCount, 1);
        var started = _timeProvider.GetTimestamp();
        while (true)
        {
            Task signal;
            lock (_lock)
            {
                ReclaimExpiredLocked();
                if (_ready.Count > 0)
                {
                    return TakeLocked(maxCount);
                }

                signal = _signal.Task;
            }

            var remaining = maxWait - _timeProvider.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero)
            {
                return [];
            }

            // Wake on a new job, or when the next lease expires, or when the wait is over.
            var wake = remaining;
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
            return ValueTask.FromResult(new QueueDepth(_ready.Count, _leased.Count));
        }
    }

    private List<JobLease> TakeLocked(int maxCount)
    {
        var now = _timeProvider.GetUtcNow();
        var leases = new List<JobLease>(Math.Min(maxCount, _ready.Count));
        while (leases.Count < maxCount && _ready.First is { } node)
        {
            _ready.RemoveFirst();
            var entry = node.Value;
            entry.DeliveryCount++;
            _leased[entry] = entry.DeliveryCount;
            entry.Ticket = new LeaseTicket(entry);
            _expiries.Enqueue(entry.Ticket, now + _options.LeaseDuration);
            leases.Add(new Lease(this, entry, entry.DeliveryCount));
        }

        return leases;
    }

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
            _ready.AddFirst(entry);
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
            if (_ready.Count > 0)
            {
                signal = _signal;
                _signal = NewSignal();
            }
        }

        signal?.TrySetResult();
        return true;
    }

    /// <summary>A settled job leaves the queue: its bytes no longer count.</summary>
    private void LeaveLocked(Entry entry) => _bytes -= entry.Bytes;

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
        public long Bytes { get; } = bytes;
        public int DeliveryCount { get; set; }
        public string? LastError { get; set; }
        public DateTimeOffset ExpiresAgain { get; set; } = DateTimeOffset.MinValue;
        public LeaseTicket? Ticket { get; set; }
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
                queue._ready.AddFirst(e);
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
