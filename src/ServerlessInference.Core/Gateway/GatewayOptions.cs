using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Gateway;

/// <summary>Settings of the HTTP gateway (section <c>Inference:Gateway</c>).</summary>
public sealed class GatewayOptions : IValidatableObject
{
    public const string Section = "Inference:Gateway";

    /// <summary>Largest request body accepted; larger bodies get 413 (default 16 MiB).</summary>
    public long MaxBodyBytes { get; set; } = 16L << 20;

    /// <summary>How long an infer call waits for its result before answering 202 (default 60 s; <c>Prefer: wait=N</c> overrides).</summary>
    public TimeSpan DefaultWait { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Upper bound on <c>Prefer: wait=N</c>.</summary>
    public TimeSpan MaxWait { get; set; } = TimeSpan.FromSeconds(300);

    /// <summary>A job not started this long after submission expires instead of running.</summary>
    public TimeSpan JobDeadline { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Count a generation prompt's tokens at the gateway, with the model's tokenizer, and refuse one that does not
    /// fit the context before it is queued (default on). The gateway then fetches each text-generation model's weights
    /// once, to read the tokenizer from them; off, an over-long prompt is refused by the worker instead (still a 400).</summary>
    public bool CountPromptTokens { get; set; } = true;

    /// <summary>Retry-After seconds on 503 when a backing service is down.</summary>
    public int UnavailableRetryAfterSeconds { get; set; } = 5;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (MaxBodyBytes is < 1 or > int.MaxValue)
        {
            yield return new ValidationResult($"{Section}:MaxBodyBytes must be between 1 and 2147483647", [nameof(MaxBodyBytes)]);
        }

        if (DefaultWait < TimeSpan.Zero || DefaultWait > MaxWait)
        {
            yield return new ValidationResult($"{Section}:DefaultWait must be between 0 and {Section}:MaxWait", [nameof(DefaultWait)]);
        }

        if (JobDeadline <= TimeSpan.Zero)
        {
            yield return new ValidationResult($"{Section}:JobDeadline must be positive", [nameof(JobDeadline)]);
        }
    }
}

[OptionsValidator]
public sealed partial class GatewayOptionsValidator : IValidateOptions<GatewayOptions>;
