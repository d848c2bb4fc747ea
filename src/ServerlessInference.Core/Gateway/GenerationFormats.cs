using System.Text.Json;
using Microsoft.AspNetCore.Http;
using ServerlessInference.Generation;
using ServerlessInference.Streaming;

namespace ServerlessInference.Gateway;

/// <summary>How one API spells a generation: the whole result, and the SSE events of a stream.</summary>
internal interface IGenerationFormat
{
    void WriteResult(Utf8JsonWriter writer, GenerationResult result);

    Task WriteStartAsync(HttpResponse response, CancellationToken cancellationToken);

    Task WriteTokenAsync(HttpResponse response, JobStreamEvent token, CancellationToken cancellationToken);

    /// <param name="usage">The finished job's result (token counts), when the result store has it.</param>
    Task WriteEndAsync(HttpResponse response, JobStreamEvent final, GenerationResult? usage, CancellationToken cancellationToken);

    Task WriteErrorAsync(HttpResponse response, JobStreamEvent final, string error, CancellationToken cancellationToken);
}

/// <summary>OpenAI's <c>text_completion</c> / <c>chat.completion</c> objects and their <c>.chunk</c> stream, which ends
/// with <c>data: [DONE]</c>. OpenAI sends no SSE ids, and neither does this.</summary>
internal sealed class OpenAiFormat(bool chat, string id, string model, long created, bool includeUsage) : IGenerationFormat
{
    private string Object => chat ? "chat.completion" : "text_completion";

    private string ChunkObject => chat ? "chat.completion.chunk" : "text_completion";

    /// <summary>OpenAI's finish reasons are <c>stop</c> and <c>length</c> here (its SDKs reject names they do not know).</summary>
    private static string Finish(string reason) => reason == "length" ? "length" : "stop";

    private static string Finish(Streaming.FinishReason? reason) => reason == Streaming.FinishReason.Length ? "length" : "stop";

    public void WriteResult(Utf8JsonWriter w, GenerationResult result)
    {
        w.WriteString("id", id);
        w.WriteString("object", Object);
        w.WriteNumber("created", created);
        w.WriteString("model", model);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        if (chat)
        {
            w.WriteStartObject("message");
            w.WriteString("role", "assistant");
            w.WriteString("content", result.Text);
            w.WriteNull("refusal");
            w.WriteEndObject();
        }
        else
        {
            w.WriteString("text", result.Text);
        }

        w.WriteNull("logprobs");
        w.WriteString("finish_reason", Finish(result.FinishReason));
        w.WriteEndObject();
        w.WriteEndArray();
        WriteUsage(w, result);
    }

    public Task WriteStartAsync(HttpResponse response, CancellationToken cancellationToken) =>
        chat ? WriteChunkAsync(response, w => Delta(w, role: "assistant", content: ""), null, cancellationToken) : Task.CompletedTask;

    public Task WriteTokenAsync(HttpResponse response, JobStreamEvent token, CancellationToken cancellationToken) =>
        token.Text.Length == 0
            ? Task.CompletedTask
            : WriteChunkAsync(response, w =>
            {
                if (chat)
                {
                    Delta(w, role: null, content: token.Text);
                }
                else
                {
                    w.WriteString("text", token.Text);
                }
            }, null, cancellationToken);

    public async Task WriteEndAsync(HttpResponse response, JobStreamEvent final, GenerationResult? usage, CancellationToken cancellationToken)
    {
        if (final.Text.Length > 0)
        {
            await WriteTokenAsync(response, final, cancellationToken).ConfigureAwait(false);
        }

        await WriteChunkAsync(response, w =>
        {
            if (chat)
            {
                w.WriteStartObject("delta");
                w.WriteEndObject();
            }
            else
            {
                w.WriteString("text", "");
            }
        }, Finish(final.Finish), cancellationToken).ConfigureAwait(false);
        if (includeUsage && usage is not null)
        {
            var data = GenerationHttp.Json(w =>
            {
                Header(w);
                w.WriteStartArray("choices");
                w.WriteEndArray();
                WriteUsage(w, usage);
            });
            await ServerSentEvents.WriteEventAsync(response, null, null, data, cancellationToken).ConfigureAwait(false);
        }

        await ServerSentEvents.WriteEventAsync(response, null, null, "[DONE]", cancellationToken).ConfigureAwait(false);
    }

