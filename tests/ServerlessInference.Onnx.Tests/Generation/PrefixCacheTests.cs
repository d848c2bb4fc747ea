using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Generation;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;
using static ServerlessInference.Onnx.Tests.Generation.LmTestModels;

namespace ServerlessInference.Onnx.Tests.Generation;

/// <summary>Prefix caching on tiny-lm: the prefill from cached blocks against the full prefill (logits), and the engine
/// with the cache against the engine without it (tokens).</summary>
public sealed class PrefixCacheTests : IDisposable
{
    /// <summary>The engine tests' tolerance (<see cref="DecoderLmModelTests"/>): relative to max(1, |logit|).</summary>
    private const double Tolerance = 1e-4;

    private const int Block = 4;

    private readonly DecoderSession _decoder = DecoderSession.Create(new InferenceSession(TinyPath), DecoderLmModel.Manifest(Tiny).Generation!, "tiny-lm/1");

    public void Dispose() => _decoder.Dispose();

    [Fact]
    public void Run_PrefixEndingMidBlock_ReusesTheWholeBlocksAndMatchesTheFullPrefill()
    {
        var cache = NewCache();
        List<int> first = [5, 77, 300, 12, 9, 200, 41, 3, 88, 19];
        Cache(cache, first);
        // Shares 6 tokens: one whole block and half of the second.
        List<int> second = [5, 77, 300, 12, 9, 200, 250, 8, 19, 33, 101, 7, 64];

        var chain = cache.Match(second);
        var (logits, presents, cached) = Prefill(second, cache, chain);
        var (full, fullPresents, _) = Prefill(second, null, null);

        Assert.Single(chain);
        Assert.Equal(Block, cached);
        Assert.Equal((second.Count - Block) * Tiny.VocabularySize, logits.Length);
        AssertClose(full.AsSpan(Block * Tiny.VocabularySize), logits);
        for (var j = 0; j < presents.Length; j++)
        {
            AssertClose(Array.ConvertAll(fullPresents[j], f => (double)f), Array.ConvertAll(presents[j], f => (double)f));
        }
    }

    [Fact]
    public void Run_PromptFullyCached_RunsItsLastTokenForTheLogits()
    {
        var cache = NewCache();
        List<int> prompt = [5, 77, 300, 12, 9, 200, 41, 3, 88, 19, 250, 8];
        Cache(cache, prompt);

        var chain = cache.Match(prompt);
        var (logits, _, cached) = Prefill(prompt, cache, chain);
        var (full, _, _) = Prefill(prompt, null, null);

        Assert.Equal(3, chain.Count);
        Assert.Equal(prompt.Count - 1, cached);
        Assert.Equal(Tiny.VocabularySize, logits.Length);
        AssertClose(full.AsSpan((prompt.Count - 1) * Tiny.VocabularySize), logits);
    }

    [Fact]
    public void Match_ATokenDiffersInABlock_StopsBeforeIt()
    {
        var cache = NewCache();
        List<int> prompt = [5, 77, 300, 12, 9, 200, 41, 3, 88, 19, 250, 8];
        Cache(cache, prompt);

        Assert.Equal(2, cache.Match([5, 77, 300, 12, 9, 200, 41, 3, 88, 19, 250, 9]).Count);
        Assert.Empty(cache.Match([6, 77, 300, 12, 9, 200, 41, 3]));
        Assert.Empty(cache.Match([5, 77, 300])); // shorter than a block
    }

