using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.ServerSentEvents;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ServerlessInference.Generation;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Redis;
using ServerlessInference.Streaming;
using StackExchange.Redis;
using FinishReason = ServerlessInference.Streaming.FinishReason;
using Xunit.Abstractions;

namespace ServerlessInference.IntegrationTests;

/// <summary>A worker killed with <c>kill -9</c> in the middle of a generation loses nothing the client can see: the job
/// is delivered again once its lease expires, the next worker prefills the prompt plus the tokens already in the job's
/// stream and goes on, and the client's SSE stream (the same connection, and a reconnect with <c>Last-Event-ID</c>)
/// has no gap and no duplicate and ends normally, with the text of an uninterrupted run.</summary>
/// <remarks>
/// <para>An uninterrupted run may differ from a resumed one only where floating-point noise can flip the choice: the
/// resumed worker computes the first position after the kill in one prefill over the whole context, where the first
/// worker would have run a decode step over its KV cache, and the two reduce their sums in a different order
/// (~1e-5 apart on logits of a few units). So the texts are compared token by token, and a difference is accepted only
/// when, at the first differing token, the demo model run directly in this process (<see cref="DirectDecoder"/>) shows
/// that a nudge of <see cref="NearTieEpsilon"/> to the two candidates' logits flips the sampler between them.
/// Everywhere else the comparison is exact.</para>
/// <para>lm-bench makes a token in about 10 ms on one ONNX Runtime thread, so 300 tokens take seconds; the worker is
/// killed from the client's event callback as soon as the client holds 5 tokens, and the test checks that the job's
/// stream had no final event then (the kill landed mid-generation). The job comes back when its 3 s lease (the
/// fixture's) expires, on the other worker or the one the scaler starts in the victim's place.</para>
/// </remarks>
[Collection(PlatformCollection.Name)]
[Trait("Category", "Integration")]
public sealed class GenerationKillTests(PlatformFixture fixture, ITestOutputHelper output)
{
    /// <summary>A hundred times the float32 noise between a prefill and a decode step, and far below the demo model's
    /// margins between its two most likely tokens (the test prints the margin at the resume point).</summary>
    private const float NearTieEpsilon = 1e-3f;

    private const int MaxTokens = 300;
    private const int TokensBeforeKill = 5;
    private const string Prompt = "the platform keeps every token when a worker dies";
    private static readonly TimeSpan StreamTimeout = TimeSpan.FromSeconds(40);

    [Theory]
    [InlineData("greedy")]
    [InlineData("seeded")]
    public async Task KillNineOfAWorkerMidGeneration_StreamHasNoGapNoDuplicateAndTextOfAnUninterruptedRun(string samplingCase)
    {
        // Bounds every stream read; cancelled on the way out, so no reader outlives the test.
        using var timeout = new CancellationTokenSource(StreamTimeout);
        try
        {
            await KillMidGenerationAsync(samplingCase, timeout.Token);
        }
        finally
        {
            await timeout.CancelAsync();
        }
    }

