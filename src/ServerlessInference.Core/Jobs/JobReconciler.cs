using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Jobs;

/// <summary>Finds jobs that can never end by themselves and ends them with the reason: a record that says
/// Queued or Running while the queue holds no entry for the job.</summary>
/// <remarks>
/// <para>How it happens: the record and the queue entry are two writes. A Redis that restarts from an append-only file
/// written with <c>appendfsync everysec</c> may come back without the last second of writes, the entry among them but
/// not the record written just before it; a gateway that stops between the two writes leaves the record alone; with
/// Service Bus as the queue the two writes are in different systems, and a Redis restart can take back a result whose
/// message was already completed. No worker will ever see such a job, and the queue no longer holds its request.</para>
/// <para>The rule, one sweep: list the ids the queue holds (waiting or leased) first, then read the unfinished records.
/// A record read after the list, submitted more than <see cref="JobReconcilerOptions.Grace"/> ago, whose id was not
/// in the list, is stranded: every way a job leaves a queue (complete, expire, cancel, dead-letter) ends its record
/// first, and an abandoned job is re-added in the same atomic step, so a job that left the queue before the list was
/// taken already had a terminal record when it was read. It is published as <see cref="JobStatus.Failed"/> with the
/// reason (the request is gone, so it cannot be re-enqueued). The grace covers a job recorded but not yet enqueued.</para>
/// <para>It assumes one queue per result store (per Redis key prefix): a record of another queue's job would look
/// stranded. Sweeps in several processes at once are harmless: publishing keeps the first terminal result.</para>
/// </remarks>
public sealed partial class JobReconciler(
    IJobQueue queue, IResultStore results, IOptions<JobReconcilerOptions> options, TimeProvider timeProvider, ILogger<JobReconciler> logger)
{
    /// <summary>The failure text of a job that was still queued.</summary>
    public const string LostWhileQueued = "the job's queue entry was lost (the queue's store restarted without it, or the gateway stopped before enqueuing it); it never ran: submit it again";

    /// <summary>The failure text of a job that had started.</summary>
    public const string LostWhileRunning = "the job left the queue but its result was never stored (lost in a restart of the result store); submit it again";

    /// <summary>True when the queue and the result store can both be listed.</summary>
    public bool CanRun => queue is IJobQueueInventory && results is IUnfinishedJobScan;

    /// <summary>One sweep. Returns the ids of the jobs it failed.</summary>
    /// <exception cref="InvalidOperationException">The queue or the result store cannot be listed (<see cref="CanRun"/>).</exception>
    public async ValueTask<IReadOnlyList<string>> ReconcileAsync(CancellationToken cancellationToken)
    {
        if (queue is not IJobQueueInventory inventory || results is not IUnfinishedJobScan scan)
        {
            throw new InvalidOperationException($"{queue.GetType().Name} or {results.GetType().Name} cannot be listed; nothing to reconcile");
        }

        // The queue first: a record read after this list that is still unfinished and not listed was never (or is no
        // longer) in the queue.
        var held = await inventory.ListJobIdsAsync(cancellationToken).ConfigureAwait(false);
        var cutoff = timeProvider.GetUtcNow() - options.Value.Grace;
        var failed = new List<string>();
        await foreach (var record in scan.ListUnfinishedAsync(cancellationToken).ConfigureAwait(false))
        {
            if (record.Status.IsTerminal() || record.SubmittedAt > cutoff || held.Contains(record.Id))
            {
                continue;
            }

            var reason = record.Status == JobStatus.Queued ? LostWhileQueued : LostWhileRunning;
            Log.Stranded(logger, record.Id, record.Status, reason);
            await results.PublishAsync(new JobRecord
            {
                Id = record.Id,
                Model = record.Model,
                Version = record.Version,
                Status = JobStatus.Failed,
                SubmittedAt = record.SubmittedAt,
                StartedAt = record.StartedAt,
                CompletedAt = timeProvider.GetUtcNow(),
                Error = reason,
            }, cancellationToken).ConfigureAwait(false);
            failed.Add(record.Id);
        }

        return failed;
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "Job {JobId} was {Status} but in no queue; failed it: {Reason}")]
        public static partial void Stranded(ILogger logger, string jobId, JobStatus status, string reason);
    }
}
