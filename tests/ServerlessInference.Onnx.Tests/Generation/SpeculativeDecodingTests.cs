using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Generation;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;
using ServerlessInference.Onnx.Generation.Speculative;
using static ServerlessInference.Onnx.Tests.Generation.LmTestModels;

namespace ServerlessInference.Onnx.Tests.Generation;

/// <summary>Speculative decoding on tiny-lm: verification keeps the model's output, proposers and k adaptation.</summary>
public sealed class SpeculativeDecodingTests
{
    private static readonly string[] s_prompts =
    [
        "thou shai",
        "bazou tichou stai chou, tha",
        "ke ke ke ke",
        "shou trai bizou na ke lou mi sa tou ra, chai sta shou trai bizou na ke lou mi sa tou ra, chai sta shou trai",
        "a long prompt: thou shai bazou tichou stai chou tha wou ke mi sa tou ra chai sta shou trai bizou na lou",
    ];

    [Fact]
    public void Propose_RepeatedNgram_CopiesWhatFollowedItsMostRecentEarlierOccurrence()
    {
        int[] tokens = [1, 2, 3, 9, 8, 1, 2, 3, 7, 5, 6, 1, 2, 3];
        var proposals = new int[3];

        var count = PromptLookupProposer.Propose(tokens, 3, proposals);

        Assert.Equal(3, count);
        Assert.Equal([7, 5, 6], proposals);
    }

    [Fact]
    public void Propose_OnlyAShortMatch_FallsBackToShorterNgramsAndCutsAtTheEnd()
    {
        int[] tokens = [4, 5, 6, 9, 6];
        var proposals = new int[4];

        var count = PromptLookupProposer.Propose(tokens, 3, proposals);

        Assert.Equal(2, count); // "6" matched at index 2; "9 6" follows it
        Assert.Equal([9, 6], proposals[..count]);
        Assert.Equal(0, PromptLookupProposer.Propose([1, 2, 3], 3, proposals));
    }

    [Fact]
    public void Record_AllAccepted_KeepsKAtTheMaximum()
    {
        var state = new SpeculationState(6);
        for (var i = 0; i < 20; i++)
        {
            state.Record(state.K, state.K);
        }

        Assert.Equal(6, state.K);
        Assert.True(state.Enabled);
    }

    [Fact]
    public void Record_HalfAccepted_ProposesTheExpectedRunPlusOne()
    {
        var state = new SpeculationState(8);
        for (var i = 0; i < 30; i++)
        {
            state.Record(2, 1);
        }

        Assert.Equal(0.5, state.Acceptance, 6);
        Assert.Equal(2, state.K); // a / (1 - a) = 1, plus one
        Assert.True(state.Enabled);
    }

    [Fact]
    public void Record_LowAcceptance_TurnsSpeculationOffAfterMinRounds()
    {
        var state = new SpeculationState(4);
        for (var i = 0; i < SpeculationState.MinRounds - 1; i++)
        {
            state.Record(4, 0);
            Assert.True(state.Enabled, $"round {i + 1}");
        }

        Assert.Equal(1, state.K);
        state.Record(1, 0);
        Assert.False(state.Enabled);
    }

    [Fact]
    public async Task GenerateAsync_GreedyWithPromptLookup_EqualsPlainDecodingTokenForToken()
    {
        using var plain = await LoadAsync(null);
        using var speculative = await LoadAsync(new SpeculativeSpec { PromptLookup = true, K = 4 });
        foreach (var prompt in s_prompts)
        {
            var request = new GenerationRequest { Prompt = prompt, MaxTokens = 80 };
            var expected = await CollectAsync(plain, request);
            var actual = await CollectAsync(speculative, request);

            AssertSameOrNearTie(prompt, Tokens(expected), Tokens(actual));
            Assert.Equal(expected[^1].FinishReason, actual[^1].FinishReason);
            Assert.Equal(string.Concat(expected.Select(e => e.Text)), string.Concat(actual.Select(e => e.Text)));
        }

        var counters = speculative.Counters;
        Assert.True(counters.SpeculativeAcceptedTokens > 0, "some proposals were accepted");
        Assert.True(counters.SpeculativeAcceptedTokens < counters.SpeculativeProposedTokens, "some were rejected, so the KV cache was cut back");
        Assert.True(counters.Steps < plain.Counters.Steps, $"fewer model runs: {counters.Steps} vs {plain.Counters.Steps}");
        Assert.Equal(plain.Counters.TokensGenerated, counters.TokensGenerated);
    }

