using System.Buffers;
using Microsoft.ML.OnnxRuntime;

namespace ServerlessInference.Onnx.Generation;

/// <summary>The prefill of one sequence (B=1), starting from the KV of the cached blocks it holds.</summary>
internal static class PrefixPrefill
{
    /// <summary>Runs <paramref name="tokens"/> after the first <paramref name="cached"/> of them, whose KV is copied from
    /// <paramref name="chain"/>: at most its whole blocks, and never the last token, whose logits give the next token (a
    /// prompt cached to its end reuses all but its last token). Returns <c>logits</c> [1, tokens - cached, V] then the
    /// presents [1,H,tokens,Dh]; the caller disposes them.</summary>
    public static IDisposableReadOnlyCollection<OrtValue> Run(DecoderSession decoder, List<int> tokens, PrefixCache? cache,
        List<PrefixBlock>? chain, out int cached)
    {
        var length = tokens.Count;
        cached = cache is null || chain is null ? 0 : Math.Min(chain.Count * cache.BlockTokens, length - 1);
        var rows = length - cached;
        var ids = new long[rows];
        var mask = new long[length];
        var positions = new long[rows];
        mask.AsSpan().Fill(1);
        for (var i = 0; i < rows; i++)
        {
            ids[i] = tokens[cached + i];
            positions[i] = cached + i;
        }

        using var idsValue = OrtValue.CreateTensorValueFromMemory(ids, [1, rows]);
        using var maskValue = OrtValue.CreateTensorValueFromMemory(mask, [1, length]);
        using var positionsValue = OrtValue.CreateTensorValueFromMemory(positions, [1, rows]);
        var past = new OrtValue[2 * decoder.Layers];
        var arrays = cached > 0 ? cache!.CopyOut(chain!, cached) : null;
        try
        {
            var size = decoder.Heads * cached * decoder.HeadDim;
            for (var i = 0; i < past.Length; i++)
            {
                past[i] = arrays is null
                    ? OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [1, decoder.Heads, 0, decoder.HeadDim])
                    : OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, new Memory<float>(arrays[i], 0, size), [1, decoder.Heads, cached, decoder.HeadDim]);
            }

            return decoder.Run(idsValue, maskValue, positionsValue, past);
        }
        finally
        {
            foreach (var value in past)
            {
                value?.Dispose();
            }

            if (arrays is not null)
            {
                foreach (var array in arrays)
                {
                    ArrayPool<float>.Shared.Return(array);
                }
            }
        }
    }
}
