namespace ServerlessInference.Generation;

/// <summary>One generation: a prompt (token ids, or text the model's tokenizer encodes), how many tokens at most,
/// stop strings, sampling and an optional deadline.</summary>
public sealed record GenerationRequest
{
    /// <summary>The prompt as text; ignored when <see cref="PromptTokenIds"/> is set.</summary>
    public string? Prompt { get; init; }

    /// <summary>The prompt as token ids.</summary>
    public IReadOnlyList<int>? PromptTokenIds { get; init; }

    /// <summary>Most tokens to generate (clipped to what the context length leaves).</summary>
    public int MaxTokens { get; init; } = 16;

    /// <summary>Strings that end the generation when they appear in the text; the stop string itself is not emitted.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];

    public SamplingParameters Sampling { get; init; } = SamplingParameters.Greedy;

    /// <summary>The quantized variant to run on (<c>int8</c>), <c>none</c> for the original, or null to let the gateway
    /// choose (<see cref="Models.ModelVariants"/>). Chosen at the gateway; it does not travel with the job.</summary>
    public string? Variant { get; init; }

    /// <summary>When the generation must end (finish reason <see cref="FinishReason.Deadline"/>); null for none.</summary>
    public DateTimeOffset? Deadline { get; init; }

    /// <summary>A problem with the request's own values, or null (the prompt's length is checked by the model).</summary>
    public string? Validate()
    {
        if (Prompt is null && PromptTokenIds is null)
        {
            return "a prompt is required";
        }

        if (PromptTokenIds is { Count: 0 } || (PromptTokenIds is null && Prompt is { Length: 0 }))
        {
            return "the prompt is empty";
        }

        if (MaxTokens < 1)
        {
            return $"max_tokens must be at least 1, got {MaxTokens}";
        }

        if (Stop.Any(string.IsNullOrEmpty))
        {
            return "stop strings must not be empty";
        }

        return Sampling.Validate();
    }
}

/// <summary>How the next token is chosen. Temperature 0 is greedy (arg max, lowest id on a tie).</summary>
/// <remarks>Order: repetition penalty, temperature, top-k, top-p, then one draw from a random stream that depends only
/// on (<see cref="Seed"/>, position), so a generation resumed from its emitted tokens draws the same numbers.</remarks>
public sealed record SamplingParameters
{
    public static SamplingParameters Greedy { get; } = new();

    public float Temperature { get; init; }

    /// <summary>Keep the k most likely tokens; 0 keeps all.</summary>
    public int TopK { get; init; }

    /// <summary>Keep the smallest set of most likely tokens whose probability reaches p; 1 keeps all.</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Hugging Face's penalty on tokens already in the prompt or output: positive logits are divided by it,
    /// negative ones multiplied; 1 is none.</summary>
    public float RepetitionPenalty { get; init; } = 1f;

    /// <summary>The random stream's key; when null the model picks one per request (not reproducible).</summary>
    public ulong? Seed { get; init; }

    public string? Validate()
    {
        if (!float.IsFinite(Temperature) || Temperature < 0 || Temperature > 100)
        {
            return $"temperature must be between 0 and 100, got {Temperature}";
        }

        if (TopK < 0)
        {
            return $"top_k must not be negative, got {TopK}";
        }

        if (!float.IsFinite(TopP) || TopP <= 0 || TopP > 1)
        {
            return $"top_p must be in (0, 1], got {TopP}";
        }

        if (!float.IsFinite(RepetitionPenalty) || RepetitionPenalty <= 0 || RepetitionPenalty > 100)
        {
            return $"repetition_penalty must be in (0, 100], got {RepetitionPenalty}";
        }

        return null;
    }
}

/// <summary>Why a generation ended.</summary>
public enum FinishReason
{
    /// <summary>The model produced an end-of-sequence token.</summary>
    Eos,

    /// <summary><see cref="GenerationRequest.MaxTokens"/> tokens were generated, or the context is full.</summary>
    Length,

    /// <summary>A stop string appeared.</summary>
    Stop,

    /// <summary>The caller's cancellation token fired.</summary>
    Cancelled,

    /// <summary><see cref="GenerationRequest.Deadline"/> passed.</summary>
    Deadline,
}

/// <summary>One step of a generation: the token made at <see cref="Index"/> (0 = first generated token) and the text
/// that became final with it, or the end of the generation.</summary>
/// <param name="Index">Position among generated tokens, counting resumed ones; unique per token event.</param>
/// <param name="TokenId">The token, or -1 for an end that made no token (cancelled, deadline).</param>
/// <param name="Text">Text released by this token: complete UTF-8 only, and held back while it could still become a
/// stop string; the pieces of a generation concatenate to its text. May be empty.</param>
/// <param name="FinishReason">Set on the last event only.</param>
/// <param name="Timestamp">When the token was made (<see cref="TimeProvider.GetTimestamp"/> of the model's clock).</param>
public sealed record GeneratedToken(int Index, int TokenId, string Text, FinishReason? FinishReason, long Timestamp);
