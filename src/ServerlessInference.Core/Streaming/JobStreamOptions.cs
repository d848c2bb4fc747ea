using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Streaming;

/// <summary>Settings every job stream provider honours (section <c>Inference:Streams</c>).</summary>
public sealed class JobStreamOptions : IValidatableObject
{
    public const string Section = "Inference:Streams";

    /// <summary>The most events a stream holds before its final event (which always fits): bounds the memory of one
    /// job. A generation longer than this cannot be streamed, so keep it above every model's context length.</summary>
    public int MaxEvents { get; set; } = 16_384;

    /// <summary>How long a stream is kept after its last append (each append restarts it).</summary>
    public TimeSpan Ttl { get; set; } = TimeSpan.FromHours(1);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (MaxEvents is < 1 or > 1_000_000)
        {
            yield return new ValidationResult($"{Section}:MaxEvents must be between 1 and 1000000, not {MaxEvents}", [nameof(MaxEvents)]);
        }

        if (Ttl <= TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:Ttl must be positive", [nameof(Ttl)]);
        }
    }
}

[OptionsValidator]
public sealed partial class JobStreamOptionsValidator : IValidateOptions<JobStreamOptions>;
