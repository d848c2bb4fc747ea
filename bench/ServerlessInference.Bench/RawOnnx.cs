using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Onnx.Demo;

namespace ServerlessInference.Bench;

/// <summary>A child process that runs raw ONNX Runtime loops on command: a plain <see cref="InferenceSession"/> per
/// model, preallocated input and output <see cref="OrtValue"/>s, and the environment the platform creates (one global
/// intra-op pool, one inter-op thread, the shared CPU arena). The global environment can be created once per process,
/// so each spin setting has its own child. It stays alive so its loops can be interleaved with the HTTP scenarios.</summary>
/// <remarks>Protocol on stdin/stdout: the child prints <c>READY</c>; <c>run KEY WARMUP SECONDS</c> runs one slice and
/// answers <c>DONE</c>; <c>report</c> prints one <c>RAW|...</c> line per key over all its slices, then <c>END</c>.</remarks>
internal sealed class RawChild : IAsyncDisposable
{
    public const string ChildFlag = "--raw-child";
    public const string MlpBatch1 = "mlp-b1";
    public const string MlpBatch32 = "mlp-b32";
    public const string ResNet = "resnet18-b1";
    private const string Prefix = "RAW|";

    private readonly Process _process;

    private RawChild(Process process, bool spinning)
    {
        _process = process;
        Spinning = spinning;
    }

    public bool Spinning { get; }

    public int Pid => _process.Id;

