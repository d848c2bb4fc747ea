using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Jobs;

/// <summary>Settings every job queue provider honours (section <c>Inference:Queue</c>).</summary>
public sealed class JobQueueOptions : IValidatableObject
{
    public const string Section = "Inference:Queue";

    /// <summary>Most jobs queued or in flight; beyond it enqueue answers 429.</summary>
    public int Capacity { get; set; } = 10_000;

    /// <summary>Most bytes of requests queued or in flight (default 1 GiB); beyond it enqueue answers 429 like a full
    /// queue, and one job larger than all of it answers 413. The embedded queue counts a job's tensors plus a small
    /// allowance (<see cref="InferenceJob.ApproximateBytes"/>), Redis the encoded request it stores. Service Bus does not
    /// enforce it: its namespace's queue size quota bounds it there (a full queue answers 429 too).</summary>
    public long MaxQueuedBytes { get; set; } = 1L << 30;

    /// <summary>How long a received job stays invisible before it is delivered again.</summary>
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Deliveries after which a worker dead-letters the job instead of running it again.</summary>
    public int MaxDeliveryCount { get; set; } = 5;

    /// <summary>Seconds a client is told to wait (Retry-After) when the queue is full.</summary>
    public int RetryAfterSeconds { get; set; } = 1;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Capacity < 1)
        {
            yield return new ValidationResult($"{Section}:Capacity must be positive", [nameof(Capacity)]);
        }

        if (MaxQueuedBytes < 1)
        {
            yield return new ValidationResult($"{Section}:MaxQueuedBytes must be positive", [nameof(MaxQueuedBytes)]);
        }

        if (MaxDeliveryCount < 1)
        {
            yield return new ValidationResult($"{Section}:MaxDeliveryCount must be at least 1", [nameof(MaxDeliveryCount)]);
        }

        if (LeaseDuration <= TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:LeaseDuration must be positive", [nameof(LeaseDuration)]);
        }
    }
}

[OptionsValidator]
public sealed partial class JobQueueOptionsValidator : IValidateOptions<JobQueueOptions>;
