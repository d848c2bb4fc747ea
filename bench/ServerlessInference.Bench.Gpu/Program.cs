using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Bench;
using ServerlessInference.Onnx.Demo;

// The raw ONNX Runtime scenarios of bench/ServerlessInference.Bench/RawOnnx.cs (mlp-bench batch 1 and 32, resnet18
// batch 1; the platform's environment: one global intra-op pool, one inter-op thread, the shared CPU arena;
// preallocated input and output tensors in host memory) on one execution provider: `cpu` or `cuda [device]`.
// Run by bench/gpu/check.sh, once per provider in its own process, so a CUDA failure cannot take the CPU figures.
// Prints machine-readable lines: INFO|key|value, RAW|ep|key|rows|runs|runs_per_s|p50_ms|p99_ms,
// SESSION|ep|model|create_ms|first_run_ms|nodes_by_provider|max_abs_diff_vs_cpu, ERROR|ep|stage|message.
// Exit code 0 when every scenario ran, 1 when any failed.
var ep = args.Length > 0 ? args[0] : "cpu";
var seconds = args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 5;
var threads = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : Environment.ProcessorCount;
var deviceId = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 0;
if (ep is not ("cpu" or "cuda"))
{
    Console.Error.WriteLine("usage: ServerlessInference.Bench.Gpu cpu|cuda [seconds] [intra-op threads] [cuda device]");
    return 2;
}

var failed = false;
void Error(string stage, Exception ex)
{
    failed = true;
    Console.WriteLine($"ERROR|{ep}|{stage}|{ex.GetType().Name}: {ex.Message.ReplaceLineEndings(" ").Trim()}");
}

using (var threading = new OrtThreadingOptions { GlobalIntraOpNumThreads = threads, GlobalInterOpNumThreads = 1, GlobalSpinControl = false })
{
    var creation = new EnvironmentCreationOptions { logId = "gpu-check", logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING, threadOptions = threading };
    var env = OrtEnv.CreateInstanceWithOptions(ref creation);
    using var memoryInfo = new OrtMemoryInfo(OrtMemoryInfo.allocatorCPU, OrtAllocatorType.ArenaAllocator, 0, OrtMemType.Default);
    using var arena = new OrtArenaCfg(0, -1, -1, -1);
    env.CreateAndRegisterAllocator(memoryInfo, arena);
}

Console.WriteLine($"INFO|onnxruntime|{OrtEnv.Instance().GetVersionString()}");
Console.WriteLine($"INFO|available_providers|{string.Join(",", OrtEnv.Instance().GetAvailableProviders())}");
Console.WriteLine($"INFO|intra_op_threads|{threads}");

var models = new (string Name, Func<byte[]> Bytes, string Input, string Output, (string Key, long[] In, long[] Out)[] Loops)[]
{
    (MlpBenchModel.Name, MlpBenchModel.Build, MlpBenchModel.InputName, MlpBenchModel.OutputName,
        [("mlp-b1", [1, 512], [1, 16]), ("mlp-b32", [32, 512], [32, 16])]),
    (ResNet18Model.Name, () => File.ReadAllBytes(ResNet18Model.FindFile()), ResNet18Model.InputName, ResNet18Model.OutputName,
        [("resnet18-b1", [1, 3, 224, 224], [1, 512, 1, 1])]),
};

