using System.Text.Json;
using ServerlessInference.Generation;

namespace ServerlessInference.Gateway;

/// <summary>What an OpenAI-style completion or chat completion asks for, parsed and checked against OpenAI's API
/// reference. Parameters the platform cannot honour are refused by name (400), never silently dropped.</summary>
public sealed record OpenAiRequest(string Model, GenerationRequest Generation, IReadOnlyList<ChatMessage>? Messages, bool Stream, bool IncludeUsage);

/// <summary>Parses <c>/v1/completions</c> and <c>/v1/chat/completions</c> bodies.</summary>
public static class OpenAiRequests
{
    /// <summary>Parses a completion (<paramref name="chat"/> false: <c>prompt</c>) or chat completion (<c>messages</c>).</summary>
    /// <exception cref="OpenAiException">The body is malformed or asks for what is not supported; the exception names
    /// the parameter.</exception>
    public static OpenAiRequest Parse(ReadOnlyMemory<byte> body, bool chat)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body);
        }
        catch (JsonException ex)
        {
            throw new OpenAiException(400, $"the body is not valid JSON: {ex.Message}", null);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new OpenAiException(400, "the body must be a JSON object", null);
            }

            var model = String(root, "model") ?? throw new OpenAiException(400, "you must provide a model parameter", "model");
            string? prompt = null;
            List<ChatMessage>? messages = null;
            if (chat)
            {
                messages = Messages(root);
            }
            else
            {
                prompt = Prompt(root);
            }

            var n = Integer(root, "n") ?? 1;
            if (n != 1)
            {
                throw new OpenAiException(400, $"n must be 1 (one choice per request), got {n}", "n");
            }

            RefuseUnless(root, "best_of", v => v.ValueKind == JsonValueKind.Null || (v.TryGetInt32(out var b) && b == 1), "best_of must be 1");
            RefuseUnless(root, "echo", v => v.ValueKind is JsonValueKind.False or JsonValueKind.Null, "echo is not supported");
            RefuseUnless(root, "logprobs", v => v.ValueKind is JsonValueKind.Null or JsonValueKind.False, "logprobs are not supported");
            RefuseUnless(root, "top_logprobs", v => v.ValueKind == JsonValueKind.Null, "top_logprobs are not supported");
            RefuseUnless(root, "suffix", v => v.ValueKind == JsonValueKind.Null, "suffix is not supported");
            RefuseUnless(root, "tools", v => v.ValueKind == JsonValueKind.Null, "tools are not supported");
            RefuseUnless(root, "logit_bias", v => v.ValueKind == JsonValueKind.Null || (v.ValueKind == JsonValueKind.Object && !v.EnumerateObject().Any()), "logit_bias is not supported");
            RefuseUnless(root, "presence_penalty", v => v.ValueKind == JsonValueKind.Null || (v.TryGetDouble(out var x) && x == 0), "presence_penalty is not supported (use repetition_penalty)");
            RefuseUnless(root, "frequency_penalty", v => v.ValueKind == JsonValueKind.Null || (v.TryGetDouble(out var x) && x == 0), "frequency_penalty is not supported (use repetition_penalty)");
            RefuseUnless(root, "response_format", v => v.ValueKind == JsonValueKind.Null || (v.ValueKind == JsonValueKind.Object && v.TryGetProperty("type", out var t) && t.ValueEquals("text")), "only response_format {\"type\": \"text\"} is supported");

            var maxTokens = Integer(root, "max_completion_tokens") ?? Integer(root, "max_tokens") ?? 16;
            var temperature = Number(root, "temperature") ?? 1.0;
            if (temperature is < 0 or > 2)
            {
                throw new OpenAiException(400, $"temperature must be between 0 and 2, got {temperature}", "temperature");
            }

            var topP = Number(root, "top_p") ?? 1.0;
            if (topP is <= 0 or > 1)
            {
                throw new OpenAiException(400, $"top_p must be in (0, 1], got {topP}", "top_p");
            }

            var seed = Integer(root, "seed");
            if (seed < 0)
            {
                throw new OpenAiException(400, $"seed must not be negative, got {seed}", "seed");
            }

            var generation = new GenerationRequest
            {
                Prompt = prompt,
                MaxTokens = (int)Math.Clamp(maxTokens, int.MinValue, int.MaxValue),
                Stop = StopStrings(root),
                Variant = String(root, "variant"),
                Sampling = new SamplingParameters
                {
                    Temperature = (float)temperature,
                    TopP = (float)topP,
                    TopK = (int)(Integer(root, "top_k") ?? 0),
                    RepetitionPenalty = (float)(Number(root, "repetition_penalty") ?? 1.0),
                    Seed = seed is { } s ? (ulong)s : null,
                },
            };
            // The prompt is checked above (a chat's is rendered later); stop strings by StopStrings.
            if (generation.MaxTokens < 1)
            {
                throw new OpenAiException(400, $"max_tokens must be at least 1, got {generation.MaxTokens}", "max_tokens");
            }

            if (generation.Sampling.Validate() is { } problem)
            {
                throw new OpenAiException(400, problem, problem.Split(' ')[0]);
            }

            var stream = Boolean(root, "stream") ?? false;
            var includeUsage = root.TryGetProperty("stream_options", out var options) && options.ValueKind == JsonValueKind.Object
                && options.TryGetProperty("include_usage", out var usage) && usage.ValueKind == JsonValueKind.True;
            return new OpenAiRequest(model, generation, messages, stream, includeUsage);
        }
    }

    private static string Prompt(JsonElement root)
    {
        if (!root.TryGetProperty("prompt", out var prompt) || prompt.ValueKind == JsonValueKind.Null)
        {
            throw new OpenAiException(400, "you must provide a prompt parameter", "prompt");
        }

        if (prompt.ValueKind == JsonValueKind.String)
        {
            return NonEmpty(prompt.GetString()!, "prompt");
        }

        if (prompt.ValueKind == JsonValueKind.Array && prompt.GetArrayLength() == 1 && prompt[0].ValueKind == JsonValueKind.String)
        {
            return NonEmpty(prompt[0].GetString()!, "prompt");
        }

        throw new OpenAiException(400, "prompt must be a string (or an array of one string); batches of prompts and token-id prompts are not supported", "prompt");
    }

    private static List<ChatMessage> Messages(JsonElement root)
    {
        if (!root.TryGetProperty("messages", out var list) || list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
        {
            throw new OpenAiException(400, "messages must be a non-empty array", "messages");
        }

        var messages = new List<ChatMessage>();
        var i = 0;
        foreach (var message in list.EnumerateArray())
        {
            var param = $"messages[{i}]";
            if (message.ValueKind != JsonValueKind.Object)
            {
                throw new OpenAiException(400, $"{param} must be an object", param);
            }

            var role = String(message, "role");
            if (role is not ("system" or "developer" or "user" or "assistant"))
            {
                throw new OpenAiException(400, $"{param}.role must be one of system, developer, user, assistant; got '{role}'", param + ".role");
            }

            if (!message.TryGetProperty("content", out var content))
            {
                throw new OpenAiException(400, $"{param}.content is required", param + ".content");
            }

            string text;
            if (content.ValueKind == JsonValueKind.String)
            {
                text = content.GetString()!;
            }
            else if (content.ValueKind == JsonValueKind.Array)
            {
                var parts = new List<string>();
                foreach (var part in content.EnumerateArray())
                {
                    if (part.ValueKind != JsonValueKind.Object || String(part, "type") != "text" || String(part, "text") is not { } partText)
                    {
                        throw new OpenAiException(400, $"{param}.content: only text parts are supported", param + ".content");
                    }

                    parts.Add(partText);
                }

                text = string.Concat(parts);
            }
            else
            {
                throw new OpenAiException(400, $"{param}.content must be a string or an array of text parts", param + ".content");
            }

            messages.Add(new ChatMessage(role == "developer" ? "system" : role, text));
            i++;
        }

        return messages;
    }

    private static IReadOnlyList<string> StopStrings(JsonElement root)
    {
        if (!root.TryGetProperty("stop", out var stop) || stop.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        if (stop.ValueKind == JsonValueKind.String)
        {
            return [NonEmpty(stop.GetString()!, "stop")];
        }

        if (stop.ValueKind == JsonValueKind.Array && stop.GetArrayLength() <= 4 && stop.EnumerateArray().All(s => s.ValueKind == JsonValueKind.String))
        {
            return stop.EnumerateArray().Select(s => NonEmpty(s.GetString()!, "stop")).ToList();
        }

        throw new OpenAiException(400, "stop must be a string or an array of at most 4 strings", "stop");
    }

    private static string NonEmpty(string value, string param) =>
        value.Length > 0 ? value : throw new OpenAiException(400, $"{param} must not be empty", param);

    private static void RefuseUnless(JsonElement root, string name, Func<JsonElement, bool> acceptable, string message)
    {
        if (root.TryGetProperty(name, out var value) && !acceptable(value))
        {
            throw new OpenAiException(400, message, name);
        }
    }

    private static string? String(JsonElement element, string name)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw new OpenAiException(400, $"{name} must be a string", name);
    }

    private static long? Integer(JsonElement element, string name)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number)
            ? number
            : throw new OpenAiException(400, $"{name} must be an integer", name);
    }

    private static double? Number(JsonElement element, string name)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number ? value.GetDouble() : throw new OpenAiException(400, $"{name} must be a number", name);
    }

    private static bool? Boolean(JsonElement element, string name)
    {
        if (!element.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new OpenAiException(400, $"{name} must be a boolean", name),
        };
    }
}

/// <summary>An error on a <c>/v1</c> route, answered in OpenAI's shape
/// <c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
public sealed class OpenAiException(int status, string message, string? param, string? code = null) : Exception(message)
{
    public int Status { get; } = status;

    public string? Param { get; } = param;

    public string? Code { get; } = code;

    /// <summary>OpenAI's error type for a status.</summary>
    public static string TypeOf(int status) => status switch
    {
        // OpenAI answers a missing or wrong key with 401 invalid_request_error (code invalid_api_key).
        400 or 401 or 404 or 409 or 413 => "invalid_request_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        _ => "server_error",
    };
}
