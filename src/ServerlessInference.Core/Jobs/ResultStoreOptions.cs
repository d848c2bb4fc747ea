using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Jobs;

/// <summary>Settings every result store provider honours (section <c>Inference:Results</c>).</summary>
public sealed class ResultStoreOptions : IValidatableObject
{
    public const string Section = "Inference:Results";

    /// <summary>How long a job's record is kept after it ends (and after it was submitted, while it waits).</summary>
    public TimeSpan Ttl { get; set; } = TimeSpan.FromHours(1);

    /// <summary>How long the record of a job whose result was already given in the response to its request (a
    /// synchronous infer or generate) is kept, for a client that lost the response and polls the <c>X-Job-Id</c>
    /// (default 1 minute; a record is never kept longer than <see cref="Ttl"/> because of it).</summary>
    public TimeSpan AnsweredRetention { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Most records of ended jobs kept (default 100,000); beyond it the ones closest to expiry go first.</summary>
    public int MaxRetainedRecords { get; set; } = 100_000;

    /// <summary>Most bytes of records of ended jobs kept, responses included (default 256 MiB); beyond it the ones
    /// closest to expiry go first. Records of jobs still queued or running are bounded by the queue's capacity instead.</summary>
    public long MaxRetainedBytes { get; set; } = 256L << 20;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Ttl <= TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:Ttl must be positive", [nameof(Ttl)]);
        }

        if (AnsweredRetention <= TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:AnsweredRetention must be positive", [nameof(AnsweredRetention)]);
        }

        if (MaxRetainedRecords < 1)
        {
            yield return new ValidationResult($"{Section}:MaxRetainedRecords must be positive", [nameof(MaxRetainedRecords)]);
        }

        if (MaxRetainedBytes < 1)
        {
            yield return new ValidationResult($"{Section}:MaxRetainedBytes must be positive", [nameof(MaxRetainedBytes)]);
        }
    }
}

[OptionsValidator]
public sealed partial class ResultStoreOptionsValidator : IValidateOptions<ResultStoreOptions>;
