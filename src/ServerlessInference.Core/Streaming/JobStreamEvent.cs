using System.Text.Json.Serialization;

namespace ServerlessInference.Streaming;

/// <summary>One event of a job's token stream: a token as it was made, or the stream's end.</summary>
/// <param name="Sequence">Position in the job's stream: 0, 1, 2, ... with no gap. It is the SSE event id.</param>
/// <param name="TokenId">The token's id in the model's vocabulary; null on a final event that carries no token.</param>
/// <param name="Text">The text the token adds (may be empty: a token can end inside a multi-byte character).</param>
/// <param name="Finish">Set on the final event only: why the generation ended.</param>
/// <param name="Error">With <see cref="FinishReason.Error"/>: a message safe to show the client.</param>
/// <remarks>The tokens of a stream (the events with a <see cref="TokenId"/>, in order) are the job's checkpoint: a
/// worker that takes over a job prefills the prompt plus these tokens and continues at the next sequence.</remarks>
public sealed record JobStreamEvent(
    [property: JsonPropertyName("seq")] long Sequence,
    [property: JsonPropertyName("token")] int? TokenId,
    [property: JsonPropertyName("text")] string Text,
    [property: JsonPropertyName("finish")] FinishReason? Finish = null,
    [property: JsonPropertyName("error")] string? Error = null)
{
    /// <summary>True on the event that ends the stream.</summary>
    [JsonIgnore]
    public bool IsFinal => Finish is not null;

    /// <summary>A token event.</summary>
    public static JobStreamEvent Token(long sequence, int tokenId, string text) => new(sequence, tokenId, text);

    /// <summary>A final event that carries no token.</summary>
    public static JobStreamEvent Final(long sequence, FinishReason finish, string? error = null) => new(sequence, null, "", finish, error);
}

/// <summary>Why a generation ended (the final event of its stream). JSON names are lower case.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<FinishReason>))]
public enum FinishReason
{
    /// <summary>A stop string was produced.</summary>
    [JsonStringEnumMemberName("stop")]
    Stop,

    /// <summary><c>max_tokens</c> or the context length was reached.</summary>
    [JsonStringEnumMemberName("length")]
    Length,

    /// <summary>The model produced an end-of-sequence token.</summary>
    [JsonStringEnumMemberName("eos")]
    Eos,

    /// <summary>The client cancelled the job, or its deadline passed.</summary>
    [JsonStringEnumMemberName("cancelled")]
    Cancelled,

    /// <summary>The generation failed; <see cref="JobStreamEvent.Error"/> says why.</summary>
    [JsonStringEnumMemberName("error")]
    Error,
}

/// <summary>What an <see cref="IJobStreams.AppendAsync"/> did.</summary>
/// <param name="Appended">How many of the given events were stored; the others were stored before (by this writer
/// or another one) and were ignored.</param>
/// <param name="LastSequence">The stream's last sequence after the call (-1 when it is still empty).</param>
/// <param name="Ended">Whether the stream's final event is stored.</param>
public readonly record struct JobStreamAppend(int Appended, long LastSequence, bool Ended);

/// <summary>JSON of <see cref="JobStreamEvent"/> (nulls left out), e.g. as the data of an SSE event.</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(JobStreamEvent))]
[JsonSerializable(typeof(IReadOnlyList<JobStreamEvent>))]
public sealed partial class JobStreamJson : JsonSerializerContext;
