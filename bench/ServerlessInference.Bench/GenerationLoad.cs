using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.ServerSentEvents;
using System.Text;
using System.Text.Json;
using ServerlessInference.Generation;

namespace ServerlessInference.Bench;

/// <summary>Something that runs one generation and reports each token as it arrives.</summary>
internal interface IGenerationTarget
{
    /// <summary>Runs <paramref name="prompt"/> to its end, calling <paramref name="onToken"/> once per token event
    /// (true when it carries text).</summary>
    /// <exception cref="OperationCanceledException"><paramref name="stop"/> fired; the generation was cancelled on the
    /// server too, so it frees its sequence before the next scenario runs.</exception>
    /// <exception cref="GenerationFailure">An error answer or event.</exception>
    Task RunAsync(GenerationPrompt prompt, Action<bool> onToken, CancellationToken stop);

    /// <summary>Drops pooled connections before a slice: connections kept across a freeze (SIGSTOP of the server
    /// between its slices) failed on first use after the thaw (ResponseEnded), one error per client.</summary>
    void FreshConnections()
    {
    }
}

internal sealed class GenerationFailure(string message) : Exception(message);

/// <summary>The engine in this process: <see cref="ITextGenerationModel.GenerateAsync"/>, no HTTP, no queue. A token
/// event is a <see cref="GeneratedToken"/> with a token id, as the worker appends them to the job's stream.</summary>
internal sealed class EngineTarget(ITextGenerationModel model) : IGenerationTarget
{
    public async Task RunAsync(GenerationPrompt prompt, Action<bool> onToken, CancellationToken stop)
    {
        await foreach (var token in model.GenerateAsync(prompt.ToRequest(), null, stop).ConfigureAwait(false))
        {
            if (token.TokenId >= 0)
            {
                onToken(token.Text.Length > 0);
            }
        }

        stop.ThrowIfCancellationRequested();
    }
}

/// <summary><c>POST /v2/models/{m}/generate_stream</c> (KServe's generate extension over SSE): one event per token,
/// the last one with <c>finish_reason</c>. When stopped, the job (its id from <c>X-Job-Id</c>) is cancelled with
/// <c>DELETE /jobs/{id}</c>, so the worker frees the sequence instead of finishing it unobserved.</summary>
internal sealed class SseTarget : IGenerationTarget, IDisposable
{
    private readonly Uri _url;
    private readonly Uri _baseUri;
    private readonly int _clients;
    private HttpClient _client;

    public SseTarget(Uri baseUri, string model, int clients)
    {
        _baseUri = baseUri;
        _url = new Uri(baseUri, $"v2/models/{model}/generate_stream");
        _clients = clients;
        _client = NewClient();
    }

    public void FreshConnections()
    {
        var old = _client;
        _client = NewClient();
        old.Dispose();
    }

    // Room for a DELETE beside every stream.
    private HttpClient NewClient() => LoadDriver.CreateClient(2 * _clients + 2);

    public async Task RunAsync(GenerationPrompt prompt, Action<bool> onToken, CancellationToken stop)
    {
        var content = new ByteArrayContent(prompt.Body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var message = new HttpRequestMessage(HttpMethod.Post, _url) { Content = content };
        // Not cancelled by stop: the answer's headers (sent as soon as the job is queued) name the job to cancel.
        using var response = await _client.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, CancellationToken.None).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            var text = await response.Content.ReadAsStringAsync(CancellationToken.None).ConfigureAwait(false);
            throw new GenerationFailure($"{(int)response.StatusCode} {Truncate(text)}");
        }

        var jobId = response.Headers.TryGetValues("X-Job-Id", out var ids) ? ids.FirstOrDefault() : null;
        try
        {
            stop.ThrowIfCancellationRequested();
            await using var stream = await response.Content.ReadAsStreamAsync(stop).ConfigureAwait(false);
            await foreach (var item in SseParser.Create(stream, static (_, data) => SseToken.Parse(data)).EnumerateAsync(stop).ConfigureAwait(false))
            {
                var token = item.Data;
                if (token.Error is not null)
                {
                    throw new GenerationFailure($"error event: {Truncate(token.Error)}");
                }

                if (token.Final)
                {
                    return;
                }

                onToken(token.HasText);
            }

            throw new GenerationFailure("the stream ended without a finish_reason event");
        }
        catch (Exception ex) when (stop.IsCancellationRequested && ex is OperationCanceledException or IOException or HttpRequestException)
        {
            if (jobId is not null)
            {
                await CancelAsync(jobId).ConfigureAwait(false);
            }

            throw new OperationCanceledException(stop);
        }
    }

    public void Dispose() => _client.Dispose();

    private async Task CancelAsync(string jobId)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            // 200 cancelled; 409 when it ended meanwhile. Either way the worker is free of it.
            using var _ = await _client.DeleteAsync(new Uri(_baseUri, $"jobs/{Uri.EscapeDataString(jobId)}"), timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException)
        {
            Console.Error.WriteLine($"warning: DELETE /jobs/{jobId} failed: {ex.Message}");
        }
    }

    private static string Truncate(string text) => text.Length > 200 ? text[..200] + "…" : text;

    /// <summary>What the bench reads of one event: <c>text_output</c> non-empty, <c>finish_reason</c> present, <c>error</c>.</summary>
    private readonly record struct SseToken(bool HasText, bool Final, string? Error)
    {
        public static SseToken Parse(ReadOnlySpan<byte> data)
        {
            var reader = new Utf8JsonReader(data);
            bool hasText = false, final = false;
            string? error = null;
            try
            {
                if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                {
                    return new SseToken(false, false, $"not a JSON object: {Encoding.UTF8.GetString(data)}");
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("text_output"u8))
                    {
                        reader.Read();
                        hasText = reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length > 0;
                    }
                    else if (reader.ValueTextEquals("finish_reason"u8))
                    {
                        reader.Read();
                        final = true;
                    }
                    else if (reader.ValueTextEquals("error"u8))
                    {
                        reader.Read();
                        error = reader.TokenType == JsonTokenType.String ? reader.GetString() : "error";
                    }
                    else
                    {
                        reader.Read();
                        reader.Skip();
                    }
                }
            }
            catch (JsonException ex)
            {
                return new SseToken(false, false, $"bad JSON ({ex.Message}): {Encoding.UTF8.GetString(data)}");
            }

            return new SseToken(hasText, final, error);
        }
    }
}