    public async Task WriteErrorAsync(HttpResponse response, JobStreamEvent final, string error, CancellationToken cancellationToken)
    {
        // What OpenAI sends when a stream fails midway: an error object as the data of an event.
        var data = GenerationHttp.Json(w =>
        {
            w.WriteStartObject("error");
            w.WriteString("message", error);
            w.WriteString("type", "server_error");
            w.WriteNull("param");
            w.WriteNull("code");
            w.WriteEndObject();
        });
        await ServerSentEvents.WriteEventAsync(response, null, null, data, cancellationToken).ConfigureAwait(false);
        await ServerSentEvents.WriteEventAsync(response, null, null, "[DONE]", cancellationToken).ConfigureAwait(false);
    }

    private Task WriteChunkAsync(HttpResponse response, Action<Utf8JsonWriter> choice, string? finish, CancellationToken cancellationToken)
    {
        var data = GenerationHttp.Json(w =>
        {
            Header(w);
            w.WriteStartArray("choices");
            w.WriteStartObject();
            w.WriteNumber("index", 0);
            choice(w);
            w.WriteNull("logprobs");
            GenerationHttp.WriteStringOrNull(w, "finish_reason", finish);
            w.WriteEndObject();
            w.WriteEndArray();
            if (includeUsage)
            {
                w.WriteNull("usage");
            }
        });
        return ServerSentEvents.WriteEventAsync(response, null, null, data, cancellationToken);
    }

    private void Header(Utf8JsonWriter w)
    {
        w.WriteString("id", id);
        w.WriteString("object", ChunkObject);
        w.WriteNumber("created", created);
        w.WriteString("model", model);
    }

    private static void Delta(Utf8JsonWriter w, string? role, string content)
    {
        w.WriteStartObject("delta");
        if (role is not null)
        {
            w.WriteString("role", role);
        }

        w.WriteString("content", content);
        w.WriteEndObject();
    }

    private static void WriteUsage(Utf8JsonWriter w, GenerationResult result)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", result.PromptTokens);
        w.WriteNumber("completion_tokens", result.CompletionTokens);
        w.WriteNumber("total_tokens", result.PromptTokens + result.CompletionTokens);
        w.WriteEndObject();
    }
}

/// <summary>The KServe/Triton generate extension: <c>{"model_name", "model_version", "text_output"}</c>, and one such
/// object per SSE event when streaming (the last one with <c>finish_reason</c>).</summary>
internal sealed class KServeFormat(string model, string version, string jobId) : IGenerationFormat
{
    public void WriteResult(Utf8JsonWriter w, GenerationResult result)
    {
        w.WriteString("id", jobId);
        w.WriteString("model_name", model);
        w.WriteString("model_version", version);
        w.WriteString("text_output", result.Text);
        w.WriteString("finish_reason", result.FinishReason);
        w.WriteNumber("prompt_tokens", result.PromptTokens);
        w.WriteNumber("completion_tokens", result.CompletionTokens);
    }

    public Task WriteStartAsync(HttpResponse response, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task WriteTokenAsync(HttpResponse response, JobStreamEvent token, CancellationToken cancellationToken) =>
        Write(response, token.Sequence, token.Text, null, cancellationToken);

    public Task WriteEndAsync(HttpResponse response, JobStreamEvent final, GenerationResult? usage, CancellationToken cancellationToken) =>
        Write(response, final.Sequence, final.Text, Wire(final.Finish), cancellationToken);

    public Task WriteErrorAsync(HttpResponse response, JobStreamEvent final, string error, CancellationToken cancellationToken) =>
        ServerSentEvents.WriteEventAsync(response, final.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture), null,
            GenerationHttp.Json(w => w.WriteString("error", error)), cancellationToken);

    private Task Write(HttpResponse response, long sequence, string text, string? finish, CancellationToken cancellationToken)
    {
        var data = GenerationHttp.Json(w =>
        {
            w.WriteString("id", jobId);
            w.WriteString("model_name", model);
            w.WriteString("model_version", version);
            w.WriteString("text_output", text);
            if (finish is not null)
            {
                w.WriteString("finish_reason", finish);
            }
        });
        return ServerSentEvents.WriteEventAsync(response, sequence.ToString(System.Globalization.CultureInfo.InvariantCulture), null, data, cancellationToken);
    }

    internal static string Wire(Streaming.FinishReason? reason) => reason switch
    {
        Streaming.FinishReason.Length => "length",
        Streaming.FinishReason.Cancelled => "cancelled",
        Streaming.FinishReason.Error => "error",
        _ => "stop",
    };
}

