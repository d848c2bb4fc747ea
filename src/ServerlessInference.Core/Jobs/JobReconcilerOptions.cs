using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Jobs;

/// <summary>Settings of the <see cref="JobReconciler"/> (section <c>Inference:Reconciler</c>).</summary>
public sealed class JobReconcilerOptions : IValidatableObject
{
    public const string Section = "Inference:Reconciler";

    /// <summary>Run the sweep in gateway hosts whose queue and result store can be listed (Redis). On by default.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Time between two sweeps.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>A job submitted less than this long ago is never judged: the gateway records a job before it enqueues
    /// it, so a young record may be in no queue yet. Must exceed the longest enqueue and clock skew between hosts.</summary>
    public TimeSpan Grace { get; set; } = TimeSpan.FromMinutes(2);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Interval <= TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:Interval must be positive", [nameof(Interval)]);
        }

        if (Grace < TimeSpan.FromSeconds(1))
        {
            yield return new ValidationResult($"{Section}:Grace must be at least one second (a job is recorded before it is enqueued)", [nameof(Grace)]);
        }
    }
}

[OptionsValidator]
public sealed partial class JobReconcilerOptionsValidator : IValidateOptions<JobReconcilerOptions>;
