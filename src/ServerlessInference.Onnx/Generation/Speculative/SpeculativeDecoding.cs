using ServerlessInference.Generation;
using ServerlessInference.Models;

namespace ServerlessInference.Onnx.Generation.Speculative;

/// <summary>Turns a manifest's <c>generation.speculative</c> into the scheduler's proposer.</summary>
internal static class SpeculativeDecoding
{
    /// <exception cref="InferenceException"><see cref="InferenceError.ModelFailure"/>: the draft model cannot be used.</exception>
    public static void Configure(GenerationScheduler scheduler, GenerationSpec spec, string modelKey)
    {
        if (spec.Speculative is not { } speculative)
        {
            return;
        }

        scheduler.SpeculativeK = speculative.K;
        if (speculative.PromptLookup)
        {
            scheduler.Proposer = new PromptLookupProposer(speculative.Ngram);
            return;
        }

        throw new InferenceException(InferenceError.ModelFailure,
            $"model '{modelKey}': generation.speculative.draft '{speculative.Draft}' cannot be loaded by this engine");
    }
}