    [Fact]
    public async Task GenerateAsync_SeededSampling_EqualsPlainDecodingTokenForToken()
    {
        using var plain = await LoadAsync(null);
        using var speculative = await LoadAsync(new SpeculativeSpec { PromptLookup = true, K = 3, Ngram = 2 });
        foreach (var seed in new ulong[] { 1, 2, 3, 42 })
        {
            var sampling = new SamplingParameters { Temperature = 0.7f, TopK = 40, TopP = 0.95f, Seed = seed };
            var request = new GenerationRequest { Prompt = s_prompts[3], MaxTokens = 60, Sampling = sampling };

            AssertSameOrNearTie(s_prompts[3], Tokens(await CollectAsync(plain, request)), Tokens(await CollectAsync(speculative, request)));
        }

        Assert.True(speculative.Counters.SpeculativeAcceptedTokens > 0);
    }

    /// <summary>The rejection rule's promise, checked by counting: the token after a proposal is distributed as the
    /// model's softmax, whatever was proposed and however often it is accepted.</summary>
    [Fact]
    public async Task GenerateAsync_Sampling_TokenAfterAProposalFollowsTheModelsDistribution()
    {
        const int runs = 3000;
        var sampling = new SamplingParameters { Temperature = 1f };
        // A prompt whose likeliest next token is likely (so conditioning on it keeps most runs) and after which the model
        // gives some token about a third (proposed there, so acceptance and rejection both happen often).
        var text = TinyTokenizer.Encode(s_prompts[4] + " " + s_prompts[3]);
        int[] prompt = [];
        int first = -1, proposal = -1;
        double[] p = [];
        for (var length = 4; length <= text.Count && proposal < 0; length++)
        {
            prompt = [.. text.Take(length)];
            var p0 = Softmax(LastLogits(prompt));
            first = Array.IndexOf(p0, p0.Max());
            p = Softmax(LastLogits([.. prompt, first]));
            var candidate = Enumerable.Range(0, p.Length).MinBy(t => Math.Abs(p[t] - 0.33));
            if (p0[first] >= 0.4 && p[candidate] is > 0.2 and < 0.5)
            {
                proposal = candidate;
            }
        }

        Assert.True(proposal >= 0, "no prefix of the text fits");
        using var speculative = await LoadAsync(new SpeculativeSpec { PromptLookup = true, K = 1 });
        speculative.Scheduler.Proposer = new FixedProposer(proposal);
        var counts = new int[Tiny.VocabularySize];
        var n = 0;
        for (var seed = 0; seed < runs; seed++)
        {
            // Three tokens, so the step after the first verifies one proposal (and emits two tokens).
            var tokens = Tokens(await CollectAsync(speculative, new GenerationRequest { PromptTokenIds = prompt, MaxTokens = 3, Sampling = sampling with { Seed = (ulong)seed } }));
            if (tokens[0] == first)
            {
                counts[tokens[1]]++;
                n++;
            }
        }

        Assert.True(n >= 300, $"only {n} runs began with token {first}");
        Assert.InRange(p[proposal], 0.2, 0.5);
        // Every token the model gives at least 2 %, the proposal included, within 4.5 standard deviations.
        foreach (var token in Enumerable.Range(0, p.Length).Where(t => p[t] >= 0.02).Append(proposal).Distinct())
        {
            var sigma = Math.Sqrt(p[token] * (1 - p[token]) / n);
            var observed = (double)counts[token] / n;
            Assert.True(Math.Abs(observed - p[token]) <= 4.5 * sigma,
                $"token {token}{(token == proposal ? " (proposed)" : "")}: observed {observed:F4}, model {p[token]:F4}, n {n}");
        }

        var counters = speculative.Counters;
        Assert.Equal(runs, counters.SpeculativeProposedTokens);
        Assert.InRange(counters.SpeculativeAcceptedTokens, 1, runs - 1);
    }