    [Fact]
    public void MakeRoom_EvictsLeastRecentlyUsedUnheldBlocks_DeepestFirst_NeverHeldOnes()
    {
        var counters = new GenerationCounters();
        var cache = NewCache(counters);
        List<int> older = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        List<int> newer = [21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32];
        List<int> held = [41, 42, 43, 44, 45, 46, 47, 48];
        Cache(cache, older);
        Cache(cache, newer);
        var holding = Cache(cache, held, release: false);
        Assert.Equal(8, cache.Count);

        // Room for two more blocks' worth: the two deepest blocks of the least recently used chain go.
        Assert.True(cache.MakeRoom(2 * cache.BlockBytes, 8 * cache.BlockBytes));

        Assert.Single(cache.Match(older));
        Assert.Equal(3, cache.Match(newer).Count);
        Assert.Equal(2, counters.PrefixCacheEvictions);

        // Nothing left to evict but held blocks: it cannot fit, and the held chain stays whole.
        Assert.False(cache.MakeRoom(7 * cache.BlockBytes, 8 * cache.BlockBytes));
        Assert.Equal(2, cache.Count);
        Assert.Equal(2, cache.Match(held).Count);

        cache.Release(holding);
        Assert.True(cache.MakeRoom(8 * cache.BlockBytes, 8 * cache.BlockBytes));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void Release_BlocksSharedByTwoSequences_StayHeldUntilBothEnd()
    {
        var cache = NewCache();
        List<int> prompt = [5, 77, 300, 12, 9, 200, 41, 3];
        var first = Cache(cache, prompt, release: false);
        var second = cache.Match(prompt);
        cache.Hold(second);

        cache.Release(first);
        Assert.False(cache.MakeRoom(cache.BlockBytes, 2 * cache.BlockBytes));
        Assert.Equal(2, cache.Count);

        cache.Release(second);
        Assert.True(cache.MakeRoom(cache.BlockBytes, 2 * cache.BlockBytes));
        Assert.Single(cache.Match(prompt));
    }

    [Fact]
    public async Task GenerateAsync_SharedPrefix_HitsTheCacheAndMakesTheSameTokens()
    {
        var shared = Enumerable.Range(0, 40).Select(i => 40 + (i * 7 % 300)).ToArray();
        var prompts = new[] { 11, 12, 13 }.Select(s => (int[])[.. shared, s, s + 1, s + 2]).ToArray();
        var expected = await RunAloneAsync(prompts, 24);
        using var model = await LoadTinyAsync(prefixCacheBlockTokens: Block);

        var actual = new List<int[]>();
        foreach (var prompt in prompts)
        {
            actual.Add(Tokens(await CollectAsync(model, new GenerationRequest { PromptTokenIds = prompt, MaxTokens = 24 })));
        }

        for (var i = 0; i < prompts.Length; i++)
        {
            TextGenerationModelTests.AssertSameOrNearTie(prompts[i], expected[i], actual[i]);
        }

        // The first prompt misses; the other two find the 40 shared tokens (ten whole blocks).
        Assert.Equal(prompts.Sum(p => p.Length), model.Counters.PrefixCacheLookupTokens);
        Assert.Equal(2 * 40, model.Counters.PrefixCacheHitTokens);
        Assert.Equal(prompts.Sum(p => p.Length) - 80, model.Counters.PromptTokens);
        Assert.Equal(10, model.Counters.PrefixCacheBlocks); // 43 tokens: ten whole blocks, all shared
    }

    [Fact]
    public async Task GenerateAsync_TwoSequencesSharingBlocksAtOnce_MakeTheTokensOfLoneRuns()
    {
        var shared = Enumerable.Range(0, 36).Select(i => 30 + (i * 11 % 320)).ToArray();
        int[][] prompts = [[.. shared, 5, 6], [.. shared, 9], [.. shared, 70, 71, 72, 73, 74]];
        var expected = await RunAloneAsync(prompts, 30);
        using var model = await LoadTinyAsync(prefixCacheBlockTokens: Block);
        await CollectAsync(model, new GenerationRequest { PromptTokenIds = shared, MaxTokens = 1 }); // caches the shared blocks

        // All three run in one batch, each holding the same cached blocks.
        var runs = await Task.WhenAll(prompts.Select(p => CollectAsync(model, new GenerationRequest { PromptTokenIds = p, MaxTokens = 30 })));

        for (var i = 0; i < prompts.Length; i++)
        {
            TextGenerationModelTests.AssertSameOrNearTie(prompts[i], expected[i], Tokens(runs[i]));
        }

        Assert.Equal(3 * 36, model.Counters.PrefixCacheHitTokens);
        Assert.True(model.Counters.PeakRunningSequences >= 2, $"peak {model.Counters.PeakRunningSequences}");
    }

    [Fact]
    public async Task GenerateAsync_PromptFullyCached_MakesTheSameTokens()
    {
        var prompt = Enumerable.Range(0, 32).Select(i => 50 + (i * 13 % 300)).ToArray();
        var expected = (await RunAloneAsync([prompt], 20))[0];
        using var model = await LoadTinyAsync(prefixCacheBlockTokens: Block);
        var request = new GenerationRequest { PromptTokenIds = prompt, MaxTokens = 20 };

        var first = Tokens(await CollectAsync(model, request));
        var again = Tokens(await CollectAsync(model, request));

        TextGenerationModelTests.AssertSameOrNearTie(prompt, expected, first);
        TextGenerationModelTests.AssertSameOrNearTie(prompt, expected, again);
        Assert.Equal(31, model.Counters.PrefixCacheHitTokens);
        Assert.Equal(32 + 1, model.Counters.PromptTokens);
    }

    [Fact]
    public async Task GenerateAsync_BudgetPressure_EvictsUnheldBlocksAndStaysWithinTheBudget()
    {
        const int promptLength = 40, maxTokens = 8;
        var perToken = 2L * Tiny.Layers * Tiny.Hidden * sizeof(float);
        var blockBytes = perToken * Block;
        // One sequence's reservation and four blocks: each prompt keeps four blocks, evicting the previous prompt's.
        var budget = (perToken * (promptLength + maxTokens)) + (4 * blockBytes);
        int[][] prompts = [.. new[] { 0, 1, 2 }.Select(k => Enumerable.Range(0, promptLength).Select(i => 20 + ((i * 17) + (k * 101)) % 340).ToArray())];
        var expected = await RunAloneAsync(prompts, maxTokens);
        using var model = await LoadTinyAsync(kvCacheBudgetBytes: budget, prefixCacheBlockTokens: Block);

        for (var i = 0; i < prompts.Length; i++)
        {
            var tokens = Tokens(await CollectAsync(model, new GenerationRequest { PromptTokenIds = prompts[i], MaxTokens = maxTokens }));
            TextGenerationModelTests.AssertSameOrNearTie(prompts[i], expected[i], tokens);
            Assert.True(model.Counters.PrefixCacheBlocks * blockBytes <= budget);
        }

        Assert.Equal(8, model.Counters.PrefixCacheEvictions);
        Assert.Equal(0, model.Counters.PrefixCacheHitTokens);

        // The last prompt's blocks are the ones left: it hits them.
        await CollectAsync(model, new GenerationRequest { PromptTokenIds = prompts[^1], MaxTokens = maxTokens });
        Assert.Equal(4 * Block, model.Counters.PrefixCacheHitTokens);
    }

    [Fact]
    public async Task GenerateAsync_Off_NeitherLooksUpNorKeepsBlocks()
    {
        using var model = await LoadTinyAsync(prefixCaching: false, prefixCacheBlockTokens: Block);
        var prompt = Enumerable.Range(0, 24).Select(i => 60 + i).ToArray();

        await CollectAsync(model, new GenerationRequest { PromptTokenIds = prompt, MaxTokens = 4 });
        await CollectAsync(model, new GenerationRequest { PromptTokenIds = prompt, MaxTokens = 4 });

        Assert.Equal(0, model.Counters.PrefixCacheLookupTokens);
        Assert.Equal(0, model.Counters.PrefixCacheBlocks);
        Assert.Equal(48, model.Counters.PromptTokens);
        Assert.Empty(model.HeldPrefixKeys);
    }

    [Fact]
    public async Task HeldPrefixKeys_LongTextPrompt_NamesItsPromptPrefixKeyUntilEvicted()
    {
        var prompt = string.Concat(Enumerable.Repeat("thou shai bazou tichou stai chou, ", 8));
        var key = PromptPrefix.Key(prompt);
        Assert.NotNull(key);
        var length = TinyTokenizer.Encode(prompt).Count;
        var perToken = 2L * Tiny.Layers * Tiny.Hidden * sizeof(float);
        Assert.InRange(length, 40, 200);
        using var model = await LoadTinyAsync(kvCacheBudgetBytes: perToken * ((2 * length) + 16), prefixCacheBlockTokens: Block);

        await CollectAsync(model, new GenerationRequest { Prompt = "short", MaxTokens = 2 });
        Assert.Empty(model.HeldPrefixKeys);
        await CollectAsync(model, new GenerationRequest { Prompt = prompt, MaxTokens = 2 });
        Assert.Equal([key], model.HeldPrefixKeys);

        // Another long prompt needs the room: the first one's blocks go, and its key with them.
        var other = Enumerable.Range(0, length + 4).Select(i => 30 + (i * 7 % 300)).ToArray();
        await CollectAsync(model, new GenerationRequest { PromptTokenIds = other, MaxTokens = 16 });
        Assert.Empty(model.HeldPrefixKeys);
    }

    /// <summary>Greedy tokens of each prompt run alone, without the prefix cache.</summary>
    private static async Task<List<int[]>> RunAloneAsync(IEnumerable<int[]> prompts, int maxTokens)
    {
        using var model = await LoadTinyAsync(maxConcurrentSequences: 1, prefixCaching: false);
        var results = new List<int[]>();
        foreach (var prompt in prompts)
        {
            results.Add(Tokens(await CollectAsync(model, new GenerationRequest { PromptTokenIds = prompt, MaxTokens = maxTokens })));
        }

        return results;
    }

    private PrefixCache NewCache(GenerationCounters? counters = null) => new(Block, _decoder, counters ?? new GenerationCounters());

    /// <summary>Prefills <paramref name="tokens"/> from what the cache holds and caches their whole blocks; the chain
    /// is released unless <paramref name="release"/> is false (a running sequence).</summary>
    private List<PrefixBlock> Cache(PrefixCache cache, List<int> tokens, bool release = true)
    {
        var chain = cache.Match(tokens);
        cache.Hold(chain);
        using (var outputs = PrefixPrefill.Run(_decoder, tokens, cache, chain, out _))
        {
            cache.Insert(tokens, [.. outputs.Skip(1)], chain, null, 0, long.MaxValue);
        }

        if (release)
        {
            cache.Release(chain);
        }

        return chain;
    }

    private (double[] Logits, float[][] Presents, int Cached) Prefill(List<int> tokens, PrefixCache? cache, List<PrefixBlock>? chain)
    {
        using var outputs = PrefixPrefill.Run(_decoder, tokens, cache, chain, out var cached);
        return (Array.ConvertAll(outputs[0].GetTensorDataAsSpan<float>().ToArray(), f => (double)f),
            [.. outputs.Skip(1).Select(o => o.GetTensorDataAsSpan<float>().ToArray())], cached);
    }

    private static void AssertClose(ReadOnlySpan<double> expected, double[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        var worst = 0.0;
        for (var i = 0; i < expected.Length; i++)
        {
            worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]) / Math.Max(1, Math.Abs(expected[i])));
        }

        Assert.True(worst <= Tolerance, $"largest relative difference {worst}");
    }
}