/// <summary>What one closed-loop generation slice measured: token events and times to first token inside its window.</summary>
/// <param name="Tokens">Token events that arrived inside the window.</param>
/// <param name="TokensWithWarmup">Token events from the start of the slice's warm-up to its end (the per-token CPU denominator).</param>
/// <param name="Completed">Generations whose final event arrived inside the window.</param>
/// <param name="TimesToFirstTokenMs">From sending a request to its first token event with text, for requests sent inside
/// the window whose first token came before its end (not the burst of every client starting at once when a slice begins).</param>
internal sealed record GenerationSlice(long Tokens, long TokensWithWarmup, long Completed, double Seconds, double[] TimesToFirstTokenMs, long Errors, IReadOnlyList<string> ErrorSamples);

/// <summary>Closed-loop generation clients: each sends its next request of the mix as soon as the previous one ends.
/// Tokens are counted as they arrive, one per token event; only those inside the measurement window (after the warm-up)
/// count. At the window's end every running generation is stopped (and cancelled on the server).</summary>
internal static class GenerationLoad
{
    public static async Task<GenerationSlice> RunAsync(IGenerationTarget target, GenerationMix mix, int clients, int firstNumber, TimeSpan warmup, TimeSpan duration)
    {
        var started = Stopwatch.GetTimestamp();
        var measureStart = started + Ticks(warmup);
        var measureEnd = measureStart + Ticks(duration);
        using var stop = new CancellationTokenSource();
        var errors = 0L;
        var samples = new List<string>();

        async Task<(long Tokens, long All, long Completed, List<double> Ttft)> ClientAsync(int client)
        {
            long tokens = 0, all = 0, completed = 0;
            var ttft = new List<double>();
            for (var number = firstNumber; !stop.IsCancellationRequested; number++)
            {
                var prompt = mix.For(client, clients, number);
                var sent = Stopwatch.GetTimestamp();
                var first = true;
                try
                {
                    await target.RunAsync(prompt, hasText =>
                    {
                        var now = Stopwatch.GetTimestamp();
                        all++;
                        var inside = now >= measureStart && now <= measureEnd;
                        if (inside)
                        {
                            tokens++;
                        }

                        if (first && hasText)
                        {
                            first = false;
                            if (inside && sent >= measureStart)
                            {
                                ttft.Add((now - sent) * 1000.0 / Stopwatch.Frequency);
                            }
                        }
                    }, stop.Token).ConfigureAwait(false);
                    var ended = Stopwatch.GetTimestamp();
                    if (ended >= measureStart && ended <= measureEnd)
                    {
                        completed++;
                    }
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception ex) when (ex is GenerationFailure or HttpRequestException or IOException or InferenceException or OperationCanceledException)
                {
                    Interlocked.Increment(ref errors);
                    lock (samples)
                    {
                        if (samples.Count < 5)
                        {
                            // The inner exception says what a connection-level failure was (refused, reset, ...).
                            samples.Add($"{ex.GetType().Name}: {ex.Message}{(ex.InnerException is { } inner ? $" ({inner.GetType().Name}: {inner.Message})" : "")}" +
                                $" at {Stopwatch.GetElapsedTime(measureStart).TotalSeconds:0.0} s of the slice");
                        }
                    }

                    await Task.Delay(50).ConfigureAwait(false); // a failing server must not turn this into a spin
                }
            }

            return (tokens, all, completed, ttft);
        }

        var loops = Enumerable.Range(0, clients).Select(client => Task.Run(() => ClientAsync(client))).ToArray();
        var remaining = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), measureEnd);
        if (remaining > TimeSpan.Zero)
        {
            await Task.Delay(remaining).ConfigureAwait(false);
        }

        await stop.CancelAsync().ConfigureAwait(false);
        var results = await Task.WhenAll(loops).ConfigureAwait(false);
        return new GenerationSlice(results.Sum(r => r.Tokens), results.Sum(r => r.All), results.Sum(r => r.Completed), duration.TotalSeconds,
            [.. results.SelectMany(r => r.Ttft)], Interlocked.Read(ref errors), samples);
    }

    /// <summary>Nearest-rank percentile of sorted milliseconds.</summary>
    public static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];

    private static long Ticks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);
}