    [Fact]
    public async Task GenerateAsync_SpeculatingSequenceJoinedByOthers_KeepsItsTokens()
    {
        var request = new GenerationRequest { Prompt = s_prompts[3], MaxTokens = 120 };
        int[] expected;
        using (var plain = await LoadAsync(null))
        {
            expected = Tokens(await CollectAsync(plain, request));
        }

        using var speculative = await LoadAsync(new SpeculativeSpec { PromptLookup = true, K = 4 });
        var events = new List<GeneratedToken>();
        var others = new List<Task<List<GeneratedToken>>>();
        await foreach (var token in speculative.GenerateAsync(request, null, CancellationToken.None))
        {
            events.Add(token);
            if (events.Count is 10 or 40)
            {
                // Others join mid-generation and leave before it ends; it speculates alone before and after.
                others.AddRange(s_prompts.Take(3).Select(p => Task.Run(() => CollectAsync(speculative, new GenerationRequest { Prompt = p, MaxTokens = 12 }))));
            }
        }

        await Task.WhenAll(others);
        AssertSameOrNearTie(request.Prompt!, expected, Tokens(events));
        Assert.True(speculative.Counters.PeakRunningSequences > 1, "the others ran in the same batch");
        Assert.True(speculative.Counters.SpeculativeProposedTokens > 0);
    }

    [Fact]
    public async Task GenerateAsync_GreedyWithDraftModel_EqualsPlainDecodingTokenForToken()
    {
        using var plain = await LoadAsync(null);
        using var speculative = await LoadWithDraftAsync(DecoderLmModel.TinyLmDraft, k: 4);
        foreach (var prompt in s_prompts)
        {
            var request = new GenerationRequest { Prompt = prompt, MaxTokens = 60 };

            AssertSameOrNearTie(prompt, Tokens(await CollectAsync(plain, request)), Tokens(await CollectAsync(speculative, request)));
        }

        var counters = speculative.Counters;
        Assert.True(counters.SpeculativeAcceptedTokens > 0, "the draft (the target's first block) agrees sometimes");
        Assert.True(counters.SpeculativeAcceptedTokens < counters.SpeculativeProposedTokens, "and not always");
    }

    [Fact]
    public async Task GenerateAsync_TargetAsItsOwnDraft_AcceptsEveryProposal()
    {
        var self = DecoderLmModel.TinyLm with { Name = "tiny-lm-self" };
        using var plain = await LoadAsync(null);
        using var speculative = await LoadWithDraftAsync(self, k: 5);
        var request = new GenerationRequest { Prompt = s_prompts[1], MaxTokens = 61 };

        var expected = Tokens(await CollectAsync(plain, request));
        var actual = Tokens(await CollectAsync(speculative, request));

        AssertSameOrNearTie(s_prompts[1], expected, actual);
        var counters = speculative.Counters;
        // Only near-ties between a lone step and a wider pass can make the draft and the target differ.
        Assert.True(counters.SpeculativeAcceptedTokens >= counters.SpeculativeProposedTokens - 2, $"{counters.SpeculativeAcceptedTokens} of {counters.SpeculativeProposedTokens}");
        // 1 prefill + about 60 / (5 + 1) verifications, against 1 prefill + 60 decode steps.
        Assert.InRange(counters.Steps, 2, 15);
    }

