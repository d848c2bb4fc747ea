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

    /// <summary>Keep the KV of prompts in blocks of <see cref="PrefixCacheBlockTokens"/> tokens, so a later prompt that
    /// starts with the same tokens prefills only the rest (default on). Cached blocks count against
    /// <see cref="KvCacheBudgetBytes"/>; the least recently used ones that no running sequence holds are evicted first.</summary>
    public bool PrefixCaching { get; set; } = true;

    /// <summary>Tokens per prefix-cache block: the unit of reuse (a prompt reuses whole cached blocks) and of eviction.</summary>
    public int PrefixCacheBlockTokens { get; set; } = 16;

    /// <summary>A copy with another <see cref="KvCacheBudgetBytes"/> (what is left after a draft's reservation).</summary>
    internal TextGenerationOptions WithKvCacheBudget(long bytes)
    {
        var copy = (TextGenerationOptions)MemberwiseClone();
        copy.KvCacheBudgetBytes = bytes;
        return copy;
    }

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

        if (PrefixCacheBlockTokens is < 1 or > 1024)
        {
            yield return new ValidationResult($"{Section}:PrefixCacheBlockTokens must be between 1 and 1024", [nameof(PrefixCacheBlockTokens)]);
        }
    }
}

[OptionsValidator]
public sealed partial class TextGenerationOptionsValidator : IValidateOptions<TextGenerationOptions>;
