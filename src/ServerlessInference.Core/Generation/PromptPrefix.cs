using System.Buffers;
using System.Security.Cryptography;
using System.Text;

namespace ServerlessInference.Generation;

/// <summary>The routing key of a generation prompt (<see cref="Jobs.InferenceJob.PrefixKey"/>): a short hash of the first
/// <see cref="Bytes"/> bytes of the rendered prompt's UTF-8, or null for a shorter prompt.</summary>
/// <remarks>Bytes of text, not tokens: the gateway need not load a tokenizer (the Functions gateway may run without one),
/// and the key does not depend on a worker's block size. The worker computes the same key from the same prompt text and
/// names the keys whose first prompt block its prefix cache holds (<see cref="IPrefixCacheView"/>), so they match. A
/// rendered prompt of 256 bytes is some tens of tokens: at least one cache block at the usual 16 tokens per block.</remarks>
public static class PromptPrefix
{
    /// <summary>Leading UTF-8 bytes of the prompt that the key covers; shorter prompts have no key.</summary>
    public const int Bytes = 256;

    /// <summary>The key of <paramref name="prompt"/>: 16 lowercase hex digits (the first 8 bytes of the SHA-256 of its
    /// first <see cref="Bytes"/> UTF-8 bytes), or null when it is shorter.</summary>
    public static string? Key(string? prompt)
    {
        if (prompt is null || prompt.Length * 3 < Bytes)
        {
            return null;
        }

        // Enough characters for 256 bytes whatever they are (one UTF-16 unit is at most 3 UTF-8 bytes).
        var head = prompt.AsSpan(0, Math.Min(prompt.Length, Bytes));
        var buffer = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(head.Length));
        try
        {
            var count = Encoding.UTF8.GetBytes(head, buffer);
            return count < Bytes ? null : Key(buffer.AsSpan(0, count));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>The key of a prompt given as UTF-8 (the queue's <c>text_input</c>), or null when it is shorter than
    /// <see cref="Bytes"/>.</summary>
    public static string? Key(ReadOnlySpan<byte> utf8Prompt)
    {
        if (utf8Prompt.Length < Bytes)
        {
            return null;
        }

        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(utf8Prompt[..Bytes], hash);
        return Convert.ToHexStringLower(hash[..8]);
    }

    /// <summary>The key of a queued generation request's <c>text_input</c>; null when it has none or it is short.</summary>
    public static string? Key(InferenceRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var input = request.Inputs.FirstOrDefault(i => i.Name == GenerationJobs.TextInput);
        return input?.BytesData is { Count: 1 } texts ? Key(texts[0]) : null;
    }
}
