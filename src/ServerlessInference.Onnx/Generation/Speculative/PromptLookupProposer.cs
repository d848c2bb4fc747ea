using System.Runtime.InteropServices;

namespace ServerlessInference.Onnx.Generation.Speculative;

/// <summary>Prompt lookup decoding: finds the sequence's last n tokens earlier in its own tokens (prompt and text so
/// far) and proposes what followed them there. No second model; it pays when the answer copies spans of the prompt
/// (quoting, editing code, extraction) or repeats itself.</summary>
/// <remarks>The longest n-gram first, from <c>maxNgram</c> down to 1; among matches of one length the most recent,
/// whose continuation is the likeliest to be repeated now. Stateless.</remarks>
internal sealed class PromptLookupProposer(int maxNgram) : ITokenProposer
{
    public int Propose(Sequence sequence, Span<int> proposals) => Propose(CollectionsMarshal.AsSpan(sequence.Tokens), maxNgram, proposals);

    /// <summary>The proposal for <paramref name="tokens"/>; returns how many tokens it wrote.</summary>
    public static int Propose(ReadOnlySpan<int> tokens, int maxNgram, Span<int> proposals)
    {
        for (var n = Math.Min(maxNgram, tokens.Length - 1); n >= 1; n--)
        {
            var suffix = tokens[^n..];
            for (var start = tokens.Length - n - 1; start >= 0; start--)
            {
                if (tokens.Slice(start, n).SequenceEqual(suffix))
                {
                    var from = start + n;
                    var count = Math.Min(proposals.Length, tokens.Length - from);
                    tokens.Slice(from, count).CopyTo(proposals);
                    return count;
                }
            }
        }

        return 0;
    }

    public void Dispose()
    {
    }
}
