using System.Diagnostics;
using System.Globalization;
using ServerlessInference.Generation;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;

namespace ServerlessInference.Bench;

/// <summary>The generation engine driven in process (no HTTP, no queue): closed-loop clients on <c>lm-bench</c> with
/// the generation scenarios' request mix (<see cref="GenerationMix"/>), continuous batching against one sequence at a
/// time, measured in interleaved slices. The same driver (<see cref="GenerationLoad"/>, <see cref="EngineTarget"/>) is
/// scenario g3 of the end-to-end bench.</summary>
/// <remarks><c>dotnet run -c Release --project bench/ServerlessInference.Bench -- generation-engine [--seconds 8]
/// [--rounds 3] [--clients 32]</c>.</remarks>
internal static class GenerationEngineBench
{
    public const string Command = "generation-engine";

    public static async Task<int> RunAsync(string[] args)
    {
        var seconds = 8.0;
        var rounds = 3;
        var clients = 32;
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--seconds": seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--rounds": rounds = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--clients": clients = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }

        var config = DecoderLmModel.LmBench;
        var path = Path.Combine(Path.GetTempPath(), $"si-lm-bench-{Environment.ProcessId}.onnx");
        var build = Stopwatch.StartNew();
        await File.WriteAllBytesAsync(path, DecoderLmModel.Build(config)).ConfigureAwait(false);
        Console.WriteLine($"generation engine bench, {DateTimeOffset.Now:yyyy-MM-dd HH:mm zzz}, {Environment.ProcessorCount} cores");
        Console.WriteLine($"lm-bench: V{config.VocabularySize} D{config.Hidden} L{config.Layers} H{config.Heads}, {new FileInfo(path).Length / 1e6:0.0} MB, built in {build.Elapsed.TotalSeconds:0.0} s");
        try
        {
            using var batched = await LoadAsync(path, config, clients).ConfigureAwait(false);
            using var single = await LoadAsync(path, config, 1).ConfigureAwait(false);
            var mix = GenerationMix.Create(batched.Tokenizer);
            Console.WriteLine($"{clients} closed-loop clients; mix of {mix.Describe()}; {rounds} rounds of {seconds:0.#} s per scenario (+2 s unmeasured each)");
            var lone = await GenerationLoad.RunAsync(new EngineTarget(batched), mix.WithMaxTokens(4), 1, 0, TimeSpan.FromSeconds(0.5), TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            var loneMedian = GenerationLoad.Percentile([.. lone.TimesToFirstTokenMs.Order()], 0.5);

            var results = new Dictionary<string, List<GenerationSlice>> { ["batched"] = [], ["single"] = [] };
            for (var round = 0; round < rounds; round++)
            {
                foreach (var (name, model) in round % 2 == 0 ? [("batched", batched), ("single", single)] : new[] { ("single", single), ("batched", batched) })
                {
                    var tokens0 = model.Counters.TokensGenerated;
                    var steps0 = model.Counters.Steps;
                    var slice = await GenerationLoad.RunAsync(new EngineTarget(model), mix, clients, 3 * round, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(seconds)).ConfigureAwait(false);
                    results[name].Add(slice);
                    var steps = Math.Max(1.0, model.Counters.Steps - steps0);
                    Console.WriteLine($"  round {round + 1} {name,-8} {slice.Tokens / slice.Seconds,8:0} tokens/s  mean tokens/step {(model.Counters.TokensGenerated - tokens0) / steps,5:0.0}  errors {slice.Errors}");
                }
            }

            double Rate(string name) => results[name].Sum(s => s.Tokens) / results[name].Sum(s => s.Seconds);
            double[] Ttft(string name) => [.. results[name].SelectMany(s => s.TimesToFirstTokenMs).Order()];
            var ratio = Rate("batched") / Rate("single");
            Console.WriteLine();
            Console.WriteLine($"| scenario | tokens/s | TTFT p50 ms | TTFT p99 ms |");
            Console.WriteLine($"|---|---|---|---|");
            foreach (var name in results.Keys)
            {
                var t = Ttft(name);
                Console.WriteLine($"| {(name == "batched" ? $"continuous batching (max {clients})" : "one sequence at a time")} | {Rate(name):0} | {GenerationLoad.Percentile(t, 0.5):0} | {GenerationLoad.Percentile(t, 0.99):0} |");
            }

            Console.WriteLine($"| lone request (idle engine, max_tokens <= 4) | | {loneMedian:0} | |");
            Console.WriteLine();
            Console.WriteLine($"continuous batching / one at a time, tokens/s: {ratio:0.00} (bar >= 2.0: {(ratio >= 2 ? "pass" : "FAIL")})");
            Console.WriteLine($"TTFT p99 under load / lone TTFT: {GenerationLoad.Percentile(Ttft("batched"), 0.99) / loneMedian:0.0} (issue 10 bar, through the platform: <= 4)");
            var errors = results.Values.SelectMany(r => r).Sum(s => s.Errors) + lone.Errors;
            return ratio >= 2 && errors == 0 ? 0 : 1;
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static Task<OnnxTextGenerationModel> LoadAsync(string path, DecoderLmConfig config, int maxConcurrent) =>
        EngineModels.LoadAsync(DecoderLmModel.Manifest(config), path,
            new TextGenerationOptions { MaxConcurrentSequences = maxConcurrent, KvCacheBudgetBytes = EngineModels.KvBudget });
}
