using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ServerlessInference.Onnx.Demo;

namespace ServerlessInference.Bench;

/// <summary>Cold starts on the services profile (Redis, Azurite, worker child processes), end to end: the DevHost scales
/// to zero (MinReplicas 0, short idle and stabilization windows), then one mlp-bench request is sent and timed (the
/// first answer from zero workers), then at once one resnet18 request on the worker just started, which does not hold
/// resnet18 (a model cold start on a running worker). Each cold start's stages are read from <c>/status</c>
/// (<c>cold_starts</c>, what the worker recorded). The resnet18 figure is divided by a raw ONNX Runtime session
/// creation plus one run of the same file in this process (same intra-op threads), measured between the rounds.</summary>
/// <remarks><c>dotnet run -c Release --project bench/ServerlessInference.Bench -- scale-from-zero [--rounds 10]
/// [--intra-op-threads N]</c>. Bars: mlp-bench from zero p50 ≤ 500 ms; resnet18 / raw ≤ 1.5.</remarks>
internal static class ColdStartScenario
{
    public const string Command = "scale-from-zero";

    private const double MlpBarMs = 500;
    private const double ResNetBarRatio = 1.5;

    private static readonly string[] StageOrder =
        ["scaler_noticed", "process_started", "runtime_ready", "registered", "received", "model_fetched_verified", "session_created", "first_batch_run", "answered"];

