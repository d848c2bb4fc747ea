using ServerlessInference.Generation;

namespace ServerlessInference.Onnx.Generation.Speculative;

/// <summary>Turns a manifest's <c>generation.speculative</c> into the scheduler's proposer.</summary>
internal static class SpeculativeDecoding
{
    /// <summary>Sets the scheduler's proposer: prompt lookup, or <paramref name="draft"/> (loaded by the engine from
    /// <c>generation.speculative.draft</c>).</summary>
    public static void Configure(GenerationScheduler scheduler, GenerationSpec spec, DraftModelProposer? draft)
    {
        if (spec.Speculative is not { } speculative)
        {
            return;
        }

        scheduler.SpeculativeK = speculative.K;
        scheduler.Proposer = speculative.PromptLookup ? new PromptLookupProposer(speculative.Ngram) : draft;
    }
}
