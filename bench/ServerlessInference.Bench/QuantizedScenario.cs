using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Onnx;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;
using ServerlessInference.Onnx.Quantization;

namespace ServerlessInference.Bench;

/// <summary>INT8 weight-quantized variants against FP32, in process: <c>mlp-bench</c> rows/s at batch 32 (one ONNX Runtime
/// call per batch, preallocated tensors) and <c>lm-bench</c> tokens/s through the generation engine (the generation mix,
/// closed-loop clients), each form of <see cref="Int8Form"/>, in interleaved rounds, with the accuracy figures of
/// <see cref="QuantizationAccuracy"/> beside them.</summary>
/// <remarks><c>dotnet run -c Release --project bench/ServerlessInference.Bench -- quantized [--seconds 5] [--rounds 3]
/// [--clients 1,32]</c>.</remarks>
internal static class QuantizedScenario
{
    public const string Command = "quantized";
    private const int Batch = 32;

    public static async Task<int> RunAsync(string[] args)
    {
        var seconds = 5.0;
        var rounds = 3;
        int[] clientCounts = [1, 32];
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--seconds": seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--rounds": rounds = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--clients": clientCounts = [.. args[i + 1].Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture))]; break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }

        Console.WriteLine($"quantized variants bench, {DateTimeOffset.Now:yyyy-MM-dd HH:mm zzz}, {Environment.ProcessorCount} cores; {rounds} rounds of {seconds:0.#} s per variant (+1 s unmeasured)");
        var engine = new OnnxInferenceEngine(Options.Create(new OnnxEngineOptions { ExecutionProvider = OnnxExecutionProvider.Cpu }), NullLogger<OnnxInferenceEngine>.Instance);
        _ = engine; // creates the shared ONNX Runtime environment before any session

        var variants = new[] { "fp32", "int8 dynamic", "int8 weight-only" };
        var mlp = MlpBenchModel.Build();
        var mlpModels = new Dictionary<string, byte[]>
        {
            ["fp32"] = mlp,
            ["int8 dynamic"] = Int8WeightQuantizer.Quantize(mlp, Int8Form.Dynamic).Model,
            ["int8 weight-only"] = Int8WeightQuantizer.Quantize(mlp, Int8Form.WeightOnly).Model,
        };
        var config = DecoderLmModel.LmBench;
        var lm = DecoderLmModel.Build(config);
        var lmModels = new Dictionary<string, byte[]>
        {
            ["fp32"] = lm,
            ["int8 dynamic"] = Int8WeightQuantizer.Quantize(lm, Int8Form.Dynamic).Model,
            ["int8 weight-only"] = Int8WeightQuantizer.Quantize(lm, Int8Form.WeightOnly).Model,
        };

        var rows = new List<string>();
        var mlpRates = MeasureMlp(mlpModels, variants, rounds, seconds);
        var lmRates = new Dictionary<int, Dictionary<string, double>>();
        foreach (var clients in clientCounts)
        {
            lmRates[clients] = await MeasureLmAsync(engine, lmModels, variants, config, clients, rounds, seconds).ConfigureAwait(false);
        }

        Console.WriteLine();
        Console.WriteLine($"| model | variant | size MB | throughput | / FP32 | max abs logit error | mean abs logit error | top-1 agreement |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|");
        foreach (var variant in variants)
        {
            var accuracy = variant == "fp32" ? null : QuantizationAccuracy.MeasureMlp(mlp, mlpModels[variant], MlpBenchModel.DefaultLayerSizes[0], MlpBenchModel.DefaultLayerSizes[^1]);
            Console.WriteLine(Row("mlp-bench", variant, mlpModels[variant].Length, $"{mlpRates[variant]:0} rows/s (batch {Batch})", mlpRates[variant] / mlpRates["fp32"], accuracy));
        }

        foreach (var variant in variants)
        {
            var accuracy = variant == "fp32" ? null : QuantizationAccuracy.MeasureLm(lm, lmModels[variant], config);
            foreach (var clients in clientCounts)
            {
                var rate = lmRates[clients][variant];
                Console.WriteLine(Row("lm-bench", variant, lmModels[variant].Length, $"{rate:0} tokens/s ({clients} client{(clients == 1 ? "" : "s")})", rate / lmRates[clients]["fp32"], accuracy));
            }
        }

        Console.WriteLine();
        Console.WriteLine("accuracy: mlp-bench on 256 fixed rows, lm-bench on 8 fixed prompts of 32 tokens (every position a row), against FP32");
        return 0;
    }