    [Fact]
    public async Task GenerateAsync_FailedStep_FailsTheSequenceAndTheNextGenerationStartsAfresh()
    {
        using var model = await LoadAsync(new SpeculativeSpec { PromptLookup = true, K = 2 });
        var request = new GenerationRequest { Prompt = s_prompts[3], MaxTokens = 30 };
        var expected = Tokens(await CollectAsync(model, request));
        var proposer = model.Scheduler.Proposer;

        // A proposal outside the vocabulary makes ONNX Runtime fail the bound verification step (Gather's index check).
        model.Scheduler.Proposer = new FixedProposer(Tiny.VocabularySize + 7);
        var e = await Assert.ThrowsAsync<InferenceException>(() => CollectAsync(model, request with { Prompt = s_prompts[1] }));
        model.Scheduler.Proposer = proposer;

        Assert.Equal(InferenceError.ModelFailure, e.Error);
        Assert.Contains("failed a generation step", e.Message);
        Assert.True(SpinWait.SpinUntil(() => model.Counters.KvBytesInUse == 0 && model.Counters.KvBytesReserved == 0 && model.Counters.RunningSequences == 0, 10_000));
        Assert.Equal(expected, Tokens(await CollectAsync(model, request)));
    }

    [Fact]
    public async Task LoadAsync_DraftNotInTheStore_FailsNamingTheField()
    {
        var manifest = DecoderLmModel.SpeculativeManifest(Tiny, DecoderLmModel.TinyLmDraft);
        var engine = Engine(new DraftFiles());

        var e = await Assert.ThrowsAsync<InferenceException>(async () => await engine.LoadAsync(manifest, TinyPath, CancellationToken.None));

        Assert.Equal(InferenceError.ModelFailure, e.Error);
        Assert.Contains("generation.speculative.draft names 'tiny-lm-draft', which is not in the model store", e.Message);
    }

    [Fact]
    public async Task LoadAsync_DraftWithAnotherVocabulary_FailsNamingTheField()
    {
        var other = DecoderLmModel.TinyLm with { Name = "other-vocab", VocabularySize = 320 };
        var manifest = DecoderLmModel.SpeculativeManifest(Tiny, other);
        var engine = Engine(new DraftFiles(other));

        var e = await Assert.ThrowsAsync<InferenceException>(async () => await engine.LoadAsync(manifest, TinyPath, CancellationToken.None));

        Assert.Contains("generation.speculative.draft 'other-vocab' has a vocabulary of 320, not the target's 384", e.Message);
    }

    [Fact]
    public async Task LoadAsync_WithADraft_ReservesOneSequenceOfDraftKvFromTheBudget()
    {
        const long budget = 1L << 20;
        var engine = Engine(new DraftFiles(DecoderLmModel.TinyLmDraft), new TextGenerationOptions { KvCacheBudgetBytes = budget });
        var manifest = DecoderLmModel.SpeculativeManifest(Tiny, DecoderLmModel.TinyLmDraft);

        using var model = Assert.IsType<OnnxTextGenerationModel>(await engine.LoadAsync(manifest, TinyPath, CancellationToken.None));

        // tiny-lm-draft: 1 block of 2 heads × 16, key and value in FP32 = 256 bytes a token, for the target's 256 tokens.
        var draftKv = 2L * 1 * 32 * sizeof(float) * Tiny.ContextLength;
        Assert.Equal(budget - draftKv, model.Counters.KvBytesBudget);
    }

    [Fact]
    public async Task LoadAsync_DraftKvAboveTheBudget_FailsNamingTheSetting()
    {
        var engine = Engine(new DraftFiles(DecoderLmModel.TinyLmDraft), new TextGenerationOptions { KvCacheBudgetBytes = 64 * 1024 });
        var manifest = DecoderLmModel.SpeculativeManifest(Tiny, DecoderLmModel.TinyLmDraft);

        var e = await Assert.ThrowsAsync<InferenceException>(async () => await engine.LoadAsync(manifest, TinyPath, CancellationToken.None));

        Assert.Equal(InferenceError.ModelFailure, e.Error);
        Assert.Contains("needs 65536 bytes of KV cache for one sequence of 256 tokens", e.Message);
        Assert.Contains("Inference:Generation:KvCacheBudgetBytes (65536)", e.Message);
    }

