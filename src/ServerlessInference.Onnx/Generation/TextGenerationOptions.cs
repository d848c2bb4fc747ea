using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Onnx.Generation;

/// <summary>Limits of the continuous-batching scheduler of each loaded <c>text-generation</c> model (section
/// <c>Inference:Generation</c>, bound by every host that runs workers).</summary>
public sealed class TextGenerationOptions : IValidatableObject
{
    public const string Section = "Inference:Generation";

    /// <summary>Most sequences in one model's running batch; 1 runs them one at a time.</summary>
    public int MaxConcurrentSequences { get; set; } = 32;

    /// <summary>KV-cache bytes one model's admitted sequences may reserve, each reserving (prompt + max tokens) ×
    /// bytes per token. A sequence that would pass it waits; one that alone exceeds it is refused.</summary>
    public long KvCacheBudgetBytes { get; set; } = 1L << 30;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (MaxConcurrentSequences is < 1 or > 4096)
        {
            yield return new ValidationResult($"{Section}:MaxConcurrentSequences must be between 1 and 4096", [nameof(MaxConcurrentSequences)]);
        }

        if (KvCacheBudgetBytes < 1)
        {
            yield return new ValidationResult($"{Section}:KvCacheBudgetBytes must be positive", [nameof(KvCacheBudgetBytes)]);
        }
    }
}

[OptionsValidator]
public sealed partial class TextGenerationOptionsValidator : IValidateOptions<TextGenerationOptions>;
