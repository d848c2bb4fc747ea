using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Generation;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;
using static ServerlessInference.Onnx.Tests.Generation.LmTestModels;

namespace ServerlessInference.Onnx.Tests.Generation;

/// <summary>The continuous-batching engine on tiny-lm.</summary>
public sealed class TextGenerationModelTests
{
    private static readonly string[] s_prompts =
    [
        "thou shai",
        "bazou tichou stai chou, tha",
        "the",
        "café 日本 sou",
        "shou trai bizou na ke lou mi sa tou ra, chai sta",
        "wou",
        "ke ke ke ke",
        "a long prompt: thou shai bazou tichou stai chou tha wou ke mi sa tou ra chai sta shou trai bizou na lou",
    ];

    [Fact]
    public async Task GenerateAsync_Greedy_IsDeterministicAndVaried()
    {
        using var model = await LoadTinyAsync();
        var request = new GenerationRequest { Prompt = "thou shai", MaxTokens = 40 };

        var first = await CollectAsync(model, request);
        var second = await CollectAsync(model, request);

        Assert.Equal(Tokens(first), Tokens(second));
        Assert.True(40 == first.Count, string.Join(" | ", first));
        Assert.Equal(Enumerable.Range(0, 40), first.Select(e => e.Index));
        Assert.Equal(FinishReason.Length, first[^1].FinishReason);
        Assert.All(first.SkipLast(1), e => Assert.Null(e.FinishReason));
        Assert.True(Tokens(first).Distinct().Count() >= 8, string.Join(",", Tokens(first)));
    }

    [Fact]
    public async Task GenerateAsync_TextPieces_ConcatenateToTheDecodedTokens()
    {
        using var model = await LoadTinyAsync();
        foreach (var prompt in s_prompts)
        {
            var events = await CollectAsync(model, new GenerationRequest { Prompt = prompt, MaxTokens = 60 });

            // Random weights make invalid UTF-8 too (a lone continuation byte): that decodes to U+FFFD in both.
            Assert.Equal(model.Tokenizer.Decode(Tokens(events)), string.Concat(events.Select(e => e.Text)));
        }
    }

    [Fact]
    public async Task GenerateAsync_ContinuousBatching_GreedyEqualsRunAlone()
    {
        var requests = s_prompts.Select((prompt, i) => new GenerationRequest { Prompt = prompt, MaxTokens = 12 + (7 * i % 30) }).ToArray();
        var alone = new List<int[]>();
        using (var sequential = await LoadTinyAsync(maxConcurrentSequences: 1))
        {
            foreach (var request in requests)
            {
                alone.Add(Tokens(await CollectAsync(sequential, request)));
            }
        }

        using var model = await LoadTinyAsync(maxConcurrentSequences: 5);
        // Started in waves so that sequences join a running batch at different steps and leave at different steps.
        var tasks = new List<Task<List<GeneratedToken>>>();
        for (var i = 0; i < requests.Length; i++)
        {
            var request = requests[i];
            tasks.Add(Task.Run(() => CollectAsync(model, request)));
            if (i % 3 == 2)
            {
                await tasks[^1];
            }
        }

        var batched = await Task.WhenAll(tasks);
        for (var i = 0; i < requests.Length; i++)
        {
            AssertSameOrNearTie(requests[i].Prompt!, alone[i], Tokens(batched[i]));
        }

        Assert.True(model.Counters.Steps < requests.Sum(r => r.MaxTokens), "the batch ran sequences together");
    }