    public static async Task<int> RunAsync(string[] args)
    {
        var rounds = 10;
        var threads = Environment.ProcessorCount;
        var standby = 0;
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--rounds": rounds = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--intra-op-threads": threads = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--standby": standby = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }

        if (rounds < 1 || threads < 1 || standby < 0)
        {
            Console.Error.WriteLine("--rounds and --intra-op-threads must be at least 1, --standby at least 0");
            return 2;
        }

        var metadata = typeof(ColdStartScenario).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().ToDictionary(a => a.Key, a => a.Value);
        var repo = metadata["RepositoryRoot"]!;
        var dll = Path.Combine(repo, "src", "ServerlessInference.DevHost", "bin", metadata["Configuration"]!, "net10.0", "ServerlessInference.DevHost.dll");
        var root = Path.Combine(Path.GetTempPath(), $"si-bench-cold-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        Console.WriteLine($"scale-from-zero: services profile, {rounds} rounds of (scale to zero, one mlp-bench request, one resnet18 request); {threads} intra-op threads; {standby} standby worker(s)");
        LocalServices? services = null;
        ServerProcess? host = null;
        try
        {
            services = await LocalServices.StartAsync(repo, Path.Combine(root, "services")).ConfigureAwait(false);
            host = await ServerProcess.StartAsync(ServerProcess.DevHostName, dll, new Dictionary<string, string>
            {
                ["Inference__Redis__ConnectionString"] = services.RedisConnectionString,
                ["Inference__ModelStore__Blob__ConnectionString"] = services.BlobConnectionString,
                ["Inference__ModelStore__Root"] = Path.Combine(root, "models"),
                ["Inference__WarmPool__CacheDirectory"] = Path.Combine(root, "weights"),
                ["Inference__Worker__MaxBatchDelay"] = "00:00:00",
                ["Inference__Scaling__MinReplicas"] = "0",
                ["Inference__Scaling__MaxReplicas"] = "1",
                ["Inference__Scaling__IdleToZero"] = "00:00:01",
                ["Inference__Scaling__ScaleDownStabilization"] = "00:00:01",
                ["Inference__Onnx__IntraOpThreads"] = threads.ToString(CultureInfo.InvariantCulture),
                ["Inference__Onnx__AllowSpinning"] = "false",
                ["Inference__Workers__Standby"] = standby.ToString(CultureInfo.InvariantCulture),
            }, TimeSpan.FromSeconds(120), null, ["--profile", "services"]).ConfigureAwait(false);
            using var client = new HttpClient { BaseAddress = host.BaseUri, Timeout = TimeSpan.FromSeconds(120) };
            var mlp = RequestBody.Create(new InferenceRequest
            {
                Inputs = [InferTensor.Create(MlpBenchModel.InputName, [1, 512], Inputs.Floats(512, 1))],
            }, binary: false);
            var resnetInput = Inputs.Floats(3 * 224 * 224, 1);
            var resnet = RequestBody.Create(new InferenceRequest
            {
                Inputs = [InferTensor.Create(ResNet18Model.InputName, [1, 3, 224, 224], resnetInput)],
            }, binary: true);

            // One unmeasured round: the weights reach the workers' disk cache, as they would after any first use.
            Console.WriteLine("  unmeasured round (weights into the disk cache) ...");
            await RoundAsync(client, host, mlp, resnet, standby).ConfigureAwait(false);
            var results = new List<(Sample Mlp, Sample ResNet, double RawMs)>();
            for (var round = 1; round <= rounds; round++)
            {
                var (m, r) = await RoundAsync(client, host, mlp, resnet, standby).ConfigureAwait(false);
                var raw = RawResNetMs(threads, resnetInput);
                Console.WriteLine($"  round {round}: mlp-bench from zero {m.ClientMs:0} ms, resnet18 on a running worker {r.ClientMs:0} ms, raw session + run {raw:0} ms");
                results.Add((m, r, raw));
            }

            Console.WriteLine();
            var mlpP50 = Median(results.Select(x => x.Mlp.ClientMs));
            var ratios = results.Select(x => x.ResNet.ClientMs / x.RawMs).ToList();
            Print("mlp-bench, first answer from zero workers", results.Select(x => x.Mlp).ToList());
            Print("resnet18, first use on a running worker", results.Select(x => x.ResNet).ToList());
            Console.WriteLine($"raw ONNX Runtime resnet18 session creation + one run: p50 {Median(results.Select(x => x.RawMs)):0} ms");
            Console.WriteLine();
            var mlpPass = mlpP50 <= MlpBarMs;
            var ratioP50 = Median(ratios);
            var ratioPass = ratioP50 <= ResNetBarRatio;
            Console.WriteLine($"bar: mlp-bench from zero p50 {mlpP50:0} ms <= {MlpBarMs:0} ms: {(mlpPass ? "PASS" : "FAIL")}");
            Console.WriteLine($"bar: resnet18 first use / raw (p50 of the per-round ratios) {ratioP50:0.00} <= {ResNetBarRatio}: {(ratioPass ? "PASS" : "FAIL")}");
            return mlpPass && ratioPass ? 0 : 1;
        }
        finally
        {
            if (host is not null)
            {
                await host.DisposeAsync().ConfigureAwait(false);
            }

            if (services is not null)
            {
                await services.DisposeAsync().ConfigureAwait(false);
            }

            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
                // A child still holds a file; the temp folder is left behind.
            }
        }
    }

    /// <summary>One request's time as the client saw it, and the stages the worker recorded for it.</summary>
    private sealed record Sample(double ClientMs, double RecordedMs, IReadOnlyList<(string Stage, double Ms)> Stages);

    private static async Task<(Sample Mlp, Sample ResNet)> RoundAsync(HttpClient client, ServerProcess host, RequestBody mlp, RequestBody resnet, int standby)
    {
        await WaitForZeroWorkersAsync(client, host, standby).ConfigureAwait(false);
        var m = await TimeAsync(client, host, "v2/models/mlp-bench/infer", mlp, "mlp-bench").ConfigureAwait(false);
        var r = await TimeAsync(client, host, "v2/models/resnet18/infer", resnet, "resnet18").ConfigureAwait(false);
        return (m, r);
    }

