using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Generation;
using ServerlessInference.Models;
using ServerlessInference.Onnx;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;

namespace ServerlessInference.Bench;

/// <summary>Speculative decoding on <c>lm-bench</c>, engine in process, one stream: tokens/s with and without it, in
/// interleaved rounds, for the draft model <c>lm-bench-draft</c> (varied prompts) and for prompt lookup on a copy-heavy
/// workload (each prompt holds the model's own answer to its question, then asks again, so the answer repeats spans of
/// the prompt). Greedy, so every side makes the same tokens; acceptance rates from the engine's counters.</summary>
/// <remarks><c>dotnet run -c Release --project bench/ServerlessInference.Bench -- speculative [--rounds 3]
/// [--max-tokens 128] [--k 4]</c>.</remarks>
internal static class SpeculativeBench
{
    public const string Command = "speculative";

    private static readonly string[] s_questions =
    [
        "user: thou shai bazou tichou stai chou, tha wou ke?\nassistant:",
        "user: mi sa tou ra chai sta shou trai bizou na lou\nassistant:",
        "user: ke lou mi sa tou ra, chai sta shou trai bizou\nassistant:",
        "user: bazou tichou stai chou tha wou ke mi sa\nassistant:",
    ];

    public static async Task<int> RunAsync(string[] args)
    {
        var rounds = 3;
        var maxTokens = 128;
        var k = 4;
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--rounds": rounds = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--max-tokens": maxTokens = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--k": k = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }

        var target = DecoderLmModel.LmBench;
        var draft = DecoderLmModel.LmBenchDraft;
        var targetPath = Path.Combine(Path.GetTempPath(), $"si-lm-bench-{Environment.ProcessId}.onnx");
        var draftPath = Path.Combine(Path.GetTempPath(), $"si-lm-bench-draft-{Environment.ProcessId}.onnx");
        await File.WriteAllBytesAsync(targetPath, DecoderLmModel.Build(target)).ConfigureAwait(false);
        await File.WriteAllBytesAsync(draftPath, DecoderLmModel.Build(draft)).ConfigureAwait(false);
        Console.WriteLine($"speculative decoding bench, {DateTimeOffset.Now:yyyy-MM-dd HH:mm zzz}, {Environment.ProcessorCount} cores");
        Console.WriteLine($"lm-bench {new FileInfo(targetPath).Length / 1e6:0.0} MB; lm-bench-draft (its first block of {target.Layers}) {new FileInfo(draftPath).Length / 1e6:0.0} MB; "
            + $"one stream, greedy, max_tokens {maxTokens}, k {k}, {rounds} interleaved rounds");
        try
        {
            var drafts = new FixedDrafts(draft, draftPath);
            using var plain = await LoadAsync(DecoderLmModel.Manifest(target), targetPath, drafts).ConfigureAwait(false);
            using var withDraft = await LoadAsync(DecoderLmModel.SpeculativeManifest(target, draft, k), targetPath, drafts).ConfigureAwait(false);
            var lookupManifest = DecoderLmModel.Manifest(target);
            lookupManifest = lookupManifest with { Generation = lookupManifest.Generation! with { Speculative = new SpeculativeSpec { PromptLookup = true, K = k } } };
            using var withLookup = await LoadAsync(lookupManifest, targetPath, drafts).ConfigureAwait(false);

            var varied = s_questions.Select(q => plain.Tokenizer.Encode(q)).ToList();
            // Copy-heavy: the question, the model's answer, the question again; the second answer repeats the first's spans.
            var copyHeavy = new List<IReadOnlyList<int>>();
            foreach (var question in varied)
            {
                var answer = await GenerateAsync(plain, question, maxTokens).ConfigureAwait(false);
                copyHeavy.Add([.. question, .. answer, .. question]);
            }

            var (draftRatio, draftAcceptance) = await CompareAsync("draft model (lm-bench-draft)", plain, withDraft, varied, maxTokens, rounds).ConfigureAwait(false);
            var (lookupRatio, lookupAcceptance) = await CompareAsync("prompt lookup, copy-heavy", plain, withLookup, copyHeavy, maxTokens, rounds).ConfigureAwait(false);
            Console.WriteLine();
            Console.WriteLine("| proposer | workload | with / without, tokens/s | acceptance rate | bar |");
            Console.WriteLine("|---|---|---|---|---|");
            Console.WriteLine($"| draft lm-bench-draft, k {k} | varied prompts | {draftRatio:0.00} | {draftAcceptance:0.00} | >= 1.5: {(draftRatio >= 1.5 ? "pass" : "FAIL")} |");
            Console.WriteLine($"| prompt lookup, k {k} | copy-heavy | {lookupRatio:0.00} | {lookupAcceptance:0.00} | >= 1.5: {(lookupRatio >= 1.5 ? "pass" : "FAIL")} |");
            return draftRatio >= 1.5 && lookupRatio >= 1.5 ? 0 : 1;
        }
        finally
        {
            File.Delete(targetPath);
            File.Delete(draftPath);
        }
    }

