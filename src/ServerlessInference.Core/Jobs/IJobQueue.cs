namespace ServerlessInference.Jobs;

/// <summary>A queue of inference jobs with at-least-once delivery.</summary>
/// <remarks>A received job stays invisible to other workers until its lease is completed, abandoned,
/// dead-lettered or expires; an expired lease makes the job visible again with a higher delivery count.
/// Implementations are thread-safe.</remarks>
public interface IJobQueue
{
    /// <summary>Deliveries after which a worker dead-letters a job instead of running it again.</summary>
    int MaxDeliveryCount { get; }

    /// <summary>Adds a job.</summary>
    /// <exception cref="Protocol.InferenceException">Queue full (<c>QueueFull</c>) or unreachable (<c>Unavailable</c>).</exception>
    ValueTask EnqueueAsync(InferenceJob job, CancellationToken cancellationToken);

    /// <summary>Waits up to <paramref name="maxWait"/> for at least one job, then returns at once with up to
    /// <paramref name="maxCount"/> jobs that are already queued, oldest first (<see cref="JobPreference.None"/>).
    /// Returns an empty list when none arrived.</summary>
    ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, CancellationToken cancellationToken)
        => ReceiveAsync(maxCount, maxWait, JobPreference.None, cancellationToken);

    /// <summary>As <see cref="ReceiveAsync(int, TimeSpan, CancellationToken)"/>, choosing among waiting jobs by
    /// <paramref name="preference"/> (see <see cref="JobPreference"/> for the rule): a receive may wait, up to
    /// <paramref name="maxWait"/>, while every waiting job is kept for a worker that holds its key warm. A provider
    /// that cannot choose says so in its docs and delivers FIFO (Service Bus).</summary>
    ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, JobPreference preference, CancellationToken cancellationToken);

    /// <summary>Jobs waiting and in flight; <see cref="QueueDepth.ByModel"/> when the provider can count per model.</summary>
    ValueTask<QueueDepth> GetDepthAsync(CancellationToken cancellationToken);
}

/// <summary>A worker's claim on one delivered job.</summary>
/// <remarks>Exactly one of complete, abandon or dead-letter should be called; later calls are ignored.
/// A lease that is never settled expires and the job is delivered again.</remarks>
public abstract class JobLease
{
    public abstract InferenceJob Job { get; }

    /// <summary>1 on the first delivery.</summary>
    public abstract int DeliveryCount { get; }

    /// <summary>The failure recorded by the last abandon, if any (shown in the dead-letter reason).</summary>
    public abstract string? LastError { get; }

    /// <summary>What <see cref="LastError"/> says on a redelivery whose previous lease expired with nothing recorded.
    /// Every provider reports this same text (a Service Bus lock is a lease too), and the queue contract checks it.</summary>
    public const string LeaseExpiredError = "the worker's lease expired before it finished (the worker stopped or crashed)";

    /// <summary>Removes the job from the queue. Call only after its result is stored.</summary>
    public abstract ValueTask CompleteAsync(CancellationToken cancellationToken);

    /// <summary>Makes the job visible again at once (transient failure or a worker that stops).</summary>
    public abstract ValueTask AbandonAsync(string? error, CancellationToken cancellationToken);

    /// <summary>Moves the job to the dead-letter store with <paramref name="reason"/>.</summary>
    public abstract ValueTask DeadLetterAsync(string reason, CancellationToken cancellationToken);

    /// <summary>Extends the lease while a long batch runs.</summary>
    public abstract ValueTask RenewAsync(CancellationToken cancellationToken);
}