    private async Task KillMidGenerationAsync(string samplingCase, CancellationToken cancellationToken)
    {
        var host = fixture.Host;
        using var client = host.CreateClient();
        client.Timeout = Timeout.InfiniteTimeSpan;
        var workers = await host.WaitForWorkersAsync(client, PlatformFixture.StartTimeout);
        await using var redis = await ConnectionMultiplexer.ConnectAsync(fixture.Redis.ConnectionString);
        var (parameters, sampling) = Sampling(samplingCase);
        parameters["max_tokens"] = MaxTokens;
        var body = JsonSerializer.Serialize(new Dictionary<string, object> { ["text_input"] = Prompt, ["parameters"] = parameters });
        var clock = Stopwatch.StartNew();

        // An uninterrupted run of the same request on a healthy worker (it also loads lm-bench on one of them).
        var referenceId = await SubmitAsync(client, body);
        var reference = await ReadStreamAsync(client, referenceId, null, clock, null, cancellationToken);
        AssertWellFormed(reference, 0, "the uninterrupted run");
        var referenceTokens = Tokens(reference);
        Assert.True(referenceTokens.Count > 2 * TokensBeforeKill,
            $"the uninterrupted run made only {referenceTokens.Count} tokens ({reference[^1].Finish}); the kill could not land mid-generation");
        output.WriteLine($"{samplingCase}: uninterrupted run: {referenceTokens.Count} tokens ({reference[^1].Finish}) streamed in "
            + $"{(reference[^1].At - reference[0].At).TotalSeconds:F2} s");

        // Its stream ends before its worker stores the result and then completes the lease: wait for both, so the next
        // job's lease is the only one in the queue.
        var referenceText = (await ResultAsync(client, referenceId)).Text;
        await WaitUntilAsync(async () => (await host.Queue.GetDepthAsync(cancellationToken)).InFlight == 0,
            "the uninterrupted run's lease to be completed", cancellationToken);

        // The run to interrupt. A client follows its stream from the start; the worker holding the job's lease is
        // killed from the client's event callback the moment the client has TokensBeforeKill tokens, so the kill lands
        // as close behind the client as it can, well before the end of a generation of MaxTokens.
        var id = await SubmitAsync(client, body);
        var kill = new VictimKill(clock, TokensBeforeKill);
        var first = ReadStreamAsync(client, id, null, clock, e =>
        {
            if (e.Token is not null)
            {
                kill.TokenSeen();
            }
        }, cancellationToken);
        var victim = await FindLeaseHolderAsync(redis, workers, cancellationToken);
        using (var process = Process.GetProcessById(victim.ProcessId))
        {
            kill.Arm(process);
            await Task.WhenAny(kill.Done, first);
            Assert.True(kill.Done.IsCompleted, $"the client's stream ended before {TokensBeforeKill} tokens: "
                + (first.IsCompletedSuccessfully ? Describe(first.Result) : first.Exception?.ToString()));
            await process.WaitForExitAsync(cancellationToken);
        }

        var (seenBeforeKill, killedAt) = await kill.Done;
        var streams = host.Services.GetRequiredService<IJobStreams>();
        var atKill = await streams.ReadAsync(id, cancellationToken);
        Assert.True(atKill.Count > 0 && !atKill[^1].IsFinal,
            $"the killed worker had already finished the generation ({atKill.Count} events); the kill did not land mid-generation");
        output.WriteLine($"{samplingCase}: killed {victim.Id} (pid {victim.ProcessId}) at {killedAt.TotalSeconds:F2} s; the client had {seenBeforeKill} tokens, "
            + $"the job's stream {atKill.Count}");

        // A second client reconnects from the middle of what the first had seen, while no worker holds the job.
        var resumeAfter = (long)(seenBeforeKill / 2);
        var second = ReadStreamAsync(client, id, resumeAfter, clock, null, cancellationToken);

        var events = await WithLogsAsync(first, host);
        var reconnected = await WithLogsAsync(second, host);

        // The first client's connection: 0, 1, 2, ... with no gap and no duplicate, then a normal end.
        AssertWellFormed(events, 0, "the stream followed across the kill");
        Assert.True(events.Count > atKill.Count, "no event arrived after the kill");
        var resumedFirst = events[atKill.Count];
        output.WriteLine($"{samplingCase}: the next token (seq {resumedFirst.Sequence}) reached the client {(resumedFirst.At - killedAt).TotalSeconds:F1} s after the kill; "
            + $"{Tokens(events).Count} tokens ({events[^1].Finish}) at {clock.Elapsed.TotalSeconds:F1} s");

        // The reconnect: exactly the same events after its Last-Event-ID.
        AssertWellFormed(reconnected, resumeAfter + 1, "the stream resumed with Last-Event-ID");
        Assert.Equal(events.Skip((int)resumeAfter + 1).Select(e => e.Key), reconnected.Select(e => e.Key));

        // The job's result is the streamed text, and its usage counts the streamed tokens.
        var streamedText = string.Concat(events.Select(e => e.Text));
        var result = await ResultAsync(client, id);
        Assert.Equal(streamedText, result.Text);
        Assert.Equal(Tokens(events).Count, result.CompletionTokens);

        // The text of the uninterrupted run, token for token, unless a near-tie explains the first difference.
        var resumedTokens = Tokens(events);
        using var decoder = new DirectDecoder(DecoderLmModel.LmBench);
        var prompt = decoder.Tokenizer.Encode(Prompt);
        var resumeContext = prompt.Concat(resumedTokens.Take(atKill.Count)).ToList();
        var resumeLogits = decoder.NextTokenLogits(resumeContext);
        output.WriteLine($"{samplingCase}: top-1/top-2 logit margin at the resume point: {DirectDecoder.TopTwoMargin(resumeLogits):G3}");

        // The arbiter of near-ties must see what the platform saw: at the resume point it picks the resumed worker's token.
        Assert.Equal(resumedTokens[atKill.Count], TokenSampler.Sample(resumeLogits, sampling, [.. resumeContext], sampling.Seed ?? 0, resumeContext.Count));
        var differ = Enumerable.Range(0, Math.Min(referenceTokens.Count, resumedTokens.Count)).FirstOrDefault(i => referenceTokens[i] != resumedTokens[i], -1);
        if (differ < 0)
        {
            Assert.Equal(referenceTokens, resumedTokens);
            Assert.Equal(reference[^1].Finish, events[^1].Finish);
            Assert.Equal(referenceText, result.Text);
            return;
        }

        var context = prompt.Concat(resumedTokens.Take(differ)).ToList();
        var logits = decoder.NextTokenLogits(context);
        var tie = DirectDecoder.IsNearTie(logits, sampling, context, sampling.Seed ?? 0, referenceTokens[differ], resumedTokens[differ], NearTieEpsilon);
        output.WriteLine($"{samplingCase}: token {differ} differs ({referenceTokens[differ]} uninterrupted, {resumedTokens[differ]} resumed); "
            + $"logits {logits[referenceTokens[differ]]:G9} and {logits[resumedTokens[differ]]:G9}; near-tie: {tie}");
        Assert.True(tie, $"token {differ} of the resumed run ({resumedTokens[differ]}) differs from the uninterrupted run's ({referenceTokens[differ]}) "
            + $"and is no floating-point near-tie (logits {logits[referenceTokens[differ]]:G9} and {logits[resumedTokens[differ]]:G9}, epsilon {NearTieEpsilon})");
    }

