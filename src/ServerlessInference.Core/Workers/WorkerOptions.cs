using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Workers;

/// <summary>Settings of a worker loop (section <c>Inference:Worker</c>).</summary>
public sealed class WorkerOptions : IValidatableObject
{
    public const string Section = "Inference:Worker";

    /// <summary>Most jobs taken from the queue at once (Triton's <c>max_batch_size</c>).</summary>
    public int MaxBatchSize { get; set; } = 32;

    /// <summary>How long to wait for more jobs once one has arrived. Zero (the default, like Triton's default
    /// dynamic batcher) takes what is already queued and adds no wait; a positive value trades latency for fuller batches.</summary>
    public TimeSpan MaxBatchDelay { get; set; } = TimeSpan.Zero;

    /// <summary>How long one receive blocks when the queue is empty.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How often leases are renewed while a batch runs; keep it well under the queue's lease duration.</summary>
    public TimeSpan LeaseRenewInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Most generation jobs this worker runs at once, across its text-generation models. They share each model's
    /// continuous batch (<c>Inference:Generation:MaxConcurrentSequences</c>); a few more than that keeps the next
    /// sequences ready to join. The worker receives no more jobs while this many run.</summary>
    public int MaxConcurrentGenerations { get; set; } = 40;

    /// <summary>Back-off after the queue could not be reached.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Model affinity: every receive passes a <see cref="Jobs.JobPreference"/> (the models warm here in the fair
    /// order, what other workers hold warm), so a warm worker takes its models' jobs and a cold one leaves them to it for
    /// <see cref="AffinityWait"/>. False: plain FIFO, as before affinity.</summary>
    public bool Affinity { get; set; } = true;

    /// <summary>How long a job whose model is warm on another worker waits for that worker before any worker may take it
    /// (and load the model).</summary>
    public TimeSpan AffinityWait { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>How long a job of a model not warm here must have waited before this worker, its warm pool full, takes it
    /// (the load evicts a model): a cold model's jobs gather into one load, and a worker between two batches of its own
    /// models waits for them instead of evicting one for a single job. A worker with room for any model in its warm
    /// pool does not wait, nor one whose next model to evict has gone unused this long (see
    /// <see cref="Jobs.JobPreference.LoadWait"/>).</summary>
    public TimeSpan LoadWait { get; set; } = TimeSpan.FromMilliseconds(500);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (MaxBatchSize is < 1 or > 4096)
        {
            yield return new ValidationResult($"{Section}:MaxBatchSize must be between 1 and 4096", [nameof(MaxBatchSize)]);
        }

        if (MaxConcurrentGenerations < 1)
        {
            yield return new ValidationResult($"{Section}:MaxConcurrentGenerations must be at least 1", [nameof(MaxConcurrentGenerations)]);
        }

        if (MaxBatchDelay < TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:MaxBatchDelay must not be negative", [nameof(MaxBatchDelay)]);
        }

        if (PollInterval <= TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:PollInterval must be positive", [nameof(PollInterval)]);
        }

        if (LeaseRenewInterval <= TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:LeaseRenewInterval must be positive", [nameof(LeaseRenewInterval)]);
        }

        if (AffinityWait < TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:AffinityWait must not be negative", [nameof(AffinityWait)]);
        }

        if (LoadWait < TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:LoadWait must not be negative", [nameof(LoadWait)]);
        }

        // Half of it is the period of the timer that heartbeats while a batch or a model load blocks the loop.
        if (HeartbeatInterval < TimeSpan.FromMilliseconds(2))
        {
            yield return new ValidationResult($"{Section}:HeartbeatInterval must be at least 2 ms", [nameof(HeartbeatInterval)]);
        }
    }
}

[OptionsValidator]
public sealed partial class WorkerOptionsValidator : IValidateOptions<WorkerOptions>;