/// <summary><c>/jobs/{id}/stream</c>: the stream's own events, <c>id:</c> = sequence, the final one as <c>event: end</c>.</summary>
internal sealed class RawFormat : IGenerationFormat
{
    public void WriteResult(Utf8JsonWriter writer, GenerationResult result) => throw new NotSupportedException("a raw stream has no whole result");

    public Task WriteStartAsync(HttpResponse response, CancellationToken cancellationToken) => Task.CompletedTask;

    public Task WriteTokenAsync(HttpResponse response, JobStreamEvent token, CancellationToken cancellationToken) =>
        ServerSentEvents.WriteEventAsync(response, Id(token), null, JsonSerializer.Serialize(token, JobStreamJson.Default.JobStreamEvent), cancellationToken);

    public Task WriteEndAsync(HttpResponse response, JobStreamEvent final, GenerationResult? usage, CancellationToken cancellationToken) =>
        ServerSentEvents.WriteEventAsync(response, Id(final), "end", JsonSerializer.Serialize(final, JobStreamJson.Default.JobStreamEvent), cancellationToken);

    public Task WriteErrorAsync(HttpResponse response, JobStreamEvent final, string error, CancellationToken cancellationToken) =>
        ServerSentEvents.WriteEventAsync(response, Id(final), "end", JsonSerializer.Serialize(final with { Error = final.Error ?? error }, JobStreamJson.Default.JobStreamEvent), cancellationToken);

    private static string Id(JobStreamEvent e) => e.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>Parses the body of <c>/v2/models/{m}/generate</c>.</summary>
internal static class KServeGenerate
{
    private static readonly string[] s_known =
        ["text_input", "parameters", "max_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "seed", "stop", "stream", "id", "variant"];

    public static GenerationRequest Parse(ReadOnlyMemory<byte> body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw Bad("the body must be a JSON object");
            }

            var prompt = root.TryGetProperty("text_input", out var text) && text.ValueKind == JsonValueKind.String
                ? text.GetString()!
                : throw Bad("'text_input' (a string) is required");
            var parameters = root.TryGetProperty("parameters", out var p) && p.ValueKind == JsonValueKind.Object ? p : default;
            foreach (var property in root.EnumerateObject())
            {
                if (!s_known.Contains(property.Name))
                {
                    throw Bad($"unknown field '{property.Name}' (known: {string.Join(", ", s_known)})");
                }
            }

            JsonElement? Get(string name) =>
                parameters.ValueKind == JsonValueKind.Object && parameters.TryGetProperty(name, out var v) ? v
                : root.TryGetProperty(name, out var top) ? top : null;

            var request = new GenerationRequest
            {
                Prompt = prompt,
                MaxTokens = Get("max_tokens") is { } max ? Int(max, "max_tokens") : 16,
                Stop = Get("stop") is { } stop ? Stop(stop) : [],
                Variant = Get("variant") is { } variant ? (variant.ValueKind == JsonValueKind.String ? variant.GetString() : throw Bad("'variant' must be a string")) : null,
                Sampling = new SamplingParameters
                {
                    Temperature = Get("temperature") is { } t ? (float)Number(t, "temperature") : 0f,
                    TopK = Get("top_k") is { } k ? Int(k, "top_k") : 0,
                    TopP = Get("top_p") is { } topP ? (float)Number(topP, "top_p") : 1f,
                    RepetitionPenalty = Get("repetition_penalty") is { } r ? (float)Number(r, "repetition_penalty") : 1f,
                    Seed = Get("seed") is { } s ? (s.TryGetUInt64(out var seed) ? seed : throw Bad("'seed' must be a non-negative integer")) : null,
                },
            };
            return request.Validate() is { } problem ? throw Bad(problem) : request;
        }
        catch (JsonException ex)
        {
            throw Bad($"the body is not valid JSON: {ex.Message}");
        }
    }

    private static int Int(JsonElement value, string name) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var n) ? n : throw Bad($"'{name}' must be an integer");

    private static double Number(JsonElement value, string name) =>
        value.ValueKind == JsonValueKind.Number ? value.GetDouble() : throw Bad($"'{name}' must be a number");

    private static IReadOnlyList<string> Stop(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => [value.GetString()!],
        JsonValueKind.Array when value.EnumerateArray().All(s => s.ValueKind == JsonValueKind.String) => value.EnumerateArray().Select(s => s.GetString()!).ToList(),
        _ => throw Bad("'stop' must be a string or an array of strings"),
    };

    private static InferenceException Bad(string message) => new(InferenceError.BadRequest, message);
}
