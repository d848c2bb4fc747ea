namespace ServerlessInference.Onnx.Generation.Speculative;

/// <summary>Guesses the tokens that follow a sequence, for the model to verify in one forward pass.</summary>
/// <remarks>Called on the scheduler thread only. Proposals are deterministic functions of the sequence's tokens (a
/// point-mass draft distribution), which is what lets verification keep the model's output exactly (see
/// <see cref="GenerationScheduler"/>'s speculative step).</remarks>
internal interface ITokenProposer : IDisposable
{
    /// <summary>Writes up to <c>proposals.Length</c> guesses of the tokens after <see cref="Sequence.Tokens"/> (whose
    /// last token is the pending one) and returns how many it wrote; 0 when it has no guess.</summary>
    int Propose(Sequence sequence, Span<int> proposals);
}