    [Fact]
    public async Task GenerateAsync_JoinAndLeaveMidGeneration_GreedyEqualsRunAlone()
    {
        // Each request starts once the one before has streamed 3 tokens: rows join a batch mid-generation, rows in the
        // middle leave first (the last row moves into the hole), the long prompt widens every row when it joins and its
        // early end leaves padding columns that get trimmed.
        var longPrompt = string.Join(" ", s_prompts);
        (string Prompt, int MaxTokens)[] plan =
        [
            (s_prompts[0], 60), (s_prompts[1], 8), (s_prompts[2], 45), (s_prompts[3], 5), (longPrompt, 12),
            (s_prompts[4], 70), (s_prompts[5], 9), (s_prompts[6], 30), (s_prompts[7], 6), (s_prompts[2] + " ke", 40),
        ];
        var requests = plan.Select(p => new GenerationRequest { Prompt = p.Prompt, MaxTokens = p.MaxTokens }).ToArray();
        var alone = new List<int[]>();
        using (var sequential = await LoadTinyAsync(maxConcurrentSequences: 1))
        {
            foreach (var request in requests)
            {
                alone.Add(Tokens(await CollectAsync(sequential, request)));
            }
        }

        using var model = await LoadTinyAsync(maxConcurrentSequences: 8);
        var tasks = new List<Task<List<GeneratedToken>>>();
        foreach (var request in requests)
        {
            var streaming = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            tasks.Add(Task.Run(async () =>
            {
                var events = new List<GeneratedToken>();
                await foreach (var token in model.GenerateAsync(request, null, CancellationToken.None))
                {
                    events.Add(token);
                    if (events.Count == 3)
                    {
                        streaming.TrySetResult();
                    }
                }

                streaming.TrySetResult();
                return events;
            }));
            await streaming.Task;
        }

        var batched = await Task.WhenAll(tasks);
        for (var i = 0; i < requests.Length; i++)
        {
            Assert.Equal(requests[i].MaxTokens, batched[i].Count);
            AssertSameOrNearTie(requests[i].Prompt!, alone[i], Tokens(batched[i]));
        }

        Assert.True(model.Counters.Steps < requests.Sum(r => r.MaxTokens), "the batch ran sequences together");
    }

    [Fact]
    public async Task GenerateAsync_Seeded_IsReproducibleAloneAndBatched()
    {
        using var model = await LoadTinyAsync();
        var sampling = new SamplingParameters { Temperature = 0.9f, TopK = 40, TopP = 0.95f, RepetitionPenalty = 1.1f, Seed = 42 };
        var request = new GenerationRequest { Prompt = "bazou tichou", MaxTokens = 40, Sampling = sampling };

        var first = Tokens(await CollectAsync(model, request));
        var second = Tokens(await CollectAsync(model, request));
        var others = s_prompts.Select(p => Task.Run(() => CollectAsync(model, new GenerationRequest { Prompt = p, MaxTokens = 30 }))).ToArray();
        var batched = Tokens(await CollectAsync(model, request));
        await Task.WhenAll(others);
        var otherSeed = Tokens(await CollectAsync(model, request with { Sampling = sampling with { Seed = 43 } }));

        Assert.Equal(first, second);
        Assert.Equal(first, batched);
        Assert.NotEqual(first, otherSeed);
        Assert.NotEqual(first, Tokens(await CollectAsync(model, request with { Sampling = SamplingParameters.Greedy })));
    }

    [Theory]
    [InlineData(0f, 3)]
    [InlineData(0f, 17)]
    [InlineData(1.0f, 9)]
    public async Task GenerateAsync_Resumed_ContinuesLikeTheUninterruptedRun(float temperature, int emitted)
    {
        using var model = await LoadTinyAsync();
        var request = new GenerationRequest
        {
            Prompt = "shou trai bizou",
            MaxTokens = 30,
            Stop = ["zzz"],
            Sampling = new SamplingParameters { Temperature = temperature, Seed = 7 },
        };

        var full = await CollectAsync(model, request);
        var resumed = await CollectAsync(model, request, [.. Tokens(full).Take(emitted)]);

        Assert.Equal(Enumerable.Range(emitted, 30 - emitted), resumed.Select(e => e.Index));
        var expected = Tokens(full)[emitted..];
        if (temperature == 0f)
        {
            AssertSameOrNearTie(request.Prompt!, Tokens(full), [.. Tokens(full).Take(emitted), .. Tokens(resumed)]);
        }
        else
        {
            Assert.Equal(expected, Tokens(resumed));
        }

        if (Tokens(resumed).SequenceEqual(expected))
        {
            Assert.Equal(full.Skip(emitted).Select(e => e.Text), resumed.Select(e => e.Text));
            Assert.Equal(FinishReason.Length, resumed[^1].FinishReason);
        }
    }

