namespace ServerlessInference.Jobs;

/// <summary>Job states and results, read by the gateway and written by workers.</summary>
/// <remarks>Records expire after a TTL, and records of ended jobs sooner when there are more of them, or more bytes,
/// than <see cref="ResultStoreOptions.MaxRetainedRecords"/> / <see cref="ResultStoreOptions.MaxRetainedBytes"/> allow
/// (those closest to expiry first). Transitions are atomic: a job that a worker has started cannot be
/// cancelled, and a cancelled job is never started. Implementations are thread-safe.</remarks>
public interface IResultStore
{
    /// <summary>Records a new job as <see cref="JobStatus.Queued"/>.</summary>
    ValueTask TrackAsync(InferenceJob job, CancellationToken cancellationToken);

    /// <summary>Queued → Running. False when the job is no longer queued (cancelled, or already ended).</summary>
    ValueTask<bool> TryStartAsync(string jobId, CancellationToken cancellationToken);

    /// <summary>Queued → Cancelled. Returns whether this call cancelled it and the record after the attempt
    /// (null if the job is unknown).</summary>
    ValueTask<(bool Cancelled, JobRecord? Record)> TryCancelAsync(string jobId, CancellationToken cancellationToken);

    /// <summary>Stores a terminal record and wakes waiters. The first terminal result wins, with one exception: a
    /// <see cref="JobStatus.Succeeded"/> record replaces a record marked <see cref="JobRecord.ReplaceableBySuccess"/>
    /// (a dead-letter or expiry the platform decided while a slow worker still ran an earlier delivery), so such a
    /// worker's success is never hidden. The check and the write are one atomic step.</summary>
    ValueTask PublishAsync(JobRecord result, CancellationToken cancellationToken);

    ValueTask<JobRecord?> GetAsync(string jobId, CancellationToken cancellationToken);

    /// <summary>Waits until the job is terminal or <paramref name="timeout"/> passes; returns the latest record.</summary>
    ValueTask<JobRecord?> WaitAsync(string jobId, TimeSpan timeout, CancellationToken cancellationToken);

    /// <summary>The client got the job's terminal result in the response to its request: keep the record only for
    /// <see cref="ResultStoreOptions.AnsweredRetention"/> from now (never longer than it would have been kept). Does
    /// nothing for an unknown or unfinished job.</summary>
    ValueTask MarkAnsweredAsync(string jobId, CancellationToken cancellationToken);
}