foreach (var model in models)
{
    byte[] bytes;
    try
    {
        bytes = model.Bytes();
    }
    catch (Exception ex)
    {
        Error($"{model.Name}:read", ex);
        continue;
    }

    InferenceSession session;
    var started = Stopwatch.GetTimestamp();
    try
    {
        session = CreateSession(bytes, cuda: ep == "cuda", profile: null);
    }
    catch (Exception ex)
    {
        Error($"{model.Name}:session", ex);
        continue;
    }

    var createMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    using (session)
    {
        // Which provider ran each node, from ONNX Runtime's own profile of a separate session (profiling slows runs).
        var placement = "?";
        try
        {
            placement = NodesByProvider(bytes, ep == "cuda", model.Input, model.Loops[0].In, model.Output, model.Loops[0].Out);
        }
        catch (Exception ex)
        {
            Error($"{model.Name}:profile", ex);
        }

        foreach (var (key, inShape, outShape) in model.Loops)
        {
            try
            {
                var input = Inputs.Floats(checked((int)inShape.Aggregate(1L, (a, b) => a * b)), seed: 1);
                var output = new float[outShape.Aggregate(1L, (a, b) => a * b)];
                using var inputValue = OrtValue.CreateTensorValueFromMemory(input, inShape);
                using var outputValue = OrtValue.CreateTensorValueFromMemory(output, outShape);
                using var runOptions = new RunOptions();
                OrtValue[] inputs = [inputValue];
                OrtValue[] outputs = [outputValue];
                string[] inputNames = [model.Input];
                string[] outputNames = [model.Output];
                var first = Stopwatch.GetTimestamp();
                session.Run(runOptions, inputNames, inputs, outputNames, outputs);
                var firstMs = Stopwatch.GetElapsedTime(first).TotalMilliseconds;

                // The same input on a CPU session: how far this provider's answer is from the CPU's.
                var diff = 0.0;
                if (ep == "cuda")
                {
                    using var cpu = CreateSession(bytes, cuda: false, profile: null);
                    var reference = new float[output.Length];
                    using var referenceValue = OrtValue.CreateTensorValueFromMemory(reference, outShape);
                    cpu.Run(runOptions, inputNames, inputs, outputNames, [referenceValue]);
                    diff = output.Zip(reference, (a, b) => Math.Abs((double)a - b)).Max();
                }

                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"SESSION|{ep}|{key}|{createMs:0.0}|{firstMs:0.00}|{placement}|{diff:G3}"));

                var latencies = new List<long>(1 << 16);
                var warmEnd = Stopwatch.GetTimestamp() + (long)(Math.Min(1, seconds / 4) * Stopwatch.Frequency);
                while (Stopwatch.GetTimestamp() < warmEnd)
                {
                    session.Run(runOptions, inputNames, inputs, outputNames, outputs);
                }

                var begin = Stopwatch.GetTimestamp();
                var end = begin + (long)(seconds * Stopwatch.Frequency);
                long now;
                do
                {
                    var t = Stopwatch.GetTimestamp();
                    session.Run(runOptions, inputNames, inputs, outputNames, outputs);
                    now = Stopwatch.GetTimestamp();
                    latencies.Add(now - t);
                }
                while (now < end);

                var sorted = latencies.ToArray();
                Array.Sort(sorted);
                var measured = (double)(now - begin) / Stopwatch.Frequency;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"RAW|{ep}|{key}|{inShape[0]}|{sorted.Length}|{sorted.Length / measured:0.0}|{Ms(sorted, 0.50):0.000}|{Ms(sorted, 0.99):0.000}"));
            }
            catch (Exception ex)
            {
                Error(key, ex);
            }
        }
    }
}

return failed ? 1 : 0;

InferenceSession CreateSession(byte[] model, bool cuda, string? profile)
{
    // As RawChild.CreateSession and OnnxRuntimeEnvironment (the platform) do, plus the CUDA provider when asked.
    using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL };
    options.DisablePerSessionThreads();
    options.AddSessionConfigEntry("session.use_env_allocators", "1");
    if (profile is not null)
    {
        options.EnableProfiling = true;
        options.ProfileOutputPathPrefix = profile;
    }

    if (cuda)
    {
        using var cudaOptions = new OrtCUDAProviderOptions();
        cudaOptions.UpdateOptions(new Dictionary<string, string> { ["device_id"] = deviceId.ToString(CultureInfo.InvariantCulture) });
        options.AppendExecutionProvider_CUDA(cudaOptions);
    }

    return new InferenceSession(model, options);
}

string NodesByProvider(byte[] model, bool cuda, string inputName, long[] inShape, string outputName, long[] outShape)
{
    var folder = Directory.CreateTempSubdirectory("gpu-check-profile-");
    try
    {
        string file;
        using (var session = CreateSession(model, cuda, Path.Combine(folder.FullName, "profile")))
        {
            using var input = OrtValue.CreateTensorValueFromMemory(Inputs.Floats(checked((int)inShape.Aggregate(1L, (a, b) => a * b)), seed: 2), inShape);
            using var output = OrtValue.CreateTensorValueFromMemory(new float[outShape.Aggregate(1L, (a, b) => a * b)], outShape);
            using var runOptions = new RunOptions();
            session.Run(runOptions, [inputName], [input], [outputName], [output]);
            file = session.EndProfiling();
        }

        var path = Path.IsPathRooted(file) ? file : Path.Combine(Environment.CurrentDirectory, file);
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        File.Delete(path);
        var nodes = new Dictionary<string, HashSet<string>>();
        foreach (var e in json.RootElement.EnumerateArray())
        {
            if (e.TryGetProperty("cat", out var cat) && cat.GetString() == "Node"
                && e.TryGetProperty("args", out var a) && a.TryGetProperty("provider", out var provider)
                && e.TryGetProperty("name", out var name))
            {
                var node = name.GetString() ?? "";
                var p = provider.GetString() ?? "?";
                (nodes.TryGetValue(p, out var set) ? set : nodes[p] = []).Add(node.Replace("_kernel_time", "", StringComparison.Ordinal));
            }
        }

        return nodes.Count == 0 ? "none" : string.Join(" ", nodes.OrderBy(n => n.Key, StringComparer.Ordinal).Select(n => $"{n.Key}={n.Value.Count}"));
    }
    finally
    {
        folder.Delete(recursive: true);
    }
}

static double Ms(long[] sorted, double p) =>
    sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Ceiling(p * sorted.Length) - 1)] * 1000.0 / Stopwatch.Frequency;