    [Fact]
    public async Task GenerateAsync_MaxTokens_EndsWithLength()
    {
        using var model = await LoadTinyAsync();

        var events = await CollectAsync(model, new GenerationRequest { Prompt = "wou", MaxTokens = 5 });

        Assert.Equal(5, events.Count);
        Assert.Equal(FinishReason.Length, events[^1].FinishReason);
    }

    [Fact]
    public async Task GenerateAsync_ContextFull_EndsWithLength()
    {
        using var model = await LoadTinyAsync();
        var prompt = Enumerable.Range(0, Tiny.ContextLength - 4).Select(i => 40 + (i % 50)).ToArray();

        var events = await CollectAsync(model, new GenerationRequest { PromptTokenIds = prompt, MaxTokens = 100 });

        Assert.Equal(4, events.Count);
        Assert.Equal(FinishReason.Length, events[^1].FinishReason);
    }

    [Fact]
    public async Task GenerateAsync_StopString_EndsBeforeIt()
    {
        using var model = await LoadTinyAsync();
        var request = new GenerationRequest { Prompt = "thou shai", MaxTokens = 60 };
        var text = string.Concat((await CollectAsync(model, request)).Select(e => e.Text));
        var stop = text.Substring(text.Length / 2, 3);

        var events = await CollectAsync(model, request with { Stop = ["\u0001never", stop] });

        Assert.Equal(FinishReason.Stop, events[^1].FinishReason);
        Assert.Equal(text[..text.IndexOf(stop, StringComparison.Ordinal)], string.Concat(events.Select(e => e.Text)));
    }

    [Fact]
    public async Task GenerateAsync_EosToken_EndsWithEos()
    {
        using var plain = await LoadTinyAsync();
        var request = new GenerationRequest { Prompt = "bazou", MaxTokens = 30 };
        var tokens = Tokens(await CollectAsync(plain, request));
        var eos = tokens[6];
        var first = Array.IndexOf(tokens, eos);
        var manifest = DecoderLmModel.Manifest(Tiny);
        manifest = manifest with { Generation = manifest.Generation! with { EosTokenIds = [Tiny.EndOfTextId, eos] } };
        using var model = Assert.IsType<OnnxTextGenerationModel>(await TestModels.Engine.LoadAsync(manifest, TinyPath, CancellationToken.None));

        var events = await CollectAsync(model, request);

        Assert.Equal(first + 1, events.Count);
        Assert.Equal(eos, events[^1].TokenId);
        Assert.Equal(FinishReason.Eos, events[^1].FinishReason);
        Assert.Equal(plain.Tokenizer.Decode(tokens[..first]), string.Concat(events.Select(e => e.Text)));
    }

    [Fact]
    public async Task GenerateAsync_Cancelled_EndsWithCancelledAndFreesTheKvCache()
    {
        using var model = await LoadTinyAsync();
        using var cancellation = new CancellationTokenSource();
        var events = new List<GeneratedToken>();

        await foreach (var token in model.GenerateAsync(new GenerationRequest { Prompt = "thou", MaxTokens = 200 }, null, cancellation.Token))
        {
            events.Add(token);
            if (events.Count == 3)
            {
                Assert.True(model.Counters.KvBytesReserved > 0);
                await cancellation.CancelAsync();
            }
        }

        Assert.Equal(FinishReason.Cancelled, events[^1].FinishReason);
        Assert.Equal(-1, events[^1].TokenId);
        Assert.True(events.Count < 200);
        Assert.True(SpinWait.SpinUntil(() => model.Counters.KvBytesInUse == 0 && model.Counters.KvBytesReserved == 0 && model.Counters.RunningSequences == 0, 10_000));
    }

