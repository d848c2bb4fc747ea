using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Jobs;

/// <summary>Settings every job queue provider honours (section <c>Inference:Queue</c>).</summary>
public sealed class JobQueueOptions : IValidatableObject
{
    public const string Section = "Inference:Queue";

    /// <summary>Most jobs queued or in flight; beyond it enqueue answers 429.</summary>
    public int Capacity { get; set; } = 10_000;

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
