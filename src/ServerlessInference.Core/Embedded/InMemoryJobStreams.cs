using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;
using ServerlessInference.Streaming;

namespace ServerlessInference.Embedded;

/// <summary>An in-process <see cref="IJobStreams"/>: a list per job, followers woken by a <see cref="TaskCompletionSource"/>
/// that each append completes and replaces, expiry on the injected <see cref="TimeProvider"/>.</summary>
/// <remarks>Thread-safe; one instance per process. Expired streams read as empty at once and are removed lazily as new
/// appends arrive. Wake-ups are kept per followed job (not per stream), so a follower that arrives before the first
/// append, or outlives its stream's expiry, still wakes on the next append.</remarks>
public sealed class InMemoryJobStreams(IOptions<JobStreamOptions> options, TimeProvider timeProvider) : IJobStreams
{
    private readonly Lock _lock = new();
    private readonly Dictionary<string, JobStream> _streams = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Pulse> _pulses = new(StringComparer.Ordinal);
    // Expiry order for an incremental sweep; an entry whose stream got a later expiry since is re-queued when popped.
    private readonly PriorityQueue<string, DateTimeOffset> _expiries = new();
    private readonly JobStreamOptions _options = options.Value;

    /// <summary>Jobs with followers now (for tests: a follower that ended must not leave its wake-up behind).</summary>
    internal int FollowedJobs
    {
        get
        {
            lock (_lock)
            {
                return _pulses.Count;
            }
        }
    }

    public ValueTask<JobStreamAppend> AppendAsync(string jobId, IReadOnlyList<JobStreamEvent> events, CancellationToken cancellationToken)
    {
        JobStreamRules.ValidateBatch(jobId, events);
        cancellationToken.ThrowIfCancellationRequested();
        var now = timeProvider.GetUtcNow();
        lock (_lock)
        {
            SweepLocked(now);
            _streams.TryGetValue(jobId, out var stream);
            var last = stream is null ? -1 : stream.Events.Count - 1;
            var ended = stream?.Ended ?? false;
            if (events.Count == 0)
            {
                return ValueTask.FromResult(new JobStreamAppend(0, last, ended));
            }

            var first = events[0].Sequence;
            if (first > last + 1)
            {
                throw JobStreamException.Gap(jobId, last, first);
            }

            var skip = (int)Math.Min(last + 1 - first, events.Count);
            if (skip == events.Count)
            {
                return ValueTask.FromResult(new JobStreamAppend(0, last, ended));
            }

            if (ended)
            {
                throw JobStreamException.Ended(jobId, last);
            }

            var lastNew = events[^1];
            var lastToken = lastNew.IsFinal ? lastNew.Sequence - 1 : lastNew.Sequence;
            if (lastToken >= _options.MaxEvents)
            {
                throw JobStreamException.Full(jobId, last, _options.MaxEvents);
            }

            if (stream is null)
            {
                stream = new JobStream();
                _streams[jobId] = stream;
                _expiries.Enqueue(jobId, now + _options.Ttl);
            }

            for (var i = skip; i < events.Count; i++)
            {
                stream.Events.Add(events[i]);
            }

            stream.Ended = lastNew.IsFinal;
            stream.ExpiresAt = now + _options.Ttl;
            if (_pulses.TryGetValue(jobId, out var pulse))
            {
                pulse.Fire();
            }

            return ValueTask.FromResult(new JobStreamAppend(events.Count - skip, lastNew.Sequence, stream.Ended));
        }
    }

    public ValueTask<IReadOnlyList<JobStreamEvent>> ReadAsync(string jobId, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return ValueTask.FromResult<IReadOnlyList<JobStreamEvent>>(LiveLocked(jobId)?.Events.ToArray() ?? []);
        }
    }

    public async IAsyncEnumerable<JobStreamEvent> FollowAsync(string jobId, long afterSequence, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(jobId);
        ArgumentOutOfRangeException.ThrowIfLessThan(afterSequence, -1);
        var pulse = Register(jobId);
        try
        {
            var next = afterSequence + 1;
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Task signal;
                JobStreamEvent[] batch;
                bool ended;
                lock (_lock)
                {
                    // Taken before the look: an append after it completes this signal, so no wake-up is lost.
                    signal = pulse.Signal.Task;
                    var stream = LiveLocked(jobId);
                    ended = stream?.Ended ?? false;
                    batch = stream is null || next >= stream.Events.Count ? [] : stream.Events.GetRange((int)next, stream.Events.Count - (int)next).ToArray();
                }

                foreach (var e in batch)
                {
                    yield return e;
                    next = e.Sequence + 1;
                }

                if (ended)
                {
                    // The final event was yielded now or lies at or before afterSequence.
                    yield break;
                }

                if (batch.Length == 0)
                {
                    await signal.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            Release(jobId, pulse);
        }
    }

    private JobStream? LiveLocked(string jobId) =>
        _streams.TryGetValue(jobId, out var stream) && stream.ExpiresAt > timeProvider.GetUtcNow() ? stream : null;

    private Pulse Register(string jobId)
    {
        lock (_lock)
        {
            if (!_pulses.TryGetValue(jobId, out var pulse))
            {
                pulse = new Pulse();
                _pulses[jobId] = pulse;
            }

            pulse.Followers++;
            return pulse;
        }
    }

    private void Release(string jobId, Pulse pulse)
    {
        lock (_lock)
        {
            if (--pulse.Followers == 0)
            {
                _pulses.Remove(jobId);
            }
        }
    }

    /// <summary>Removes expired streams from the front of the expiry order: a few per call, never a full scan.</summary>
    private void SweepLocked(DateTimeOffset now)
    {
        while (_expiries.TryPeek(out var id, out var expiry) && expiry <= now)
        {
            _expiries.Dequeue();
            if (!_streams.TryGetValue(id, out var stream))
            {
                continue;
            }

            if (stream.ExpiresAt > now)
            {
                _expiries.Enqueue(id, stream.ExpiresAt);
            }
            else
            {
                _streams.Remove(id);
            }
        }
    }

    private sealed class JobStream
    {
        public List<JobStreamEvent> Events { get; } = [];
        public bool Ended { get; set; }
        public DateTimeOffset ExpiresAt { get; set; }
    }

    private sealed class Pulse
    {
        public TaskCompletionSource Signal { get; private set; } = NewSignal();
        public int Followers { get; set; }

        /// <summary>Wakes the followers waiting now; later ones take the new signal. Called under the lock.</summary>
        public void Fire()
        {
            var fired = Signal;
            Signal = NewSignal();
            fired.TrySetResult();
        }

        private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