    [Fact]
    public async Task GenerateAsync_AbandonedEnumeration_FreesTheKvCache()
    {
        using var model = await LoadTinyAsync();

        await foreach (var _ in model.GenerateAsync(new GenerationRequest { Prompt = "thou", MaxTokens = 200 }, null, CancellationToken.None))
        {
            break;
        }

        Assert.True(SpinWait.SpinUntil(() => model.Counters.KvBytesReserved == 0 && model.Counters.RunningSequences == 0, 10_000));
    }

    [Fact]
    public async Task GenerateAsync_KvBudgetFull_WaitsUntilTheRunningSequenceEnds()
    {
        var request = new GenerationRequest { PromptTokenIds = [10, 20, 30, 40], MaxTokens = 40 };
        var oneSequence = 2L * Tiny.Layers * Tiny.Hidden * sizeof(float) * (4 + 40);
        using var model = await LoadTinyAsync(kvCacheBudgetBytes: oneSequence + (oneSequence / 2));

        // Not Task.Run: each call submits its sequence before it returns, so the first is queued first.
        var first = CollectAsync(model, request);
        var second = CollectAsync(model, request);
        var (a, b) = (await first, await second);

        Assert.Equal(40, b.Count);
        Assert.True(b[0].Timestamp >= a[^1].Timestamp, "the second sequence started after the first ended");
        Assert.Equal(Tokens(a), Tokens(b));
        Assert.Equal(2, model.Counters.CompletedSequences);
    }

    [Fact]
    public async Task GenerateAsync_MoreThanTheBudgetAlone_IsABadRequest()
    {
        using var model = await LoadTinyAsync(kvCacheBudgetBytes: 4096);

        var error = await Assert.ThrowsAsync<InferenceException>(() => CollectAsync(model, new GenerationRequest { Prompt = "thou", MaxTokens = 50 }));

        Assert.Equal(InferenceError.BadRequest, error.Error);
        Assert.Contains("budget", error.Message);
    }

    [Fact]
    public async Task GenerateAsync_MaxConcurrentSequences_BoundsTheBatch()
    {
        using var model = await LoadTinyAsync(maxConcurrentSequences: 2);

        await Task.WhenAll(s_prompts.Select(p => CollectAsync(model, new GenerationRequest { Prompt = p, MaxTokens = 20 })));

        // The scheduler's own peak, not a polling watcher's sample (which on 2 busy cores could miss every step).
        Assert.InRange(model.Counters.PeakRunningSequences, 1, 2);
        Assert.Equal(s_prompts.Length * 20, model.Counters.TokensGenerated);
    }

    [Fact]
    public async Task GenerateAsync_PastTheDeadline_EndsWithDeadline()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-04T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        using var model = await LoadTinyAsync(timeProvider: clock);
        var events = new List<GeneratedToken>();

        await foreach (var token in model.GenerateAsync(new GenerationRequest { Prompt = "thou", MaxTokens = 200, Deadline = clock.GetUtcNow().AddSeconds(30) }, null, CancellationToken.None))
        {
            events.Add(token);
            if (events.Count == 2)
            {
                clock.Advance(TimeSpan.FromSeconds(31));
            }
        }

