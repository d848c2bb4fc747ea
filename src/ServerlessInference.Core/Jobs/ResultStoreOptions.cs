using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Jobs;

/// <summary>Settings every result store provider honours (section <c>Inference:Results</c>).</summary>
public sealed class ResultStoreOptions : IValidatableObject
{
    public const string Section = "Inference:Results";

    /// <summary>How long a job's record is kept after it ends (and after it was submitted, while it waits).</summary>
    public TimeSpan Ttl { get; set; } = TimeSpan.FromHours(1);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Ttl <= TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:Ttl must be positive", [nameof(Ttl)]);
        }
    }
}

[OptionsValidator]
public sealed partial class ResultStoreOptionsValidator : IValidateOptions<ResultStoreOptions>;