    /// <summary>The request's parameters (JSON) and what the worker's sampler makes of them.</summary>
    private static (Dictionary<string, object> Json, SamplingParameters Parameters) Sampling(string samplingCase) => samplingCase switch
    {
        "greedy" => (new() { ["temperature"] = 0 }, SamplingParameters.Greedy),
        "seeded" => (new() { ["temperature"] = 0.9, ["top_k"] = 50, ["top_p"] = 0.95, ["repetition_penalty"] = 1.1, ["seed"] = 20261204 },
            new SamplingParameters { Temperature = 0.9f, TopK = 50, TopP = 0.95f, RepetitionPenalty = 1.1f, Seed = 20261204 }),
        _ => throw new ArgumentOutOfRangeException(nameof(samplingCase), samplingCase, null),
    };

    private static async Task<string> SubmitAsync(HttpClient client, string body)
    {
        using var post = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{DecoderLmModel.LmBench.Name}/generate")
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
            Headers = { { "Prefer", "respond-async" } },
        };
        using var response = await client.SendAsync(post);
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return response.Headers.GetValues("X-Job-Id").Single();
    }

    /// <summary>Follows <c>/jobs/{id}/stream</c> on one connection until its <c>end</c> event.</summary>
    private static async Task<List<StreamedEvent>> ReadStreamAsync(HttpClient client, string id, long? lastEventId, Stopwatch clock,
        Action<StreamedEvent>? onEvent, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/jobs/{id}/stream");
        if (lastEventId is { } after)
        {
            request.Headers.Add("Last-Event-ID", after.ToString(CultureInfo.InvariantCulture));
        }

        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (response.StatusCode != HttpStatusCode.OK)
        {
            // Read only here: reading the body of a stream that is fine would wait for its end.
            Assert.Fail($"GET /jobs/{id}/stream: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync(cancellationToken)}");
        }

        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        var events = new List<StreamedEvent>();
        await foreach (var item in SseParser.Create(body).EnumerateAsync(cancellationToken))
        {
            var data = JsonSerializer.Deserialize(item.Data, JobStreamJson.Default.JobStreamEvent)!;
            var e = new StreamedEvent(item.EventId, item.EventType, data.Sequence, data.TokenId, data.Text, data.Finish, data.Error, clock.Elapsed);
            events.Add(e);
            onEvent?.Invoke(e);
            if (item.EventType == "end")
            {
                break;
            }
        }

        return events;
    }

    /// <summary>Ids <paramref name="from"/>, from + 1, ... each equal to its data's sequence; one <c>end</c> event, last,
    /// with a normal finish.</summary>
    private static void AssertWellFormed(List<StreamedEvent> events, long from, string what)
    {
        Assert.True(events.Count > 0, $"{what}: no events");
        for (var i = 0; i < events.Count; i++)
        {
            var e = events[i];
            var expected = (from + i).ToString(CultureInfo.InvariantCulture);
            Assert.True(e.Id == expected && e.Sequence == from + i, $"{what}: event {i} has id {e.Id} and seq {e.Sequence}, expected {expected}\n{Describe(events)}");
            var last = i == events.Count - 1;
            Assert.True(last == (e.Type == "end"), $"{what}: event {e.Id} is '{e.Type}'\n{Describe(events)}");
            Assert.True(last || e.Token is not null, $"{what}: event {e.Id} carries no token");
        }

        var end = events[^1];
        Assert.True(end.Finish is FinishReason.Length or FinishReason.Eos or FinishReason.Stop && end.Error is null,
            $"{what}: ended with {end.Finish} {end.Error}");
    }

    /// <summary>The worker whose Redis consumer holds the only pending entry of the queue (the job), once one does.</summary>
    private async Task<(string Id, int ProcessId)> FindLeaseHolderAsync(IConnectionMultiplexer redis, IReadOnlyList<(string Id, int ProcessId)> workers,
        CancellationToken cancellationToken)
    {
        // The job's partition: the model's, or model#prefix for a prompt whose prefix is keyed.
        StreamPendingInfo pending = default;
        await WaitUntilAsync(async () =>
        {
            foreach (var key in await fixture.Host.Queue.ListPartitionsAsync(cancellationToken))
            {
                var stream = fixture.Host.Queue.PartitionStreamKey(key);
                if (await redis.GetDatabase().KeyExistsAsync(stream))
                {
                    pending = await redis.GetDatabase().StreamPendingAsync(stream, "workers");
                    if (pending.PendingMessageCount > 0)
                    {
                        return true;
                    }
                }
            }

            return false;
        }, "a worker's lease on the job", cancellationToken);
        var holders = (pending.Consumers ?? []).Where(c => c.PendingMessageCount > 0).ToList();
        Assert.True(pending.PendingMessageCount == 1 && holders.Count == 1,
            $"expected the job as the only pending entry; pending {pending.PendingMessageCount} with [{string.Join(", ", holders.Select(c => $"{c.Name}: {c.PendingMessageCount}"))}]");
        var holder = workers.Where(w => PlatformHost.ConsumerName(w.ProcessId) == holders[0].Name).ToList();
        Assert.True(holder.Count == 1, $"consumer {holders[0].Name} is none of the workers [{string.Join(", ", workers)}]");
        return holder[0];
    }

    /// <summary>Polls <paramref name="condition"/> until it holds or the test's time is up.</summary>
    private static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, CancellationToken cancellationToken)
    {
        while (!await condition())
        {
            Assert.False(cancellationToken.IsCancellationRequested, $"gave up waiting for {what}");
            await Task.Delay(5, CancellationToken.None);
        }
    }

    private static async Task<GenerationResult> ResultAsync(HttpClient client, string id)
    {
        var job = (await Jobs.WaitAllTerminalAsync(client, [id], TimeSpan.FromSeconds(10)))[id];
        Assert.True(job.GetProperty("status").GetString() == "succeeded", $"job {id}: {job}");
        return GenerationJobs.ReadResponse(Oip.JobResponse(job));
    }

    /// <summary>Awaits a stream reader; when it fails or times out, the failure carries the platform's log.</summary>
    private static async Task<List<StreamedEvent>> WithLogsAsync(Task<List<StreamedEvent>> reading, PlatformHost host)
    {
        try
        {
            return await reading;
        }
        catch (OperationCanceledException ex)
        {
            throw new TimeoutException($"the stream did not end within {StreamTimeout.TotalSeconds} s\nlog:\n{host.Logs.Tail()}", ex);
        }
    }

    private static List<int> Tokens(List<StreamedEvent> events) => [.. events.Where(e => e.Token is not null).Select(e => e.Token!.Value)];

    private static string Describe(List<StreamedEvent> events) =>
        string.Join(" ", events.Take(40).Select(e => $"{e.Id}:{e.Type}:{e.Token}")) + (events.Count > 40 ? $" ... ({events.Count})" : "");

    /// <summary>SIGKILLs the victim once the client has seen <paramref name="threshold"/> tokens and the victim is
    /// known, whichever comes last: from the client's event callback (no hop to another thread), or from
    /// <see cref="Arm"/>.</summary>
    private sealed class VictimKill(Stopwatch clock, int threshold)
    {
        private readonly TaskCompletionSource<(int Seen, TimeSpan At)> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private Process? _victim;
        private int _seen;
        private int _killed;

        /// <summary>Tokens the client had, and when the kill was sent.</summary>
        public Task<(int Seen, TimeSpan At)> Done => _done.Task;

        public void TokenSeen()
        {
            Interlocked.Increment(ref _seen);
            TryKill();
        }

        public void Arm(Process victim)
        {
            Volatile.Write(ref _victim, victim);
            TryKill();
        }

        private void TryKill()
        {
            var seen = Volatile.Read(ref _seen);
            if (seen < threshold || Volatile.Read(ref _victim) is not { } victim || Interlocked.Exchange(ref _killed, 1) == 1)
            {
                return;
            }

            try
            {
                victim.Kill(); // SIGKILL
                _done.TrySetResult((seen, clock.Elapsed));
            }
            catch (Exception ex)
            {
                _done.TrySetException(ex);
            }
        }
    }

    /// <summary>One SSE event as the client saw it, and when.</summary>
    private sealed record StreamedEvent(string? Id, string Type, long Sequence, int? Token, string Text, FinishReason? Finish, string? Error, TimeSpan At)
    {
        /// <summary>What two clients must agree on.</summary>
        public (string? Id, string Type, int? Token, string Text, FinishReason? Finish) Key => (Id, Type, Token, Text, Finish);
    }
}