        Assert.Equal(FinishReason.Deadline, events[^1].FinishReason);
        Assert.True(events.Count < 200);
    }

    [Fact]
    public async Task GenerateAsync_Observer_GetsOneTimeToFirstTokenPerSequenceAndTheGaps()
    {
        var observer = new CountingObserver();
        using var model = await LoadTinyAsync(observer: observer);

        await Task.WhenAll(s_prompts.Take(3).Select(p => CollectAsync(model, new GenerationRequest { Prompt = p, MaxTokens = 10 })));

        Assert.Equal(3, observer.First);
        Assert.Equal(27, observer.Gaps);
    }

    [Theory]
    [InlineData(new[] { 1, 2, 999 }, "outside the vocabulary")]
    [InlineData(new int[0], "empty")]
    public async Task GenerateAsync_BadPrompt_IsABadRequest(int[] prompt, string message)
    {
        using var model = await LoadTinyAsync();

        var error = await Assert.ThrowsAsync<InferenceException>(() => CollectAsync(model, new GenerationRequest { PromptTokenIds = prompt }));

        Assert.Equal(InferenceError.BadRequest, error.Error);
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public async Task GenerateAsync_PromptFillsTheContext_IsABadRequest()
    {
        using var model = await LoadTinyAsync();
        var prompt = Enumerable.Repeat(42, Tiny.ContextLength).ToArray();

        var error = await Assert.ThrowsAsync<InferenceException>(() => CollectAsync(model, new GenerationRequest { PromptTokenIds = prompt }));

        Assert.Contains("context", error.Message);
    }

    [Fact]
    public async Task RunBatchAsync_TensorRequest_FailsAsBadRequest()
    {
        using var model = await LoadTinyAsync();

        var results = await model.RunBatchAsync([TestModels.Request("r", TestModels.Floats("x", 1, 4, 0))], CancellationToken.None);

        Assert.Equal(InferenceError.BadRequest, Assert.Single(results).ErrorKind);
    }

    [Fact]
    public async Task LoadAsync_EosOutsideTheVocabulary_FailsNamingTheField()
    {
        var manifest = DecoderLmModel.Manifest(Tiny);
        manifest = manifest with { Generation = manifest.Generation! with { EosTokenIds = [5000] } };

        var error = await Assert.ThrowsAsync<InferenceException>(async () => await TestModels.Engine.LoadAsync(manifest, TinyPath, CancellationToken.None));

        Assert.Equal(InferenceError.ModelFailure, error.Error);
        Assert.Contains("generation.eos_token_ids", error.Message);
    }

    [Fact]
    public async Task LoadAsync_WrongHeadCount_FailsNamingTheField()
    {
        var manifest = DecoderLmModel.Manifest(Tiny);
        manifest = manifest with { Generation = manifest.Generation! with { NumHeads = 4 } };

        var error = await Assert.ThrowsAsync<InferenceException>(async () => await TestModels.Engine.LoadAsync(manifest, TinyPath, CancellationToken.None));

        Assert.Contains("generation.num_heads is 4 but the model's KV inputs say 2", error.Message);
    }

    /// <summary>Equal tokens, or equal up to a position where the run-alone logits had a near-tie (checked with the
    /// reference forward pass): floating-point regrouping may flip a near-tie, and the rest then differs.</summary>
    internal static void AssertSameOrNearTie(string prompt, int[] expected, int[] actual) =>
        AssertSameOrNearTie(TinyTokenizer.Encode(prompt), expected, actual);

    internal static void AssertSameOrNearTie(IReadOnlyList<int> prompt, int[] expected, int[] actual)
    {
        var common = 0;
        while (common < expected.Length && common < actual.Length && expected[common] == actual[common])
        {
            common++;
        }

        if (common == expected.Length && common == actual.Length)
        {
            return;
        }

        Assert.True(common < expected.Length && common < actual.Length, $"lengths differ without a divergence: {expected.Length} vs {actual.Length}");
        var context = prompt.Concat(expected.Take(common)).Select(t => (long)t).ToArray();
        var reference = new ReferenceDecoder(TinyBytes, Tiny);
        var (logits, _) = reference.Forward(context, [.. context.Select(_ => 1L)], [.. Enumerable.Range(0, context.Length).Select(i => (long)i)],
            [.. Enumerable.Range(0, 2 * Tiny.Layers).Select(_ => Array.Empty<float>())], 1, context.Length, 0);
        var last = logits.AsSpan((context.Length - 1) * Tiny.VocabularySize).ToArray().OrderDescending().ToArray();
        Assert.True(last[0] - last[1] < NearTie, $"tokens differ at {common} where the top-1/top-2 margin is {last[0] - last[1]}, not a near-tie");
    }

    private sealed class CountingObserver : IGenerationObserver
    {
        public int First;
        public int Gaps;

        public void TimeToFirstToken(string model, TimeSpan elapsed) => Interlocked.Increment(ref First);

        public void InterTokenLatency(string model, TimeSpan elapsed) => Interlocked.Increment(ref Gaps);
    }
}
