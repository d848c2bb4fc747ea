using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Generation;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;

namespace ServerlessInference.Bench;

/// <summary>Speculative decoding on <c>lm-spec</c> (the demo target built for it: later blocks that refine, local
/// attention), engine in process, one stream: tokens/s with and without it, in interleaved rounds, for the draft model
/// <c>lm-spec-draft</c> (its first block; varied prompts) and for prompt lookup on a copy-heavy workload (each prompt
/// holds the model's own answer to its question, then asks again; lm-spec's attention is local, so it answers the same
/// way and the answer repeats spans of the prompt). Greedy, so every side makes the same tokens; acceptance rates from
/// the engine's counters. First, the cost side: one decode step, one verification of k + 1 tokens and one draft step,
/// timed on the raw sessions.</summary>
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

        var target = DecoderLmModel.LmSpec;
        var draft = DecoderLmModel.LmSpecDraft;
        var targetPath = Path.Combine(Path.GetTempPath(), $"si-{target.Name}-{Environment.ProcessId}.onnx");
        var draftPath = Path.Combine(Path.GetTempPath(), $"si-{draft.Name}-{Environment.ProcessId}.onnx");
        await File.WriteAllBytesAsync(targetPath, DecoderLmModel.Build(target)).ConfigureAwait(false);
        await File.WriteAllBytesAsync(draftPath, DecoderLmModel.Build(draft)).ConfigureAwait(false);
        Console.WriteLine($"speculative decoding bench, {DateTimeOffset.Now:yyyy-MM-dd HH:mm zzz}, {Environment.ProcessorCount} cores");
        Console.WriteLine($"{target.Name} {new FileInfo(targetPath).Length / 1e6:0.0} MB; {draft.Name} (its first block of {target.Layers}) {new FileInfo(draftPath).Length / 1e6:0.0} MB; "
            + $"one stream, greedy, max_tokens {maxTokens}, k {k}, {rounds} interleaved rounds");
        try
        {
            PrintStepCosts(target, targetPath, draft, draftPath, k);
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

            var (draftRatio, draftAcceptance) = await CompareAsync($"draft model ({draft.Name})", plain, withDraft, varied, maxTokens, rounds).ConfigureAwait(false);
            var (lookupRatio, lookupAcceptance) = await CompareAsync("prompt lookup, copy-heavy", plain, withLookup, copyHeavy, maxTokens, rounds).ConfigureAwait(false);
            Console.WriteLine();
            Console.WriteLine("| proposer | workload | with / without, tokens/s | acceptance rate | bar |");
            Console.WriteLine("|---|---|---|---|---|");
            Console.WriteLine($"| draft {draft.Name}, k {k} | varied prompts | {draftRatio:0.00} | {draftAcceptance:0.00} | >= 1.5: {(draftRatio >= 1.5 ? "pass" : "FAIL")} |");
            Console.WriteLine($"| prompt lookup, k {k} | copy-heavy | {lookupRatio:0.00} | {lookupAcceptance:0.00} | >= 1.5: {(lookupRatio >= 1.5 ? "pass" : "FAIL")} |");
            return draftRatio >= 1.5 && lookupRatio >= 1.5 ? 0 : 1;
        }
        finally
        {
            File.Delete(targetPath);
            File.Delete(draftPath);
        }
    }

    /// <summary>What speculation pays and what it buys: a plain decode step, a verification pass over k + 1 tokens and
    /// a draft step, each with 64 tokens of KV behind it, timed interleaved on raw sessions (the engine's own thread
    /// settings aside), so the ratios hold even on a busy machine.</summary>
    private static void PrintStepCosts(DecoderLmConfig target, string targetPath, DecoderLmConfig draft, string draftPath, int k)
    {
        const int past = 64, repeats = 20, warmUp = 3;
        using var targetSession = new InferenceSession(targetPath);
        using var draftSession = new InferenceSession(draftPath);
        double step = 0, verify = 0, draftStep = 0;
        for (var r = 0; r < warmUp + repeats; r++)
        {
            var a = TimeRun(targetSession, target, past, 1);
            var b = TimeRun(targetSession, target, past, k + 1);
            var c = TimeRun(draftSession, draft, past, 1);
            if (r >= warmUp)
            {
                step += a;
                verify += b;
                draftStep += c;
            }
        }

        Console.WriteLine($"step costs, past {past}, mean of {repeats} interleaved: decode step {step / repeats:0.00} ms; verification of k + 1 = {k + 1} tokens "
            + $"{verify / repeats:0.00} ms ({verify / step:0.00} steps); draft step {draftStep / repeats:0.00} ms ({draftStep / step:0.00} steps)");
        // A round proposes k with k draft steps and one verification; it yields the accepted run plus the model's own token.
        Console.WriteLine($"  a draft round costs {((k * draftStep) + verify) / step:0.00} steps for 1 to {k + 1} tokens; a prompt-lookup round {verify / step:0.00} steps");
    }

    private static double TimeRun(InferenceSession session, DecoderLmConfig config, int past, int length)
    {
        var values = new List<OrtValue>();
        try
        {
            var names = new List<string> { "input_ids", "attention_mask", "position_ids" };
            values.Add(OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, length).Select(i => (long)((i * 37) + 5)).ToArray(), [1, length]));
            values.Add(OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(1L, past + length).ToArray(), [1, past + length]));
            values.Add(OrtValue.CreateTensorValueFromMemory(Enumerable.Range(past, length).Select(i => (long)i).ToArray(), [1, length]));
            for (var i = 0; i < config.GraphLayers; i++)
            {
                foreach (var kind in new[] { "key", "value" })
                {
                    names.Add($"past_key_values.{i}.{kind}");
                    values.Add(OrtValue.CreateTensorValueFromMemory(new float[config.Heads * past * config.HeadDim], [1, config.Heads, past, config.HeadDim]));
                }
            }

            using var runOptions = new RunOptions();
            var clock = Stopwatch.StartNew();
            using var outputs = session.Run(runOptions, names, values, session.OutputNames);
            return clock.Elapsed.TotalMilliseconds;
        }
        finally
        {
            values.ForEach(v => v.Dispose());
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

    private static Task<OnnxTextGenerationModel> LoadAsync(ModelManifest manifest, string path, IDraftModelSource drafts) =>
        EngineModels.LoadAsync(manifest, path, new TextGenerationOptions { MaxConcurrentSequences = 1, KvCacheBudgetBytes = EngineModels.KvBudget }, drafts);

    private sealed class FixedDrafts(DecoderLmConfig draft, string path) : IDraftModelSource
    {
        public ValueTask<(ModelManifest Manifest, string WeightsPath)?> FindAsync(string name, CancellationToken cancellationToken) =>
            ValueTask.FromResult<(ModelManifest, string)?>(name == draft.Name ? (DecoderLmModel.Manifest(draft), path) : null);
    }
}