    private static async Task<(double Ratio, double Acceptance)> CompareAsync(string name, OnnxTextGenerationModel plain, OnnxTextGenerationModel speculative,
        IReadOnlyList<IReadOnlyList<int>> prompts, int maxTokens, int rounds)
    {
        Console.WriteLine();
        Console.WriteLine(name);
        // Unmeasured warm-up; it also checks that both sides make the same tokens.
        foreach (var prompt in prompts)
        {
            var a = await GenerateAsync(plain, prompt, maxTokens).ConfigureAwait(false);
            var b = await GenerateAsync(speculative, prompt, maxTokens).ConfigureAwait(false);
            if (!a.SequenceEqual(b))
            {
                Console.WriteLine($"  note: outputs differ for one prompt (a near-tie of logits); {a.Zip(b).TakeWhile(p => p.First == p.Second).Count()} tokens agree");
            }
        }

        var seconds = new Dictionary<bool, double> { [false] = 0, [true] = 0 };
        var tokens = new Dictionary<bool, long> { [false] = 0, [true] = 0 };
        var proposed0 = speculative.Counters.SpeculativeProposedTokens;
        var accepted0 = speculative.Counters.SpeculativeAcceptedTokens;
        for (var round = 0; round < rounds; round++)
        {
            foreach (var on in round % 2 == 0 ? new[] { false, true } : [true, false])
            {
                var model = on ? speculative : plain;
                var clock = Stopwatch.StartNew();
                long made = 0;
                foreach (var prompt in prompts)
                {
                    made += (await GenerateAsync(model, prompt, maxTokens).ConfigureAwait(false)).Count;
                }

                seconds[on] += clock.Elapsed.TotalSeconds;
                tokens[on] += made;
                Console.WriteLine($"  round {round + 1} {(on ? "speculative" : "plain"),-12} {made / clock.Elapsed.TotalSeconds,8:0} tokens/s");
            }
        }

        var ratio = (tokens[true] / seconds[true]) / (tokens[false] / seconds[false]);
        var proposed = speculative.Counters.SpeculativeProposedTokens - proposed0;
        var acceptance = proposed == 0 ? 0 : (double)(speculative.Counters.SpeculativeAcceptedTokens - accepted0) / proposed;
        Console.WriteLine($"  with / without: {ratio:0.00}; acceptance {acceptance:0.00} ({proposed} proposed)");
        return (ratio, acceptance);
    }

    private static async Task<List<int>> GenerateAsync(OnnxTextGenerationModel model, IReadOnlyList<int> prompt, int maxTokens)
    {
        var tokens = new List<int>();
        await foreach (var token in model.GenerateAsync(new GenerationRequest { PromptTokenIds = prompt, MaxTokens = maxTokens }, null, CancellationToken.None).ConfigureAwait(false))
        {
            if (token.TokenId >= 0)
            {
                tokens.Add(token.TokenId);
            }
        }

        return tokens;
    }

    private static async Task<OnnxTextGenerationModel> LoadAsync(ModelManifest manifest, string path, IDraftModelSource drafts)
    {
        var engine = new OnnxInferenceEngine(
            Options.Create(new OnnxEngineOptions { ExecutionProvider = OnnxExecutionProvider.Cpu }),
            NullLogger<OnnxInferenceEngine>.Instance,
            Options.Create(new TextGenerationOptions { MaxConcurrentSequences = 1, KvCacheBudgetBytes = 2L << 30 }),
            draftModels: drafts);
        return (OnnxTextGenerationModel)await engine.LoadAsync(manifest, path, CancellationToken.None).ConfigureAwait(false);
    }

    private sealed class FixedDrafts(DecoderLmConfig draft, string path) : IDraftModelSource
    {
        public ValueTask<(ModelManifest Manifest, string WeightsPath)?> FindAsync(string name, CancellationToken cancellationToken) =>
            ValueTask.FromResult<(ModelManifest, string)?>(name == draft.Name ? (DecoderLmModel.Manifest(draft), path) : null);
    }
}
