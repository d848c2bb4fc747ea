namespace ServerlessInference.Generation;

/// <summary>The manifest's <c>generation</c> object as written on disk; nullable so missing fields get precise errors.</summary>
internal sealed class GenerationDocument
{
    public TokenizerDocument? Tokenizer { get; set; }

    public List<int>? EosTokenIds { get; set; }

    public int? ContextLength { get; set; }

    public int? NumLayers { get; set; }

    public int? NumHeads { get; set; }

    public int? HeadDim { get; set; }

    public ChatTemplateDocument? ChatTemplate { get; set; }

    public SpeculativeDocument? Speculative { get; set; }

    public static GenerationDocument From(GenerationSpec spec) => new()
    {
        Tokenizer = new TokenizerDocument
        {
            Kind = spec.Tokenizer.Kind,
            Vocab = spec.Tokenizer.Vocab,
            Merges = spec.Tokenizer.Merges,
            File = spec.Tokenizer.File,
            Pattern = spec.Tokenizer.Pattern,
            SpecialTokens = spec.Tokenizer.SpecialTokens is null ? null : new Dictionary<string, int>(spec.Tokenizer.SpecialTokens, StringComparer.Ordinal),
        },
        EosTokenIds = [.. spec.EosTokenIds],
        ContextLength = spec.ContextLength,
        NumLayers = spec.NumLayers,
        NumHeads = spec.NumHeads,
        HeadDim = spec.HeadDim,
        ChatTemplate = spec.ChatTemplate is null ? null : new ChatTemplateDocument
        {
            Message = spec.ChatTemplate.Message,
            Prefix = spec.ChatTemplate.Prefix,
            GenerationPrompt = spec.ChatTemplate.GenerationPrompt,
        },
        Speculative = spec.Speculative is null ? null : new SpeculativeDocument
        {
            Draft = spec.Speculative.Draft,
            PromptLookup = spec.Speculative.PromptLookup ? true : null,
            K = spec.Speculative.K,
            Ngram = spec.Speculative.PromptLookup ? spec.Speculative.Ngram : null,
        },
    };

    /// <summary>The spec, or the first problem, naming its field.</summary>
    public (GenerationSpec? Spec, string? Problem) ToSpec()
    {
        if (Tokenizer is null)
        {
            return (null, "generation.tokenizer is missing");
        }

        if (Tokenizer.Kind is null)
        {
            return (null, "generation.tokenizer.kind is missing");
        }

        if (EosTokenIds is null)
        {
            return (null, "generation.eos_token_ids is missing");
        }

        if (ContextLength is null)
        {
            return (null, "generation.context_length is missing");
        }

        if (ChatTemplate is { Message: null })
        {
            return (null, "generation.chat_template.message is missing");
        }

        var spec = new GenerationSpec
        {
            Tokenizer = new TokenizerSpec
            {
                Kind = Tokenizer.Kind,
                Vocab = Tokenizer.Vocab,
                Merges = Tokenizer.Merges,
                File = Tokenizer.File,
                Pattern = Tokenizer.Pattern,
                SpecialTokens = Tokenizer.SpecialTokens,
            },
            EosTokenIds = EosTokenIds,
            ContextLength = ContextLength.Value,
            NumLayers = NumLayers,
            NumHeads = NumHeads,
            HeadDim = HeadDim,
            ChatTemplate = ChatTemplate is null ? null : new ChatTemplate
            {
                Message = ChatTemplate.Message!,
                Prefix = ChatTemplate.Prefix,
                GenerationPrompt = ChatTemplate.GenerationPrompt,
            },
            Speculative = Speculative is null ? null : new SpeculativeSpec
            {
                Draft = Speculative.Draft,
                PromptLookup = Speculative.PromptLookup ?? false,
                K = Speculative.K ?? 4,
                Ngram = Speculative.Ngram ?? 3,
            },
        };
        var problems = spec.Validate();
        return problems.Count > 0 ? (null, problems[0]) : (spec, null);
    }
}

internal sealed class TokenizerDocument
{
    public string? Kind { get; set; }

    public string? Vocab { get; set; }

    public string? Merges { get; set; }

    public string? File { get; set; }

    public string? Pattern { get; set; }

    public Dictionary<string, int>? SpecialTokens { get; set; }
}

internal sealed class SpeculativeDocument
{
    public string? Draft { get; set; }

    public bool? PromptLookup { get; set; }

    public int? K { get; set; }

    public int? Ngram { get; set; }
}

internal sealed class ChatTemplateDocument
{
    public string? Message { get; set; }

    public string? Prefix { get; set; }

    public string? GenerationPrompt { get; set; }
}
