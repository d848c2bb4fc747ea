using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Onnx.Generation.Speculative;

namespace ServerlessInference.Onnx.Generation;

/// <summary>Speculative decoding: a proposer guesses the next tokens and one forward pass over the KV cache scores them
/// all (the step takes several new tokens, as a prefill does).</summary>
/// <remarks>
/// <para>Verification: the pass's logits at the pending token and at each proposal are sampled in order, exactly as
/// plain decoding would sample them (same context, same (seed, position) draw of <c>TokenSampler</c>). A sampled token
/// equal to the proposal accepts it and moves on; the first one that differs is kept as the model's own token and ends
/// the round; if all proposals pass, the last row gives one more token. So each pass yields accepted + 1 tokens, and
/// the KV cache keeps the columns of the pending token and the accepted proposals: the rejected columns are cut off in
/// place, per head (<see cref="KvBatch.Advance"/>; no copy when all were accepted).</para>
/// <para>Why this is the standard rejection-sampling rule: proposals are deterministic (prompt lookup, or the draft's
/// greedy token), so the draft distribution q is a point mass on the proposal d. The rule accepts d with probability
/// min(1, p(d)/q(d)) = p(d), and on rejection samples norm(max(0, p - q)) = p without d, renormalised. The model's own
/// inverse-CDF draw equals d with probability p(d), and when it differs it is distributed as p restricted to the other
/// tokens: the same law. The output distribution is the model's, and greedy or seeded output is the plain decoding's
/// token for token (up to the ~1e-6 logit differences a wider pass has, which matter only at near-ties).</para>
/// <para>Continuous batching: speculation runs only while the sequence is alone in the running batch (where a decode
/// step is bound by reading the weights and speculation pays most). When others join, every row takes plain decode
/// steps; the speculating sequence's KV holds only verified tokens between steps, so nothing is rolled back then.</para>
/// </remarks>
internal sealed partial class GenerationScheduler
{
    /// <summary>The proposer of this model's speculative decoding, or null (off). Set before the first submit.</summary>
    public ITokenProposer? Proposer { get; set; }

    /// <summary>Most tokens proposed per step.</summary>
    public int SpeculativeK { get; set; } = 4;

    /// <summary>Runs one speculative step when it applies; false when the caller should take a plain decode step.</summary>
    private bool TrySpeculativeStep()
    {
        if (Proposer is null || _running.Count != 1)
        {
            return false;
        }

        var sequence = _running[0];
        var state = sequence.Speculation ??= new SpeculationState(SpeculativeK);
        // A step emits up to proposals + 1 tokens: stay within max tokens (and so within the context and the reservation).
        var room = Math.Min(state.K, sequence.MaxGenerated - sequence.Generated - 1);
        if (!state.Enabled || room < 1)
        {
            return false;
        }

        Span<int> proposals = stackalloc int[room];
        var proposed = Proposer.Propose(sequence, proposals);
        if (proposed == 0)
        {
            return false;
        }

        Verify(sequence, state, proposals[..proposed]);
        return true;
    }

    private void Verify(Sequence sequence, SpeculationState state, ReadOnlySpan<int> proposals)
    {
        var width = proposals.Length + 1;
        var length = _kv.Length;
        var total = length + width;
        var pad = length - sequence.KvLength;
        var ids = new long[width];
        var positions = new long[width];
        var mask = new long[total];
        ids[0] = sequence.Pending;
        for (var i = 0; i < width; i++)
        {
            if (i > 0)
            {
                ids[i] = proposals[i - 1];
            }

            positions[i] = sequence.KvLength + i;
        }

        mask.AsSpan(pad).Fill(1);
        RunStep(ids, mask, positions, width);
        var vocabulary = _decoder.VocabularySize;
        int emitted = 0, accepted = 0;
        for (var i = 0; i < width; i++)
        {
            var token = Sample(sequence, _logits.AsSpan(i * vocabulary, vocabulary));
            emitted++;
            var match = i < proposals.Length && token == proposals[i];
            if (match)
            {
                accepted++;
            }

            Accept(sequence, token);
            if (sequence.Finished || !match)
            {
                break;
            }
        }

        Counters.AddSpeculation(proposals.Length, accepted);
        state.Record(proposals.Length, accepted);
        // Kept: the pending token's column and the accepted proposals' (emitted - 1 of them).
        _kv.Advance(width, emitted);
        sequence.KvLength += emitted;
    }
}
