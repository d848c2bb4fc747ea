namespace ServerlessInference.Generation;

/// <summary>Speculative decoding of a <c>text-generation</c> model (manifest <c>generation.speculative</c>): a proposer
/// guesses up to <see cref="K"/> next tokens and the model verifies them all in one forward pass.</summary>
/// <remarks>Manifest JSON: <c>"speculative": {"prompt_lookup": true, "k": 4, "ngram": 3}</c> (proposals copied from
/// the prompt and the text so far, no second model) or <c>"speculative": {"draft": "lm-bench-draft", "k": 4}</c> (a
/// smaller <c>text-generation</c> model of the same store with the same tokenizer proposes greedily). Exactly one
/// proposer. Output is the same as without speculation: greedy token for token, sampled in distribution (and, with a
/// seed, token for token too).</remarks>
public sealed record SpeculativeSpec
{
    public const int MaxK = 16;

    public const int MaxNgram = 8;

    /// <summary>Name of the draft model (a model of the same store, latest version), or null.</summary>
    public string? Draft { get; init; }

    /// <summary>Propose by n-gram lookup in the sequence's own tokens.</summary>
    public bool PromptLookup { get; init; }

    /// <summary>Most tokens proposed per step (1 to <see cref="MaxK"/>); the scheduler adapts below it.</summary>
    public int K { get; init; } = 4;

    /// <summary>Prompt lookup: longest suffix n-gram matched (1 to <see cref="MaxNgram"/>); shorter ones are tried after it.</summary>
    public int Ngram { get; init; } = 3;

    /// <summary>Every problem, each naming its field; empty when valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (Draft is null && !PromptLookup)
        {
            problems.Add("generation.speculative needs a proposer: \"draft\": \"MODEL\" or \"prompt_lookup\": true");
        }
        else if (Draft is not null && PromptLookup)
        {
            problems.Add("generation.speculative takes one proposer: \"draft\" or \"prompt_lookup\", not both");
        }

        if (Draft is not null && !Models.ModelVersions.IsSafeSegment(Draft))
        {
            problems.Add($"generation.speculative.draft must be a model name, got '{Draft}'");
        }

        if (K is < 1 or > MaxK)
        {
            problems.Add($"generation.speculative.k must be between 1 and {MaxK}, got {K}");
        }

        if (Ngram is < 1 or > MaxNgram)
        {
            problems.Add($"generation.speculative.ngram must be between 1 and {MaxNgram}, got {Ngram}");
        }

        return problems;
    }
}
