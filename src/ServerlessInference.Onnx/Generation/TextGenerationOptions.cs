using System.ComponentModel.DataAnnotations;

namespace ServerlessInference.Onnx.Generation;

/// <summary>Limits of the continuous-batching scheduler of each loaded <c>text-generation</c> model.</summary>
/// <remarks>Meant to be bound from <see cref="SectionName"/> by the hosts (not wired yet).</remarks>
public sealed class TextGenerationOptions
{
    public const string SectionName = "Inference:Generation";

    /// <summary>Most sequences in one model's running batch; 1 runs them one at a time.</summary>
    [Range(1, 4096)]
    public int MaxConcurrentSequences { get; set; } = 32;

    /// <summary>KV-cache bytes one model's admitted sequences may reserve, each reserving (prompt + max tokens) ×
    /// bytes per token. A sequence that would pass it waits; one that alone exceeds it is refused.</summary>
    [Range(1, long.MaxValue)]
    public long KvCacheBudgetBytes { get; set; } = 1L << 30;
}