    public static async Task<RawChild> StartAsync(bool spinning, int intraOpThreads)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = false,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(typeof(RawChild).Assembly.Location);
        start.ArgumentList.Add(ChildFlag);
        start.ArgumentList.Add(spinning ? "1" : "0");
        start.ArgumentList.Add(intraOpThreads.ToString(CultureInfo.InvariantCulture));
        var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the raw ONNX Runtime child");
        ServerProcess.Track(process);
        var child = new RawChild(process, spinning);
        await child.ExpectAsync("READY").ConfigureAwait(false);
        return child;
    }

    public async Task RunAsync(string key, TimeSpan warmup, TimeSpan duration)
    {
        await _process.StandardInput.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"run {key} {warmup.TotalSeconds} {duration.TotalSeconds}")).ConfigureAwait(false);
        await _process.StandardInput.FlushAsync().ConfigureAwait(false);
        await ExpectAsync("DONE").ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<RawResult>> ReportAsync()
    {
        await _process.StandardInput.WriteLineAsync("report").ConfigureAwait(false);
        await _process.StandardInput.FlushAsync().ConfigureAwait(false);
        var results = new List<RawResult>();
        while (await _process.StandardOutput.ReadLineAsync().ConfigureAwait(false) is { } line && line != "END")
        {
            if (line.StartsWith(Prefix, StringComparison.Ordinal))
            {
                results.Add(Parse(line));
            }
        }

        return results;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _process.StandardInput.Close();
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _process.WaitForExitAsync(wait.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or InvalidOperationException)
        {
            ServerProcess.Kill(_process);
        }

        ServerProcess.Untrack(_process);
        _process.Dispose();
    }

    private async Task ExpectAsync(string word)
    {
        var seen = new List<string>();
        while (await _process.StandardOutput.ReadLineAsync().ConfigureAwait(false) is { } line)
        {
            if (line == word)
            {
                return;
            }

            seen.Add(line);
        }

        throw new InvalidOperationException($"the raw ONNX Runtime child ended before '{word}':{Environment.NewLine}{string.Join(Environment.NewLine, seen)}");
    }

    /// <summary>The child's entry: args are the flag, spin (0/1) and intra-op threads; commands come on stdin.</summary>
    public static int RunChild(string[] args)
    {
        var spinning = args[1] == "1";
        var threads = int.Parse(args[2], CultureInfo.InvariantCulture);
        using (var threading = new OrtThreadingOptions { GlobalIntraOpNumThreads = threads, GlobalInterOpNumThreads = 1, GlobalSpinControl = spinning })
        {
            var creation = new EnvironmentCreationOptions { logId = "bench", logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING, threadOptions = threading };
            var env = OrtEnv.CreateInstanceWithOptions(ref creation);
            using var memoryInfo = new OrtMemoryInfo(OrtMemoryInfo.allocatorCPU, OrtAllocatorType.ArenaAllocator, 0, OrtMemType.Default);
            using var arena = new OrtArenaCfg(0, -1, -1, -1);
            env.CreateAndRegisterAllocator(memoryInfo, arena);
        }

        using var mlp = CreateSession(MlpBenchModel.Build());
        using var resnet = CreateSession(File.ReadAllBytes(ResNet18Model.FindFile()));
        var loops = new Dictionary<string, Loop>
        {
            [MlpBatch1] = new(mlp, MlpBenchModel.InputName, [1, 512], MlpBenchModel.OutputName, [1, 16]),
            [MlpBatch32] = new(mlp, MlpBenchModel.InputName, [32, 512], MlpBenchModel.OutputName, [32, 16]),
            [ResNet] = new(resnet, ResNet18Model.InputName, [1, 3, 224, 224], ResNet18Model.OutputName, [1, 512, 1, 1]),
        };
        try
        {
            Console.WriteLine("READY");
            while (Console.ReadLine() is { } line)
            {
                var f = line.Split(' ');
                if (f[0] == "run")
                {
                    loops[f[1]].Run(TimeSpan.FromSeconds(double.Parse(f[2], CultureInfo.InvariantCulture)), TimeSpan.FromSeconds(double.Parse(f[3], CultureInfo.InvariantCulture)));
                    Console.WriteLine("DONE");
                }
                else if (f[0] == "report")
                {
                    foreach (var (key, loop) in loops.Where(l => l.Value.Runs > 0))
                    {
                        var r = loop.Result(key);
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"{Prefix}{r.Key}|{r.Rows}|{r.Runs}|{r.RunsPerSecond:R}|{r.P50Ms:R}|{r.P99Ms:R}"));
                    }

                    Console.WriteLine("END");
                }
            }
        }
        finally
        {
            foreach (var loop in loops.Values)
            {
                loop.Dispose();
            }
        }

        return 0;
    }

    private static InferenceSession CreateSession(byte[] model)
    {
        // As OnnxRuntimeEnvironment.CreateSessionOptions does for the platform.
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, ExecutionMode = ExecutionMode.ORT_SEQUENTIAL };
        options.DisablePerSessionThreads();
        options.AddSessionConfigEntry("session.use_env_allocators", "1");
        return new InferenceSession(model, options);
    }

    private static RawResult Parse(string line)
    {
        var f = line.Trim().Split('|');
        return new RawResult(f[1], int.Parse(f[2], CultureInfo.InvariantCulture), long.Parse(f[3], CultureInfo.InvariantCulture),
            double.Parse(f[4], CultureInfo.InvariantCulture), double.Parse(f[5], CultureInfo.InvariantCulture), double.Parse(f[6], CultureInfo.InvariantCulture));
    }

    /// <summary>One model and batch size with its preallocated tensors; accumulates latencies over slices.</summary>
    private sealed class Loop : IDisposable
    {
        private readonly InferenceSession _session;
        private readonly OrtValue _input;
        private readonly OrtValue _output;
        private readonly RunOptions _runOptions = new();
        private readonly string[] _inputNames;
        private readonly string[] _outputNames;
        private readonly List<long> _latencies = new(1 << 16);
        private readonly int _rows;
        private long _measuredTicks;

        public Loop(InferenceSession session, string inputName, long[] inputShape, string outputName, long[] outputShape)
        {
            _session = session;
            _rows = (int)inputShape[0];
            _input = OrtValue.CreateTensorValueFromMemory(Inputs.Floats(checked((int)inputShape.Aggregate(1L, (a, b) => a * b)), seed: 1), inputShape);
            _output = OrtValue.CreateTensorValueFromMemory(new float[outputShape.Aggregate(1L, (a, b) => a * b)], outputShape);
            _inputNames = [inputName];
            _outputNames = [outputName];
        }

        public int Runs => _latencies.Count;

        public void Run(TimeSpan warmup, TimeSpan duration)
        {
            OrtValue[] inputs = [_input];
            OrtValue[] outputs = [_output];
            var warmEnd = Stopwatch.GetTimestamp() + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
            while (Stopwatch.GetTimestamp() < warmEnd)
            {
                _session.Run(_runOptions, _inputNames, inputs, _outputNames, outputs);
            }

            if (duration <= TimeSpan.Zero)
            {
                return;
            }

            var begin = Stopwatch.GetTimestamp();
            var end = begin + (long)(duration.TotalSeconds * Stopwatch.Frequency);
            long now;
            do
            {
                var t = Stopwatch.GetTimestamp();
                _session.Run(_runOptions, _inputNames, inputs, _outputNames, outputs);
                now = Stopwatch.GetTimestamp();
                _latencies.Add(now - t);
            }
            while (now < end);

            _measuredTicks += now - begin;
        }

        public RawResult Result(string key)
        {
            var sorted = _latencies.ToArray();
            Array.Sort(sorted);
            var seconds = (double)_measuredTicks / Stopwatch.Frequency;
            return new RawResult(key, _rows, sorted.Length, sorted.Length / seconds, LoadDriver.Percentile(sorted, 0.50), LoadDriver.Percentile(sorted, 0.99));
        }

        public void Dispose()
        {
            _input.Dispose();
            _output.Dispose();
            _runOptions.Dispose();
        }
    }
}

/// <summary>What one raw ONNX Runtime loop measured over all its slices.</summary>
internal sealed record RawResult(string Key, int Rows, long Runs, double RunsPerSecond, double P50Ms, double P99Ms)
{
    public double RowsPerSecond => RunsPerSecond * Rows;
}
