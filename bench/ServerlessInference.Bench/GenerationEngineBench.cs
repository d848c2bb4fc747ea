using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Generation;
using ServerlessInference.Onnx;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;

namespace ServerlessInference.Bench;

/// <summary>The generation engine driven in process (no HTTP, no queue): closed-loop clients on <c>lm-bench</c> with
/// mixed prompt and output lengths, continuous batching against one sequence at a time, measured in interleaved
/// slices.</summary>
/// <remarks><c>dotnet run -c Release --project bench/ServerlessInference.Bench -- generation-engine [--seconds 8]
/// [--rounds 3] [--clients 32]</c>. Prompts are 16–256 random token ids, outputs 16–128 greedy tokens, from a fixed
/// seed per client and request number, so both scenarios see the same requests.</remarks>
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
        Console.WriteLine($"{clients} closed-loop clients; prompts 16-256 tokens, outputs 16-128 tokens, greedy; {rounds} rounds of {seconds:0.#} s per scenario (+2 s unmeasured each)");
        try
        {
            using var batched = await LoadAsync(path, config, clients).ConfigureAwait(false);
            using var single = await LoadAsync(path, config, 1).ConfigureAwait(false);
            var lone = new List<double>();
            for (var i = 0; i < 5; i++)
            {
                lone.Add(await TimeToFirstTokenAsync(batched, Request(0, 1000 + i)).ConfigureAwait(false));
            }

            var results = new Dictionary<string, Slice> { ["batched"] = new(), ["single"] = new() };
            for (var round = 0; round < rounds; round++)
            {
                foreach (var (name, model) in round % 2 == 0 ? [("batched", batched), ("single", single)] : new[] { ("single", single), ("batched", batched) })
                {
                    var slice = await MeasureAsync(model, clients, TimeSpan.FromSeconds(seconds), round).ConfigureAwait(false);
                    results[name].Add(slice);
                    Console.WriteLine($"  round {round + 1} {name,-8} {slice.Tokens / slice.Seconds,8:0} tokens/s  mean batch {slice.Tokens / Math.Max(1.0, slice.Steps),5:0.0}");
                }
            }

            var ratio = results["batched"].TokensPerSecond / results["single"].TokensPerSecond;
            var ttft = results["batched"].TimesToFirstToken.Order().ToArray();
            var loneMedian = lone.Order().ElementAt(lone.Count / 2);
            Console.WriteLine();
            Console.WriteLine($"| scenario | tokens/s | TTFT p50 ms | TTFT p99 ms |");
            Console.WriteLine($"|---|---|---|---|");
            foreach (var (name, slice) in results)
            {
                var t = slice.TimesToFirstToken.Order().ToArray();
                Console.WriteLine($"| {(name == "batched" ? $"continuous batching (max {clients})" : "one sequence at a time")} | {slice.TokensPerSecond:0} | {Percentile(t, 0.5):0} | {Percentile(t, 0.99):0} |");
            }

            Console.WriteLine($"| lone request (idle engine) | | {loneMedian:0} | |");
            Console.WriteLine();
            Console.WriteLine($"continuous batching / one at a time, tokens/s: {ratio:0.00} (bar >= 2.0: {(ratio >= 2 ? "pass" : "FAIL")})");
            Console.WriteLine($"TTFT p99 under load / lone TTFT: {Percentile(ttft, 0.99) / loneMedian:0.0} (issue 10 bar, through the platform: <= 4)");
            return ratio >= 2 ? 0 : 1;
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static async Task<OnnxTextGenerationModel> LoadAsync(string path, DecoderLmConfig config, int maxConcurrent)
    {
        var engine = new OnnxInferenceEngine(
            Options.Create(new OnnxEngineOptions { ExecutionProvider = OnnxExecutionProvider.Cpu }),
            NullLogger<OnnxInferenceEngine>.Instance,
            Options.Create(new TextGenerationOptions { MaxConcurrentSequences = maxConcurrent, KvCacheBudgetBytes = 2L << 30 }));
        return (OnnxTextGenerationModel)await engine.LoadAsync(DecoderLmModel.Manifest(config), path, CancellationToken.None).ConfigureAwait(false);
    }

    /// <summary>The request of <paramref name="client"/>'s <paramref name="number"/>th turn.</summary>
    private static GenerationRequest Request(int client, int number)
    {
        var random = new Random((client * 7919) + number);
        var prompt = Enumerable.Range(0, random.Next(16, 257)).Select(_ => random.Next(0, DecoderLmModel.LmBench.VocabularySize - 1)).ToArray();
        return new GenerationRequest { PromptTokenIds = prompt, MaxTokens = random.Next(16, 129) };
    }

    private static async Task<double> TimeToFirstTokenAsync(ITextGenerationModel model, GenerationRequest request)
    {
        var stopwatch = Stopwatch.StartNew();
        double first = 0;
        await foreach (var token in model.GenerateAsync(request with { MaxTokens = 2 }, null, CancellationToken.None).ConfigureAwait(false))
        {
            if (first == 0)
            {
                first = stopwatch.Elapsed.TotalMilliseconds;
            }
        }

        return first;
    }

    private static async Task<Slice> MeasureAsync(OnnxTextGenerationModel model, int clients, TimeSpan duration, int round)
    {
        using var stop = new CancellationTokenSource();
        var measuring = 0;
        var ttft = new List<double>();
        var tasks = Enumerable.Range(0, clients).Select(client => Task.Run(async () =>
        {
            for (var number = round * 1000; !stop.IsCancellationRequested; number++)
            {
                var stopwatch = Stopwatch.StartNew();
                var first = true;
                try
                {
                    await foreach (var _ in model.GenerateAsync(Request(client, number), null, stop.Token).ConfigureAwait(false))
                    {
                        if (first && Volatile.Read(ref measuring) == 1)
                        {
                            lock (ttft)
                            {
                                ttft.Add(stopwatch.Elapsed.TotalMilliseconds);
                            }
                        }

                        first = false;
                    }
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        })).ToArray();

        await Task.Delay(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        var tokens0 = model.Counters.TokensGenerated;
        var steps0 = model.Counters.Steps;
        var clock = Stopwatch.StartNew();
        Volatile.Write(ref measuring, 1);
        await Task.Delay(duration).ConfigureAwait(false);
        var slice = new Slice
        {
            Tokens = model.Counters.TokensGenerated - tokens0,
            Steps = model.Counters.Steps - steps0,
            Seconds = clock.Elapsed.TotalSeconds,
        };
        Volatile.Write(ref measuring, 0);
        await stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(tasks).ConfigureAwait(false);
        lock (ttft)
        {
            slice.TimesToFirstToken.AddRange(ttft);
        }

        return slice;
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)];

    private sealed class Slice
    {
        public long Tokens { get; set; }

        public long Steps { get; set; }

        public double Seconds { get; set; }

        public List<double> TimesToFirstToken { get; } = [];

        public double TokensPerSecond => Tokens / Seconds;

        public void Add(Slice other)
        {
            Tokens += other.Tokens;
            Steps += other.Steps;
            Seconds += other.Seconds;
            TimesToFirstToken.AddRange(other.TimesToFirstToken);
        }
    }
}
