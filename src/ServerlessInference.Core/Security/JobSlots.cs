using System.Collections.Concurrent;
using ServerlessInference.Jobs;

namespace ServerlessInference.Security;

/// <summary>Counts each key's jobs that were accepted and have not ended, for the concurrent-jobs limit. In this process
/// only: a job holds its slot on the gateway instance that accepted it.</summary>
/// <remarks>A slot is released the first time any of these happens: the gateway reads the job's record as ended (a sync
/// answer, a poll, a cancel: <see cref="SlotReleasingResultStore"/>), the job's watcher (<see cref="WatchAsync"/>) sees it end, its
/// record is gone (expired), or its deadline passes while it is still queued (no worker starts it after that). Release
/// is idempotent. Thread-safe.</remarks>
public sealed class JobSlots(IResultStore results, TimeProvider timeProvider) : IDisposable
{
    /// <summary>How long one wait of the watcher lasts before it reads the record again.</summary>
    private static readonly TimeSpan s_pollInterval = TimeSpan.FromSeconds(30);

    /// <summary>How long the watcher pauses after the result store failed.</summary>
    private static readonly TimeSpan s_retryInterval = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, string> _owners = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _counts = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();
    private readonly CancellationTokenSource _stopping = new();

    /// <summary>Takes a slot of <paramref name="keyId"/> for <paramref name="jobId"/> unless it holds
    /// <paramref name="max"/> already.</summary>
    public bool TryAcquire(string keyId, int max, string jobId)
    {
        lock (_lock)
        {
            var held = _counts.GetValueOrDefault(keyId);
            if (held >= max)
            {
                return false;
            }

            _counts[keyId] = held + 1;
            _owners[jobId] = keyId;
            return true;
        }
    }

    /// <summary>Frees <paramref name="jobId"/>'s slot, if it holds one.</summary>
    public void Release(string jobId)
    {
        if (!_owners.TryRemove(jobId, out var keyId))
        {
            return;
        }

        lock (_lock)
        {
            var held = _counts.GetValueOrDefault(keyId) - 1;
            if (held <= 0)
            {
                _counts.Remove(keyId);
            }
            else
            {
                _counts[keyId] = held;
            }
        }
    }

    /// <summary>Slots <paramref name="keyId"/> holds now.</summary>
    public int InUse(string keyId)
    {
        lock (_lock)
        {
            return _counts.GetValueOrDefault(keyId);
        }
    }

    /// <summary>Jobs holding a slot now, all keys together.</summary>
    public int Held => _owners.Count;

    /// <summary>Starts <see cref="WatchAsync"/> for <paramref name="job"/> in the background, until this instance is
    /// disposed (the host stops).</summary>
    public void Watch(InferenceJob job) => _ = WatchAsync(job, _stopping.Token);

    /// <summary>Stops the watchers.</summary>
    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
    }

    /// <summary>Waits for <paramref name="job"/> to end (see the remarks) and releases its slot; ends early, releasing,
    /// when <paramref name="cancellationToken"/> is cancelled (the host stops, and its counts with it).</summary>
    public async Task WatchAsync(InferenceJob job, CancellationToken cancellationToken)
    {
        try
        {
            while (_owners.ContainsKey(job.Id) && !cancellationToken.IsCancellationRequested)
            {
                JobRecord? record;
                try
                {
                    var untilDeadline = job.Deadline - timeProvider.GetUtcNow();
                    var wait = untilDeadline > TimeSpan.Zero && untilDeadline < s_pollInterval ? untilDeadline : s_pollInterval;
                    record = await results.WaitAsync(job.Id, wait, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // The store is down: the job may still be running, so keep its slot and look again.
                    await Task.Delay(s_retryInterval, timeProvider, cancellationToken).ConfigureAwait(false);
                    continue;
                }

                if (record is null || record.Status.IsTerminal() ||
                    (record.Status == JobStatus.Queued && timeProvider.GetUtcNow() >= job.Deadline))
                {
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            Release(job.Id);
        }
    }
}

/// <summary>The result store as the gateway reads it: every record read as ended frees its job's slot in
/// <see cref="JobSlots"/> before the caller sees it, so the client's next request finds the slot free.</summary>
internal sealed class SlotReleasingResultStore(IResultStore inner, JobSlots slots) : IResultStore
{
    public ValueTask TrackAsync(InferenceJob job, CancellationToken cancellationToken) => inner.TrackAsync(job, cancellationToken);

    public ValueTask<bool> TryStartAsync(string jobId, CancellationToken cancellationToken) => inner.TryStartAsync(jobId, cancellationToken);

    public ValueTask MarkAnsweredAsync(string jobId, CancellationToken cancellationToken) => inner.MarkAnsweredAsync(jobId, cancellationToken);

    public async ValueTask<(bool Cancelled, JobRecord? Record)> TryCancelAsync(string jobId, CancellationToken cancellationToken)
    {
        var result = await inner.TryCancelAsync(jobId, cancellationToken).ConfigureAwait(false);
        if (result.Record is { } record && record.Status.IsTerminal())
        {
            slots.Release(jobId);
        }

        return result;
    }

    public async ValueTask PublishAsync(JobRecord result, CancellationToken cancellationToken)
    {
        await inner.PublishAsync(result, cancellationToken).ConfigureAwait(false);
        slots.Release(result.Id);
    }

    public async ValueTask<JobRecord?> GetAsync(string jobId, CancellationToken cancellationToken)
    {
        var record = await inner.GetAsync(jobId, cancellationToken).ConfigureAwait(false);
        if (record is { } r && r.Status.IsTerminal())
        {
            slots.Release(jobId);
        }

        return record;
    }

    public async ValueTask<JobRecord?> WaitAsync(string jobId, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var record = await inner.WaitAsync(jobId, timeout, cancellationToken).ConfigureAwait(false);
        if (record is { } r && r.Status.IsTerminal())
        {
            slots.Release(jobId);
        }

        return record;
    }
}