    [Fact]
    public void Build_Draft_KeepsTheTargetsFirstBlocksEmbeddingsAndHead()
    {
        var target = global::Onnx.ModelProto.Parser.ParseFrom(TinyBytes).Graph.Initializer.ToDictionary(t => t.Name);
        var draft = global::Onnx.ModelProto.Parser.ParseFrom(DecoderLmModel.Build(DecoderLmModel.TinyLmDraft)).Graph;

        Assert.Contains(draft.Initializer, t => t.Name == "l0.wq");
        Assert.DoesNotContain(draft.Initializer, t => t.Name.StartsWith("l1.", StringComparison.Ordinal));
        Assert.All(draft.Initializer, t => Assert.Equal(target[t.Name], t));
        Assert.Equal(3 + 2, draft.Input.Count); // ids, mask, positions, and one block's past key and value
    }

    private sealed class FixedProposer(int token) : ITokenProposer
    {
        public int Propose(Sequence sequence, Span<int> proposals)
        {
            proposals[0] = token;
            return 1;
        }

        public void Dispose()
        {
        }
    }

    private sealed class DraftFiles(params DecoderLmConfig[] drafts) : IDraftModelSource
    {
        public ValueTask<(ModelManifest Manifest, string WeightsPath)?> FindAsync(string name, CancellationToken cancellationToken)
        {
            var config = drafts.FirstOrDefault(d => d.Name == name);
            if (config is null)
            {
                return ValueTask.FromResult<(ModelManifest, string)?>(null);
            }

            var path = Path.Combine(Path.GetTempPath(), $"si-{name}-{Environment.ProcessId}.onnx");
            if (!File.Exists(path))
            {
                File.WriteAllBytes(path, DecoderLmModel.Build(config));
            }

            return ValueTask.FromResult<(ModelManifest, string)?>((DecoderLmModel.Manifest(config), path));
        }
    }

    private static OnnxInferenceEngine Engine(IDraftModelSource? drafts = null, TextGenerationOptions? options = null)
    {
        _ = TestModels.Engine;
        return new OnnxInferenceEngine(
            Options.Create(new OnnxEngineOptions { ExecutionProvider = OnnxExecutionProvider.Cpu }),
            NullLogger<OnnxInferenceEngine>.Instance,
            Options.Create(options ?? new TextGenerationOptions()),
            draftModels: drafts);
    }

    private static async Task<OnnxTextGenerationModel> LoadWithDraftAsync(DecoderLmConfig draft, int k)
    {
        var engine = Engine(new DraftFiles(draft));
        var manifest = DecoderLmModel.SpeculativeManifest(Tiny, draft, k);
        return Assert.IsType<OnnxTextGenerationModel>(await engine.LoadAsync(manifest, TinyPath, CancellationToken.None));
    }

    private static async Task<OnnxTextGenerationModel> LoadAsync(SpeculativeSpec? speculative)
    {
        var manifest = DecoderLmModel.Manifest(Tiny);
        manifest = manifest with { Generation = manifest.Generation! with { Speculative = speculative } };
        return Assert.IsType<OnnxTextGenerationModel>(await Engine().LoadAsync(manifest, TinyPath, CancellationToken.None));
    }

    private static double[] LastLogits(IReadOnlyList<int> context)
    {
        var reference = new ReferenceDecoder(TinyBytes, Tiny);
        var (logits, _) = reference.Forward([.. context.Select(t => (long)t)], [.. context.Select(_ => 1L)], [.. Enumerable.Range(0, context.Count).Select(i => (long)i)],
            [.. Enumerable.Range(0, 2 * Tiny.Layers).Select(_ => Array.Empty<float>())], 1, context.Count, 0);
        return logits.AsSpan((context.Count - 1) * Tiny.VocabularySize, Tiny.VocabularySize).ToArray();
    }

    private static double[] Softmax(double[] logits)
    {
        var max = logits.Max();
        var e = logits.Select(l => Math.Exp(l - max)).ToArray();
        var sum = e.Sum();
        return [.. e.Select(x => x / sum)];
    }

    private static void AssertSameOrNearTie(string prompt, int[] expected, int[] actual)
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
        var last = LastLogits([.. TinyTokenizer.Encode(prompt), .. expected.Take(common)]).OrderDescending().ToArray();
        Assert.True(last[0] - last[1] < NearTie, $"tokens differ at {common} where the top-1/top-2 margin is {last[0] - last[1]}, not a near-tie");
    }
}
