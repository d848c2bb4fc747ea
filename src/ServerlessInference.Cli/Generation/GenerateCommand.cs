using System.CommandLine;
using System.Text;
using System.Text.Json;

namespace ServerlessInference.Cli.Generation;

/// <summary><c>si generate MODEL "prompt"</c>: streams a completion from the OpenAI-compatible
/// <c>POST /v1/completions</c> (<c>stream: true</c>, Server-Sent Events ending in <c>data: [DONE]</c>) to stdout as the
/// tokens arrive.</summary>
public static class GenerateCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new Argument<string>("model") { Description = "A text-generation model" };
        var prompt = new Argument<string>("prompt") { Description = "The prompt" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most tokens to generate", DefaultValueFactory = _ => 64 };
        var temperature = new Option<double?>("--temperature") { Description = "Sampling temperature (0: greedy; default: the server's)" };
        var seed = new Option<long?>("--seed") { Description = "Seed of a sampled generation (reproducible)" };
        var command = new Command("generate", "Stream a completion's tokens to the terminal") { model, prompt, maxTokens, temperature, seed };
        command.SetAction(SiApp.Action(console, async (context, cancellationToken) =>
        {
            if (context.Get(maxTokens) < 1)
            {
                throw CliException.Usage("--max-tokens must be at least 1");
            }

            var body = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object?>
            {
                ["model"] = context.Get(model),
                ["prompt"] = context.Get(prompt),
                ["max_tokens"] = context.Get(maxTokens),
                ["stream"] = true,
                ["stream_options"] = new Dictionary<string, object> { ["include_usage"] = true },
                ["temperature"] = context.Get(temperature),
                ["seed"] = context.Get(seed),
            }.Where(p => p.Value is not null).ToDictionary());

            using var gateway = context.Gateway();
            using var request = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = InferCommand.JsonContent(body) };
            using var response = await gateway.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);

            var text = new StringBuilder();
            string? id = null, finish = null, modelName = null;
            JsonElement? usage = null;
            var done = false;
            await foreach (var sse in SseReader.ReadAsync(stream, cancellationToken).ConfigureAwait(false))
            {
                if (sse.Data == "[DONE]")
                {
                    done = true;
                    break;
                }

                using var chunk = JsonDocument.Parse(sse.Data);
                var root = chunk.RootElement;
                if (root.TryGetProperty("error", out var error))
                {
                    throw new CliException(ExitCodes.ServerError, "generation failed: " + GatewayClient.ErrorText(sse.Data));
                }

                id ??= root.TryGetProperty("id", out var i) ? i.GetString() : null;
                modelName ??= root.TryGetProperty("model", out var m) ? m.GetString() : null;
                if (root.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object)
                {
                    usage = u.Clone();
                }

                if (!root.TryGetProperty("choices", out var choices))
                {
                    continue;
                }

                foreach (var choice in choices.EnumerateArray())
                {
                    if (choice.TryGetProperty("text", out var piece) && piece.GetString() is { Length: > 0 } s)
                    {
                        text.Append(s);
                        if (!context.Json)
                        {
                            await console.Out.WriteAsync(s).ConfigureAwait(false);
                            await console.Out.FlushAsync(cancellationToken).ConfigureAwait(false);
                        }
                    }

                    if (choice.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String)
                    {
                        finish = f.GetString();
                    }
                }
            }

            if (!done)
            {
                throw new CliException(ExitCodes.ServerError, "the stream ended before data: [DONE]");
            }

            if (context.Json)
            {
                var result = new Dictionary<string, object?> { ["id"] = id, ["model"] = modelName, ["text"] = text.ToString(), ["finish_reason"] = finish, ["usage"] = usage };
                using var doc = JsonDocument.Parse(JsonSerializer.SerializeToUtf8Bytes(result));
                await SiApp.WriteJsonAsync(console, doc.RootElement).ConfigureAwait(false);
            }
            else
            {
                await console.Out.WriteLineAsync().ConfigureAwait(false);
            }

            return ExitCodes.Ok;
        }));
        return command;
    }
}