    private static string Row(string model, string variant, int bytes, string throughput, double ratio, AccuracyReport? accuracy) =>
        string.Create(CultureInfo.InvariantCulture,
            $"| {model} | {variant} | {bytes / 1e6:0.0} | {throughput} | {ratio:0.00} | {(accuracy is null ? "" : accuracy.MaxAbsError.ToString("0.000", CultureInfo.InvariantCulture))} | {(accuracy is null ? "" : accuracy.MeanAbsError.ToString("0.0000", CultureInfo.InvariantCulture))} | {(accuracy is null ? "" : accuracy.Top1Agreement.ToString("P1", CultureInfo.InvariantCulture))} |");

    private static Dictionary<string, double> MeasureMlp(Dictionary<string, byte[]> models, string[] variants, int rounds, double seconds)
    {
        var width = MlpBenchModel.DefaultLayerSizes[0];
        var outWidth = MlpBenchModel.DefaultLayerSizes[^1];
        var input = Inputs.Floats(Batch * width, 1);
        var output = new float[Batch * outWidth];
        var sessions = variants.ToDictionary(v => v, v =>
        {
            var options = new SessionOptions();
            options.DisablePerSessionThreads();
            return new InferenceSession(models[v], options);
        });
        try
        {
            using var runOptions = new RunOptions();
            using var x = OrtValue.CreateTensorValueFromMemory(input, [Batch, width]);
            using var y = OrtValue.CreateTensorValueFromMemory(output, [Batch, outWidth]);
            var rowsDone = variants.ToDictionary(v => v, _ => 0L);
            var time = variants.ToDictionary(v => v, _ => 0.0);
            for (var round = 0; round < rounds; round++)
            {
                foreach (var variant in round % 2 == 0 ? variants : variants.Reverse())
                {
                    var session = sessions[variant];
                    RunFor(TimeSpan.FromSeconds(1), () => session.Run(runOptions, [MlpBenchModel.InputName], [x], [MlpBenchModel.OutputName], [y]));
                    var watch = Stopwatch.StartNew();
                    var calls = RunFor(TimeSpan.FromSeconds(seconds), () => session.Run(runOptions, [MlpBenchModel.InputName], [x], [MlpBenchModel.OutputName], [y]));
                    rowsDone[variant] += calls * Batch;
                    time[variant] += watch.Elapsed.TotalSeconds;
                    Console.WriteLine($"  round {round + 1} mlp-bench {variant,-17} {calls * Batch / watch.Elapsed.TotalSeconds,8:0} rows/s");
                }
            }

            return variants.ToDictionary(v => v, v => rowsDone[v] / time[v]);
        }
        finally
        {
            foreach (var session in sessions.Values)
            {
                session.Dispose();
            }
        }
    }

    private static long RunFor(TimeSpan duration, Action call)
    {
        var watch = Stopwatch.StartNew();
        long calls = 0;
        while (watch.Elapsed < duration)
        {
            call();
            calls++;
        }

        return calls;
    }

    private static async Task<Dictionary<string, double>> MeasureLmAsync(OnnxInferenceEngine engine, Dictionary<string, byte[]> models, string[] variants,
        DecoderLmConfig config, int clients, int rounds, double seconds)
    {
        var loaded = new Dictionary<string, OnnxTextGenerationModel>();
        var paths = new List<string>();
        try
        {
            foreach (var variant in variants)
            {
                var path = Path.Combine(Path.GetTempPath(), $"si-quantized-{Environment.ProcessId}-{paths.Count}.onnx");
                paths.Add(path);
                await File.WriteAllBytesAsync(path, models[variant]).ConfigureAwait(false);
                loaded[variant] = await EngineModels.LoadAsync(DecoderLmModel.Manifest(config), path,
                    new TextGenerationOptions { MaxConcurrentSequences = clients, KvCacheBudgetBytes = EngineModels.KvBudget }).ConfigureAwait(false);
            }

            var mix = GenerationMix.Create(loaded["fp32"].Tokenizer);
            var tokens = variants.ToDictionary(v => v, _ => 0L);
            var time = variants.ToDictionary(v => v, _ => 0.0);
            for (var round = 0; round < rounds; round++)
            {
                foreach (var variant in round % 2 == 0 ? variants : variants.Reverse())
                {
                    var slice = await GenerationLoad.RunAsync(new EngineTarget(loaded[variant]), mix, clients, 3 * round, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(seconds)).ConfigureAwait(false);
                    tokens[variant] += slice.Tokens;
                    time[variant] += slice.Seconds;
                    Console.WriteLine($"  round {round + 1} lm-bench  {variant,-17} {slice.Tokens / slice.Seconds,8:0} tokens/s ({clients} clients, errors {slice.Errors})");
                }
            }

            _ = engine;
            return variants.ToDictionary(v => v, v => tokens[v] / time[v]);
        }
        finally
        {
            foreach (var model in loaded.Values)
            {
                model.Dispose();
            }

            foreach (var path in paths)
            {
                File.Delete(path);
            }
        }
    }
}
