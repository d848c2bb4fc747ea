using System.Diagnostics;
using System.Globalization;
using System.Text;
using ServerlessInference.Generation;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;

namespace ServerlessInference.Bench;

/// <summary>The shared-prefix workload (issue 14): closed-loop clients on <c>lm-bench</c> whose prompts all start with
/// the same 512-token system prompt and end with a short distinct suffix, against the engine with prefix caching and
/// the same engine without it, in interleaved slices. Reports time to first token p50 (cached / uncached, bar ≤ 0.3)
/// and tokens/s, with the cache's hit rate from its own counters.</summary>
/// <remarks><c>dotnet run -c Release --project bench/ServerlessInference.Bench -- prefix-cache [--seconds 8]
/// [--rounds 3] [--clients 32] [--block-tokens 16]</c>. The engine runs in this process (no HTTP, no queue), as in
/// <c>generation-engine</c>: what differs between the sides is the cache alone.</remarks>
internal static class PrefixCacheBench
{
    public const string Command = "prefix-cache";
    public const int SystemPromptTokens = 512;
    public const int Seed = 20261214;
    public const double TtftBar = 0.3;

    public static async Task<int> RunAsync(string[] args)
    {
        var seconds = 8.0;
        var rounds = 3;
        var clients = 32;
        var blockTokens = 16;
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--seconds": seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--rounds": rounds = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--clients": clients = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--block-tokens": blockTokens = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }

