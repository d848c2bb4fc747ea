using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Scaling;

/// <summary>Settings of the scaler (section <c>Inference:Scaling</c>).</summary>
public sealed class ScalingOptions : IValidatableObject
{
    public const string Section = "Inference:Scaling";

    public int MinReplicas { get; set; }

    public int MaxReplicas { get; set; } = 4;

    /// <summary>Queued plus in-flight jobs one worker is expected to carry (KEDA's <c>queueLength</c> target).</summary>
    public int TargetJobsPerWorker { get; set; } = 32;

    /// <summary>From zero workers, scale only when at least this many jobs wait (KEDA's <c>activationQueueLength</c>).</summary>
    public int ActivationThreshold { get; set; } = 1;

    /// <summary>A scale-down happens only after every recommendation in this window was lower (HPA's stabilization window).</summary>
    public TimeSpan ScaleDownStabilization { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>To zero only after the queue has been empty this long (KEDA's <c>cooldownPeriod</c>).</summary>
    public TimeSpan IdleToZero { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How often the scaler ticks in hosts that run it on a timer of their own.</summary>
    public TimeSpan TickInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The shortest time between two ticks run because a job arrived that no worker could take (activation);
    /// nudges in between are coalesced into the next one.</summary>
    public TimeSpan ActivationInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (MaxReplicas < 1)
        {
            yield return new ValidationResult($"{Section}:MaxReplicas must be at least 1", [nameof(MaxReplicas)]);
        }

        if (TargetJobsPerWorker < 1)
        {
            yield return new ValidationResult($"{Section}:TargetJobsPerWorker must be at least 1", [nameof(TargetJobsPerWorker)]);
        }

        if (ActivationThreshold < 1)
        {
            yield return new ValidationResult($"{Section}:ActivationThreshold must be at least 1", [nameof(ActivationThreshold)]);
        }

        if (MinReplicas < 0 || MinReplicas > MaxReplicas)
        {
            yield return new ValidationResult($"{Section}:MinReplicas must be between 0 and {Section}:MaxReplicas", [nameof(MinReplicas)]);
        }

        if (TickInterval <= TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:TickInterval must be positive", [nameof(TickInterval)]);
        }

        if (ActivationInterval < TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:ActivationInterval must not be negative", [nameof(ActivationInterval)]);
        }
    }
}

[OptionsValidator]
public sealed partial class ScalingOptionsValidator : IValidateOptions<ScalingOptions>;
