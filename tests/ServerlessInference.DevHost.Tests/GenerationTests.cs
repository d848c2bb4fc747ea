using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Net.ServerSentEvents;
using System.Text;
using System.Diagnostics.Metrics;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;

namespace ServerlessInference.DevHost.Tests;

/// <summary>Generation end to end on the DevHost's embedded profile (in-memory queue, results and streams; real ONNX
/// Runtime on <c>tiny-lm</c>): OpenAI's routes through the official SDK, KServe's generate extension, a job's SSE
/// stream with <c>Last-Event-ID</c>, and the 4xx answers, which are never enqueued.</summary>
[Collection(DevHostCollection.Name)]
public sealed class GenerationTests(DevHostFixture fixture)
{
    private HttpClient Client() => fixture.Host.CreateClient();

    private ChatClient Chat(string model = "tiny-lm") => new(model, new ApiKeyCredential("unused"), Options());

    private OpenAIClientOptions Options() => new()
    {
        Endpoint = new Uri(fixture.Host.Server.BaseAddress, "/v1"),
        Transport = new HttpClientPipelineTransport(Client()),
    };

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task Completions_Greedy_AnswersAnOpenAiCompletionWithUsage()
    {
        using var response = await Client().PostAsync("/v1/completions", Json("""{"model":"tiny-lm","prompt":"the cat","max_tokens":6,"temperature":0}"""));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = body.RootElement;
        Assert.Equal("text_completion", root.GetProperty("object").GetString());
        Assert.Equal("tiny-lm", root.GetProperty("model").GetString());
        Assert.StartsWith("cmpl-", root.GetProperty("id").GetString());
        var choice = Assert.Single(root.GetProperty("choices").EnumerateArray().ToList());
        Assert.Contains(choice.GetProperty("finish_reason").GetString(), new[] { "stop", "length" });
        var usage = root.GetProperty("usage");
        Assert.True(usage.GetProperty("prompt_tokens").GetInt32() > 0);
        Assert.InRange(usage.GetProperty("completion_tokens").GetInt32(), 1, 6);
        Assert.Equal(usage.GetProperty("prompt_tokens").GetInt32() + usage.GetProperty("completion_tokens").GetInt32(), usage.GetProperty("total_tokens").GetInt32());
    }

    [Fact]
    public async Task Completions_SameGreedyRequestTwice_SameText()
    {
        const string request = """{"model":"tiny-lm","prompt":"once upon","max_tokens":8,"temperature":0}""";
        var first = await TextAsync(await Client().PostAsync("/v1/completions", Json(request)));
        var second = await TextAsync(await Client().PostAsync("/v1/completions", Json(request)));

        Assert.Equal(first, second);
    }