    private static async Task WaitForZeroWorkersAsync(HttpClient client, ServerProcess host, int standby)
    {
        var started = Stopwatch.GetTimestamp();
        while (true)
        {
            using var status = JsonDocument.Parse(await client.GetStringAsync("status").ConfigureAwait(false));
            // No worker registered and no worker process left but the standbys (a drained one exits after it leaves the
            // registry; standbys are started, unregistered and take no jobs).
            if (status.RootElement.GetProperty("workers").GetArrayLength() == 0 && Freezer.Tree(host.Pid).Length <= 1 + standby)
            {
                // A quiet moment: the drained worker's exit is not part of the next measurement.
                await Task.Delay(500).ConfigureAwait(false);
                return;
            }

            if (Stopwatch.GetElapsedTime(started) > TimeSpan.FromSeconds(120))
            {
                throw new TimeoutException($"the DevHost did not scale to zero within 120 s{Environment.NewLine}{host.OutputTail}");
            }

            await Task.Delay(200).ConfigureAwait(false);
        }
    }

    private static async Task<Sample> TimeAsync(HttpClient client, ServerProcess host, string path, RequestBody body, string model)
    {
        using var message = body.ToMessage(new Uri(host.BaseUri, path));
        var sentAt = DateTimeOffset.UtcNow;
        var started = Stopwatch.GetTimestamp();
        using var response = await client.SendAsync(message).ConfigureAwait(false);
        await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
        var ms = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"POST {path} answered {(int)response.StatusCode}{Environment.NewLine}{host.OutputTail}");
        }

        // This request's cold start: the model's, queued after it was sent (one request at a time). The worker records
        // it just after storing the answer, so it may take a moment to appear.
        for (var attempt = 0; attempt < 50; attempt++)
        {
            using var status = JsonDocument.Parse(await client.GetStringAsync("status").ConfigureAwait(false));
            foreach (var coldStart in status.RootElement.GetProperty("cold_starts").EnumerateArray())
            {
                if (coldStart.GetProperty("model").GetString() == model && coldStart.GetProperty("queued_at").GetDateTimeOffset() >= sentAt.AddMilliseconds(-50))
                {
                    var stages = coldStart.GetProperty("stages_ms").EnumerateObject().Select(p => (p.Name, p.Value.GetDouble())).ToList();
                    return new Sample(ms, coldStart.GetProperty("total_ms").GetDouble(), stages);
                }
            }

            await Task.Delay(100).ConfigureAwait(false);
        }

        Console.WriteLine($"  warning: /status listed no cold start of {model} for this request");
        return new Sample(ms, double.NaN, []);
    }

    private static double RawResNetMs(int threads, float[] input)
    {
        var started = Stopwatch.GetTimestamp();
        using var options = new SessionOptions { IntraOpNumThreads = threads };
        using var session = new InferenceSession(ResNet18Model.FindFile(), options);
        using var outputs = session.Run([NamedOnnxValue.CreateFromTensor(ResNet18Model.InputName, new DenseTensor<float>(input, [1, 3, 224, 224]))]);
        return Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    }

    private static void Print(string title, IReadOnlyList<Sample> samples)
    {
        Console.WriteLine($"{title}: client p50 {Median(samples.Select(s => s.ClientMs)):0} ms, max {samples.Max(s => s.ClientMs):0} ms; "
            + $"recorded by the worker p50 {Median(samples.Select(s => s.RecordedMs)):0} ms");
        // In the worker's order (a stage one sample lacks, as a mark 10 ms ticks put before the submission, counts 0 there).
        var stages = samples.SelectMany(s => s.Stages.Select(x => x.Stage)).Distinct()
            .OrderBy(stage => Array.IndexOf(StageOrder, stage)).ToList();
        Console.WriteLine($"  {"stage",-24} {"p50 ms",8} {"max ms",8}");
        foreach (var stage in stages)
        {
            var values = samples.Select(s => s.Stages.FirstOrDefault(x => x.Stage == stage).Ms).ToList();
            Console.WriteLine($"  {stage,-24} {Median(values),8:0.0} {values.Max(),8:0.0}");
        }
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count == 0 ? double.NaN
            : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }
}
