namespace ServerlessInference.Jobs;

/// <summary>A job queue that can say which jobs it holds, for the <see cref="JobReconciler"/>.</summary>
/// <remarks>Thread-safe. Lists without taking anything off the queue; may read the whole queue, so it is for a
/// background sweep, not a request path.</remarks>
public interface IJobQueueInventory
{
    /// <summary>Ids of every job the queue holds now, waiting or leased (dead letters are not held). A job that stays in
    /// the queue while this runs is in the set, including one abandoned meanwhile; a job added meanwhile may or may not be.</summary>
    ValueTask<IReadOnlySet<string>> ListJobIdsAsync(CancellationToken cancellationToken);
}

/// <summary>A result store that can list the records of jobs not yet ended, for the <see cref="JobReconciler"/>.</summary>
/// <remarks>Thread-safe. May scan the whole store: for a background sweep only.</remarks>
public interface IUnfinishedJobScan
{
    /// <summary>The records whose status is <see cref="JobStatus.Queued"/> or <see cref="JobStatus.Running"/>, each read
    /// when this reaches it (not one snapshot). Only the id, model, version, status and submit time are filled in.</summary>
    IAsyncEnumerable<JobRecord> ListUnfinishedAsync(CancellationToken cancellationToken);
}