    [Fact]
    public async Task OpenAiSdk_ChatCompletion_StreamingConcatenatesToTheWholeAnswer()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 };
        ChatMessage[] messages = [new SystemChatMessage("be brief"), new UserChatMessage("hello there")];

        ChatCompletion whole = await Chat().CompleteChatAsync(messages, options);
        var streamed = new StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var update in Chat().CompleteChatStreamingAsync(messages, options))
        {
            foreach (var part in update.ContentUpdate)
            {
                streamed.Append(part.Text);
            }

            finish ??= update.FinishReason;
        }

        Assert.Equal(ChatMessageRole.Assistant, whole.Role);
        Assert.Equal(whole.Content[0].Text, streamed.ToString());
        Assert.Equal(whole.FinishReason, finish);
        Assert.True(whole.Usage.InputTokenCount > 0);
        Assert.InRange(whole.Usage.OutputTokenCount, 1, 8);
    }

    [Fact]
    public async Task OpenAiSdk_SeededSampling_IsReproducible()
    {
#pragma warning disable OPENAI001 // Seed is marked experimental in the SDK.
        var options = new ChatCompletionOptions { Temperature = 0.9f, TopP = 0.95f, Seed = 42, MaxOutputTokenCount = 10 };
#pragma warning restore OPENAI001
        ChatMessage[] messages = [new UserChatMessage("tell me")];

        ChatCompletion first = await Chat().CompleteChatAsync(messages, options);
        ChatCompletion second = await Chat().CompleteChatAsync(messages, options);

        Assert.Equal(first.Content[0].Text, second.Content[0].Text);
    }

    [Fact]
    public async Task OpenAiSdk_UnknownModel_IsA404WithOpenAisErrorShape()
    {
        var error = await Assert.ThrowsAsync<ClientResultException>(() => Chat("no-such-model").CompleteChatAsync([new UserChatMessage("hi")]));

        Assert.Equal(404, error.Status);
        using var body = JsonDocument.Parse(error.GetRawResponse()!.Content.ToString());
        var e = body.RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", e.GetProperty("type").GetString());
        Assert.Equal("model_not_found", e.GetProperty("code").GetString());
        Assert.Contains("no-such-model", e.GetProperty("message").GetString());
    }

    [Theory]
    [InlineData("""{"model":"mlp-bench","prompt":"x"}""", 400, null, "not a text-generation model")]
    [InlineData("""{"model":"tiny-lm","prompt":"x","n":2}""", 400, "n", "n must be 1")]
    [InlineData("""{"model":"tiny-lm","prompt":"x","temperature":3}""", 400, "temperature", "temperature must be between 0 and 2")]
    [InlineData("""{"model":"tiny-lm","prompt":"x","top_p":0}""", 400, "top_p", "top_p must be in (0, 1]")]
    [InlineData("""{"model":"tiny-lm","prompt":"x","max_tokens":100000}""", 400, null, "context")]
    [InlineData("""{"model":"tiny-lm","prompt":"x","logprobs":3}""", 400, "logprobs", "not supported")]
    [InlineData("""{"model":"tiny-lm"}""", 400, "prompt", "prompt")]
    [InlineData("""{"prompt":"x"}""", 400, "model", "model")]
    [InlineData("""{"model":"tiny-lm","prompt":""", 400, null, "not valid JSON")]
    public async Task Completions_BadInput_IsA4xxInOpenAisShapeAndNothingIsQueued(string body, int status, string? param, string message)
    {
        var before = await QueuedAsync();

        using var response = await Client().PostAsync("/v1/completions", Json(body));

        Assert.Equal(status, (int)response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = json.RootElement.GetProperty("error");
        Assert.Contains(message, error.GetProperty("message").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(param, error.GetProperty("param").ValueKind == JsonValueKind.Null ? null : error.GetProperty("param").GetString());
        Assert.True(error.TryGetProperty("code", out _));
        Assert.Equal(before, await QueuedAsync());
    }

    [Fact]
    public async Task Completions_PromptLongerThanTheContext_Is400NamingTheLengthsAndIsNeverQueued()
    {
        var prompt = string.Concat(Enumerable.Repeat("lorem ipsum dolor sit amet ", 200));
        var before = await QueuedAsync();

        using var response = await Client().PostAsync("/v1/completions", Json($$"""{"model":"tiny-lm","prompt":"{{prompt}}","max_tokens":4}"""));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Matches("the prompt is [0-9]+ tokens, but the context of 'tiny-lm' holds 256 tokens", json.RootElement.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal(before, await QueuedAsync());
        Assert.Null(response.Headers.Contains("X-Job-Id") ? "queued" : null);
    }

    [Fact]
    public async Task Models_ListsTheTextGenerationModelsOnly()
    {
        using var json = JsonDocument.Parse(await Client().GetStringAsync("/v1/models"));

        Assert.Equal("list", json.RootElement.GetProperty("object").GetString());
        var ids = json.RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()).ToList();
        Assert.Contains("tiny-lm", ids);
        Assert.Contains("lm-bench", ids);
        Assert.DoesNotContain("mlp-bench", ids);
    }

    [Fact]
    public async Task Generate_KServeExtension_AnswersTextOutputAndStreamsTheSameText()
    {
        const string request = """{"text_input":"the dog","parameters":{"max_tokens":6,"temperature":0}}""";
        using var whole = await Client().PostAsync("/v2/models/tiny-lm/generate", Json(request));
        Assert.Equal(HttpStatusCode.OK, whole.StatusCode);
        using var json = JsonDocument.Parse(await whole.Content.ReadAsStringAsync());
        Assert.Equal("tiny-lm", json.RootElement.GetProperty("model_name").GetString());
        var text = json.RootElement.GetProperty("text_output").GetString();

        using var stream = await Client().SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v2/models/tiny-lm/generate_stream") { Content = Json(request) }, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", stream.Content.Headers.ContentType?.MediaType);
        var pieces = new StringBuilder();
        string? finish = null;
        await foreach (var item in SseParser.Create(await stream.Content.ReadAsStreamAsync()).EnumerateAsync())
        {
            using var e = JsonDocument.Parse(item.Data);
            pieces.Append(e.RootElement.GetProperty("text_output").GetString());
            if (e.RootElement.TryGetProperty("finish_reason", out var f))
            {
                finish = f.GetString();
            }
        }

        Assert.Equal(text, pieces.ToString());
        Assert.NotNull(finish);
    }

    [Fact]
    public async Task JobStream_RespondAsyncThenStream_ResumesAfterLastEventIdWithoutGapOrDuplicate()
    {
        using var accepted = await Client().SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v2/models/tiny-lm/generate")
        {
            Content = Json("""{"text_input":"a long time ago","parameters":{"max_tokens":12,"temperature":0}}"""),
            Headers = { { "Prefer", "respond-async" } },
        });
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        var location = accepted.Headers.Location!.ToString();

        var all = await ReadStreamAsync(location + "/stream", lastEventId: null);
        var tokens = all.Where(e => e.Type != "end").ToList();
        Assert.Equal("end", all[^1].Type);
        Assert.Equal(Enumerable.Range(0, all.Count).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)), all.Select(e => e.Id));

        // Reconnect after the third event: exactly the rest, in order.
        var rest = await ReadStreamAsync(location + "/stream", lastEventId: "2");
        Assert.Equal(all.Skip(3).Select(e => (e.Id, e.Data)), rest.Select(e => (e.Id, e.Data)));

        // The finished job's text is the stream's text.
        using var job = JsonDocument.Parse(await Client().GetStringAsync(location));
        Assert.Equal("succeeded", job.RootElement.GetProperty("status").GetString());
        var text = string.Concat(tokens.Select(e => JsonDocument.Parse(e.Data).RootElement.GetProperty("text").GetString()));
        var output = job.RootElement.GetProperty("response").GetProperty("outputs")[0].GetProperty("data")[0].GetString();
        Assert.Equal(output, text);
    }

    [Fact]
    public async Task Delete_RunningGeneration_EndsItsStreamAsCancelledAndTheJobIsCancelled()
    {
        // lm-bench at 1000 tokens runs for many seconds on this CPU, so the DELETE lands while it runs.
        using var accepted = await Client().SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v2/models/lm-bench/generate")
        {
            Content = Json("""{"text_input":"to be cancelled","parameters":{"max_tokens":1000,"temperature":0}}"""),
            Headers = { { "Prefer", "respond-async" } },
        });
        var location = accepted.Headers.Location!.ToString();
        using var stream = await Client().SendAsync(new HttpRequestMessage(HttpMethod.Get, location + "/stream"), HttpCompletionOption.ResponseHeadersRead);
        var events = new List<SseItem<string>>();
        var deleted = false;
        await foreach (var item in SseParser.Create(await stream.Content.ReadAsStreamAsync()).EnumerateAsync())
        {
            events.Add(item);
            if (!deleted)
            {
                deleted = true;
                using var delete = await Client().DeleteAsync(location);
                Assert.Equal(HttpStatusCode.OK, delete.StatusCode);
            }
        }

        var end = events[^1];
        Assert.Equal("end", end.EventType);
        Assert.Equal("cancelled", JsonDocument.Parse(end.Data).RootElement.GetProperty("finish").GetString());
        Assert.True(events.Count < 1000, $"the generation ran to its end ({events.Count} events)");
        using var job = JsonDocument.Parse(await Client().GetStringAsync(location));
        Assert.Equal("cancelled", job.RootElement.GetProperty("status").GetString());
    }

    [Fact]
    public async Task Metrics_AfterAGeneration_RecordTokensTimeToFirstTokenAndRunningSequences()
    {
        // Read from this host's own meter (its IMeterFactory): several DevHosts share this test process, and
        // OpenTelemetry's Prometheus exporter listens to every meter of the name, whichever host made it.
        var factory = fixture.Host.Services.GetRequiredService<IMeterFactory>();
        var seen = new System.Collections.Concurrent.ConcurrentDictionary<string, int>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter.Scope, factory) && instrument.Meter.Name == "ServerlessInference")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((i, _, _, _) => seen.AddOrUpdate(i.Name, 1, (_, n) => n + 1));
        listener.SetMeasurementEventCallback<double>((i, _, _, _) => seen.AddOrUpdate(i.Name, 1, (_, n) => n + 1));
        listener.Start();

        await TextAsync(await Client().PostAsync("/v1/completions", Json("""{"model":"tiny-lm","prompt":"count me","max_tokens":4,"temperature":0}""")));
        listener.RecordObservableInstruments();

        Assert.Contains("inference_generated_tokens", seen.Keys);
        Assert.Contains("inference_time_to_first_token", seen.Keys);
        Assert.Contains("inference_inter_token_latency", seen.Keys);
        Assert.Contains("inference_running_sequences", seen.Keys);
        Assert.Contains("inference_waiting_sequences", seen.Keys);
        Assert.Contains("inference_kv_cache_bytes", seen.Keys);
        using var status = JsonDocument.Parse(await Client().GetStringAsync("/status"));
        Assert.All(status.RootElement.GetProperty("workers").EnumerateArray(), w => Assert.True(w.TryGetProperty("running_sequences", out _)));
    }

    [Fact]
    public async Task JobStream_BadLastEventId_Is400()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/jobs/whatever/stream") { Headers = { { "Last-Event-ID", "abc" } } };

        using var response = await Client().SendAsync(request);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    private async Task<List<(string? Id, string Type, string Data)>> ReadStreamAsync(string path, string? lastEventId)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }

        using var response = await Client().SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = new List<(string?, string, string)>();
        await foreach (var item in SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync())
        {
            events.Add((item.EventId, item.EventType, item.Data));
        }

        return events;
    }

    private async Task<long> QueuedAsync()
    {
        using var status = JsonDocument.Parse(await Client().GetStringAsync("/status"));
        return status.RootElement.GetProperty("queue").GetProperty("queued").GetInt64();
    }

    private static async Task<string> TextAsync(HttpResponseMessage response)
    {
        using (response)
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            return json.RootElement.GetProperty("choices")[0].GetProperty("text").GetString()!;
        }
    }
}
