namespace ServerlessInference.Generation;

/// <summary>The values of <see cref="Models.ModelManifest.Task"/>.</summary>
public static class ModelTasks
{
    /// <summary>A decoder-only language model with Hugging Face Optimum's KV-cache inputs and outputs.</summary>
    public const string TextGeneration = "text-generation";
}

/// <summary>What a <c>text-generation</c> manifest says about its model: tokenizer, end-of-sequence tokens, context
/// length, the KV-cache geometry (optional: inferred from the ONNX inputs when absent, checked against them when
/// present) and an optional chat template.</summary>
/// <remarks>Manifest JSON (snake_case): <c>"generation": {"tokenizer": {...}, "eos_token_ids": [2047],
/// "context_length": 512, "num_layers": 2, "num_heads": 2, "head_dim": 16, "chat_template": {...}, "speculative": {...}}</c>.</remarks>
public sealed record GenerationSpec
{
    public required TokenizerSpec Tokenizer { get; init; }

    /// <summary>Token ids that end a generation (at least one).</summary>
    public required IReadOnlyList<int> EosTokenIds { get; init; }

    /// <summary>Most tokens (prompt and generated) one sequence may hold.</summary>
    public required int ContextLength { get; init; }

    public int? NumLayers { get; init; }

    public int? NumHeads { get; init; }

    public int? HeadDim { get; init; }

    public ChatTemplate? ChatTemplate { get; init; }

    /// <summary>Speculative decoding, off when null.</summary>
    public SpeculativeSpec? Speculative { get; init; }

    /// <summary>Every problem of this spec, each naming its field (<c>generation.eos_token_ids must not be empty</c>);
    /// empty when it is valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (Tokenizer is null)
        {
            problems.Add("generation.tokenizer is missing");
        }
        else
        {
            problems.AddRange(Tokenizer.Validate());
        }

        if (EosTokenIds is null || EosTokenIds.Count == 0)
        {
            problems.Add("generation.eos_token_ids must not be empty");
        }
        else if (EosTokenIds.Any(id => id < 0))
        {
            problems.Add($"generation.eos_token_ids must not be negative, got [{string.Join(", ", EosTokenIds)}]");
        }

        if (ContextLength < 2)
        {
            problems.Add($"generation.context_length must be at least 2, got {ContextLength}");
        }

        Positive(NumLayers, "generation.num_layers", problems);
        Positive(NumHeads, "generation.num_heads", problems);
        Positive(HeadDim, "generation.head_dim", problems);
        if (ChatTemplate is not null)
        {
            problems.AddRange(ChatTemplate.Validate());
        }

        if (Speculative is not null)
        {
            problems.AddRange(Speculative.Validate());
        }

        return problems;
    }

    private static void Positive(int? value, string field, List<string> problems)
    {
        if (value is < 1)
        {
            problems.Add($"{field} must be at least 1, got {value}");
        }
    }
}

/// <summary>The kinds of tokenizer a manifest may name.</summary>
public static class TokenizerKinds
{
    /// <summary>Byte-level BPE (GPT-2 style): <see cref="TokenizerSpec.Vocab"/> (<c>vocab.json</c>) and
    /// <see cref="TokenizerSpec.Merges"/> (<c>merges.txt</c>).</summary>
    public const string Bpe = "bpe";

    /// <summary>A tiktoken rank file (<c>base64-token rank</c> per line) in <see cref="TokenizerSpec.File"/>.</summary>
    public const string Tiktoken = "tiktoken";
}

/// <summary>Which tokenizer files the model has and how to read them.</summary>
/// <remarks>File names are looked up beside the weights first, then in the ONNX model's metadata properties under the
/// same name (the demo models carry their tokenizer there, so one file travels through every model store).</remarks>
public sealed record TokenizerSpec
{
    /// <summary><see cref="TokenizerKinds.Bpe"/> or <see cref="TokenizerKinds.Tiktoken"/>.</summary>
    public required string Kind { get; init; }

    /// <summary>BPE: the <c>vocab.json</c> file (token string → id, GPT-2 byte-to-unicode alphabet).</summary>
    public string? Vocab { get; init; }

    /// <summary>BPE: the <c>merges.txt</c> file (one <c>left right</c> pair per line, a <c>#version</c> line allowed).</summary>
    public string? Merges { get; init; }

    /// <summary>Tiktoken: the rank file.</summary>
    public string? File { get; init; }

    /// <summary>The pre-tokenizer regex; GPT-2's when absent.</summary>
    public string? Pattern { get; init; }

    /// <summary>Special tokens (text → id), matched whole in prompts and never split, e.g. the EOS token.</summary>
    public IReadOnlyDictionary<string, int>? SpecialTokens { get; init; }

    /// <summary>GPT-2's pre-tokenizer pattern.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        switch (Kind)
        {
            case TokenizerKinds.Bpe:
                if (string.IsNullOrWhiteSpace(Vocab))
                {
                    problems.Add("generation.tokenizer.vocab is required for a bpe tokenizer");
                }

                if (string.IsNullOrWhiteSpace(Merges))
                {
                    problems.Add("generation.tokenizer.merges is required for a bpe tokenizer");
                }

                break;
            case TokenizerKinds.Tiktoken:
                if (string.IsNullOrWhiteSpace(File))
                {
                    problems.Add("generation.tokenizer.file is required for a tiktoken tokenizer");
                }

                break;
            default:
                problems.Add($"generation.tokenizer.kind must be '{TokenizerKinds.Bpe}' or '{TokenizerKinds.Tiktoken}', got '{Kind}'");
                break;
        }

        foreach (var name in new[] { Vocab, Merges, File })
        {
            if (name is not null && (name.Length == 0 || name.IndexOfAny(['/', '\\', '\0']) >= 0 || name is "." or ".."))
            {
                problems.Add($"generation.tokenizer file names must be plain file names, got '{name}'");
            }
        }

        if (Pattern is not null)
        {
            try
            {
                _ = new System.Text.RegularExpressions.Regex(Pattern);
            }
            catch (ArgumentException e)
            {
                problems.Add($"generation.tokenizer.pattern is not a valid regex: {e.Message}");
            }
        }

        if (SpecialTokens is not null && SpecialTokens.Any(pair => pair.Key.Length == 0 || pair.Value < 0))
        {
            problems.Add("generation.tokenizer.special_tokens must map non-empty strings to non-negative ids");
        }

        return problems;
    }
}