        var config = DecoderLmModel.LmBench;
        var path = Path.Combine(Path.GetTempPath(), $"si-lm-bench-prefix-{Environment.ProcessId}.onnx");
        await File.WriteAllBytesAsync(path, DecoderLmModel.Build(config)).ConfigureAwait(false);
        Console.WriteLine($"prefix cache bench, {DateTimeOffset.Now:yyyy-MM-dd HH:mm zzz}, {Environment.ProcessorCount} cores");
        try
        {
            using var cached = await LoadAsync(path, config, clients, prefixCaching: true, blockTokens).ConfigureAwait(false);
            using var uncached = await LoadAsync(path, config, clients, prefixCaching: false, blockTokens).ConfigureAwait(false);
            var (mix, shared) = Create(cached.Tokenizer);
            Console.WriteLine($"lm-bench: V{config.VocabularySize} D{config.Hidden} L{config.Layers} H{config.Heads}; {clients} closed-loop clients; "
                + $"{mix.Prompts.Count} prompts: a common system prompt of {SystemPromptTokens} tokens ({shared} leading tokens shared by every prompt) "
                + $"+ distinct suffixes of {mix.Prompts.Min(p => p.PromptTokens) - SystemPromptTokens}-{mix.Prompts.Max(p => p.PromptTokens) - SystemPromptTokens} tokens, "
                + $"max_tokens {mix.Prompts.Min(p => p.MaxTokens)}-{mix.Prompts.Max(p => p.MaxTokens)}, greedy; block {blockTokens} tokens; "
                + $"{rounds} rounds of {seconds:0.#} s per side (+2 s unmeasured each); "
                + $"\"no cache\" is the same engine with {TextGenerationOptions.Section}:{nameof(TextGenerationOptions.PrefixCaching)}=false");

            var results = new Dictionary<string, List<GenerationSlice>> { ["cache"] = [], ["no cache"] = [] };
            for (var round = 0; round < rounds; round++)
            {
                foreach (var (name, model) in round % 2 == 0 ? [("cache", cached), ("no cache", uncached)] : new[] { ("no cache", uncached), ("cache", cached) })
                {
                    var slice = await GenerationLoad.RunAsync(new EngineTarget(model), mix, clients, 3 * round, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(seconds)).ConfigureAwait(false);
                    results[name].Add(slice);
                    var t = slice.TimesToFirstTokenMs.Order().ToArray();
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  round {round + 1} {name,-8} {slice.Tokens / slice.Seconds,8:0} tokens/s  TTFT p50 {GenerationLoad.Percentile(t, 0.5),7:0.0} ms  errors {slice.Errors}"));
                }
            }

            double Rate(string name) => results[name].Sum(s => s.Tokens) / results[name].Sum(s => s.Seconds);
            double[] Ttft(string name) => [.. results[name].SelectMany(s => s.TimesToFirstTokenMs).Order()];
            var counters = cached.Counters;
            var hitRate = counters.PrefixCacheLookupTokens > 0 ? (double)counters.PrefixCacheHitTokens / counters.PrefixCacheLookupTokens : 0;
            Console.WriteLine();
            Console.WriteLine("| side | tokens/s | TTFT p50 ms | TTFT p99 ms | TTFTs | prompt tokens prefilled |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|");
            foreach (var (name, model) in new[] { ("cache", cached), ("no cache", uncached) })
            {
                var t = Ttft(name);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {name} | {Rate(name):0.0} | {GenerationLoad.Percentile(t, 0.5):0.0} | {GenerationLoad.Percentile(t, 0.99):0.0} | {t.Length} | {model.Counters.PromptTokens} |"));
            }

            var ttftRatio = GenerationLoad.Percentile(Ttft("cache"), 0.5) / GenerationLoad.Percentile(Ttft("no cache"), 0.5);
            var rateRatio = Rate("cache") / Rate("no cache");
            var errors = results.Values.SelectMany(r => r).Sum(s => s.Errors);
            var valid = errors == 0 && Ttft("cache").Length > 0 && Ttft("no cache").Length > 0;
            Console.WriteLine();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"cache hit rate {hitRate:P1} of prompt tokens ({counters.PrefixCacheHitTokens} / {counters.PrefixCacheLookupTokens}); {counters.PrefixCacheBlocks} blocks cached at the end, {counters.PrefixCacheEvictions} evicted"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"TTFT p50 cache / no cache: {ttftRatio:0.000} (bar <= {TtftBar}: {(ttftRatio <= TtftBar && valid ? "pass" : "FAIL")})"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"tokens/s cache / no cache: {rateRatio:0.00} (reported)"));
            if (errors > 0)
            {
                Console.WriteLine($"INVALID: {errors} errors, e.g. {string.Join(" | ", results.Values.SelectMany(r => r).SelectMany(s => s.ErrorSamples).Take(3))}");
            }

            if (Ttft("cache").Length == 0 || Ttft("no cache").Length == 0)
            {
                Console.WriteLine("INVALID: a side saw no first token of a request sent inside its measured window; raise --seconds");
            }

            return ttftRatio <= TtftBar && valid ? 0 : 1;
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>The workload: one system prompt of <see cref="SystemPromptTokens"/> tokens, then 256 distinct short
    /// suffixes (a user turn of 8–32 tokens), <c>max_tokens</c> 16–48. Returns it with the number of leading tokens that
    /// every prompt shares (the system prompt's, unless a suffix merges with its last word).</summary>
    public static (GenerationMix Mix, int SharedTokens) Create(ITextTokenizer tokenizer)
    {
        var random = new Random(Seed);
        var system = new StringBuilder("system:");
        var tokens = tokenizer.Encode(system.ToString()).Count;
        for (var attempts = 0; tokens < SystemPromptTokens && attempts < 100_000; attempts++)
        {
            // Words split at their leading space, so a text's token count is the sum of its words'.
            var word = Word(random);
            var count = tokenizer.Encode(word).Count;
            if (tokens + count <= SystemPromptTokens)
            {
                system.Append(word);
                tokens += count;
            }
        }

        var systemPrompt = system.ToString();
        var systemTokens = tokenizer.Encode(systemPrompt);
        var prompts = new List<GenerationPrompt>(GenerationMix.Count);
        var shared = systemTokens.Count;
        for (var i = 0; i < GenerationMix.Count; i++)
        {
            var suffix = new StringBuilder("\nuser:");
            var target = random.Next(8, 33);
            while (tokenizer.Encode(suffix.ToString()).Count < target)
            {
                suffix.Append(Word(random));
            }

            var text = systemPrompt + suffix;
            var encoded = tokenizer.Encode(text);
            var common = 0;
            while (common < systemTokens.Count && encoded[common] == systemTokens[common])
            {
                common++;
            }

            shared = Math.Min(shared, common);
            var maxTokens = random.Next(16, 49);
            prompts.Add(new GenerationPrompt(i, text, encoded.Count, maxTokens, GenerationMix.Body(text, maxTokens)));
        }

        return (new GenerationMix(prompts), shared);
    }

    private static readonly string[] s_onsets = ["b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "th", "sh", "ch", "st", "tr"];
    private static readonly string[] s_vowels = ["a", "e", "i", "o", "u", "ai", "ou"];

    private static string Word(Random random)
    {
        var word = new StringBuilder(" ");
        for (var s = random.Next(1, 4); s > 0; s--)
        {
            word.Append(s_onsets[random.Next(s_onsets.Length)]).Append(s_vowels[random.Next(s_vowels.Length)]);
        }

        return word.ToString();
    }

    private static Task<OnnxTextGenerationModel> LoadAsync(string path, DecoderLmConfig config, int maxConcurrent, bool prefixCaching, int blockTokens) =>
        EngineModels.LoadAsync(DecoderLmModel.Manifest(config), path, new TextGenerationOptions
        {
            MaxConcurrentSequences = maxConcurrent,
            KvCacheBudgetBytes = EngineModels.KvBudget,
            PrefixCaching = prefixCaching,
            PrefixCacheBlockTokens = blockTokens,
        });
}
