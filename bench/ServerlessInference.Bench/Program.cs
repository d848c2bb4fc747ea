using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using ServerlessInference.Bench;
using ServerlessInference.Onnx;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;

if (args.Length > 0 && args[0] == RawChild.ChildFlag)
{
    return RawChild.RunChild(args);
}

if (args.Length > 0 && args[0] == GenerationEngineBench.Command)
{
    return await GenerationEngineBench.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == PrefixCacheBench.Command)
{
    return await PrefixCacheBench.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == SpeculativeBench.Command)
{
    return await SpeculativeBench.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == ColdStartScenario.Command)
{
    return await ColdStartScenario.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == ColdStart.Command)
{
    return await ColdStart.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == MultiModelScenario.Command)
{
    return await MultiModelScenario.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == QuantizedScenario.Command)
{
    return await QuantizedScenario.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == RedisFsyncBench.Command)
{
    return await RedisFsyncBench.RunAsync(args[1..]);
}

BenchOptions options;
try
{
    options = BenchOptions.Parse(args);
}
catch (ArgumentException ex)
{
    Console.Error.WriteLine(ex.Message);
    return 2;
}

var bench = new EndToEndBench(options);
try
{
    return await bench.RunAsync();
}
finally
{
    await bench.DisposeAsync();
}

namespace ServerlessInference.Bench
{
    /// <summary>Starts every server and raw ONNX Runtime child, warms each scenario, measures them in interleaved
    /// rounds, then prints the table and the ratios against their bars. Children are killed at the end, even on
    /// failure.</summary>
    internal sealed class EndToEndBench(BenchOptions options) : IAsyncDisposable
    {
        private const string MlpPath = "v2/models/mlp-bench/infer";
        private const string ResNetPath = "v2/models/resnet18/infer";
        private static readonly long[] MlpOutputShape = [1, 16];
        private static readonly long[] ResNetOutputShape = [1, 512, 1, 1];

        private readonly string _root = Path.Combine(Path.GetTempPath(), $"si-bench-{Environment.ProcessId}");
        private readonly List<IAsyncDisposable> _children = [];
        private readonly List<Scenario> _scenarios = [];
        private readonly List<RawChild> _raw = [];
        private LocalServices? _services;
        private LocalServices? _generationRedis;
        private OnnxTextGenerationModel? _engineModel;
        private GenerationMix? _generationMix;
        private ServerProcess? _servicesHost;
        private int _devHosts;

        public async Task<int> RunAsync()
        {
            var configuration = Metadata("Configuration");
            Directory.CreateDirectory(_root);
            var loadBefore = LoadAverage();
            var busyBefore = await CpuMeter.MachineBusyCoresAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            Console.WriteLine($"ServerlessInference end-to-end bench, {DateTimeOffset.Now:yyyy-MM-dd HH:mm zzz}");
            Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription.Trim()}, {RuntimeInformation.FrameworkDescription}, {configuration} build");
            Console.WriteLine($"measured builds: {BuildInfo()}");
            Console.WriteLine($"load average at start: {loadBefore}; machine busy over 2 s before starting: {Format.Num(busyBefore, "0.00")} cores");
            if (busyBefore > 0.3)
            {
                Console.WriteLine("warning: the machine is busy; other programs inflate every figure (see 'other' in the table)");
            }

            var onlyGeneration = options.SkipRaw && options.Scenarios is { } ids && ids.All(GenerationReport.Ids.Contains);
            Console.WriteLine((onlyGeneration
                    ? $"settings: generation scenarios only ({Format.Num(options.Warmup.TotalSeconds)} s warm-up each before round 1); ONNX Runtime"
                    : $"settings: {options.Rounds} interleaved rounds; per HTTP scenario {Format.Num(options.Duration.TotalSeconds)} s measured "
                        + $"(+{Format.Num(options.SliceWarmup.TotalSeconds)} s unmeasured load before each slice, {Format.Num(options.Warmup.TotalSeconds)} s warm-up before round 1); "
                        + $"raw loops {Format.Num(options.RawDuration.TotalSeconds)} s; ONNX Runtime")
                + $" {options.IntraOpThreads} intra-op threads (shared pool), spinning off unless noted; "
                + $"ratios use {options.Workers} worker(s); children not being measured are {(options.NoFreeze ? "left running" : "stopped (SIGSTOP)")}");
            Console.WriteLine();

            Freezer.Enabled &= !options.NoFreeze;
            await StartAsync().ConfigureAwait(false);
            if (_generationMix is not null)
            {
                Console.WriteLine($"generation: lm-bench, streaming clients, mix of {_generationMix.Describe()}; per scenario {Format.Num(options.GenerationDuration.TotalSeconds)} s measured "
                    + $"in {options.GenerationRounds} rounds (+{Format.Num(options.GenerationSliceWarmup.TotalSeconds)} s unmeasured load before each slice); tokens = token events received, TTFT = send to first token event with text");
            }

            Console.WriteLine($"warming up {_scenarios.Count} scenarios ...");
            foreach (var scenario in _scenarios)
            {
                Freezer.Isolate(scenario.Pid);
                await scenario.WarmAsync(scenario is RawScenario ? TimeSpan.FromSeconds(Math.Min(1, options.Warmup.TotalSeconds)) : options.Warmup).ConfigureAwait(false);
            }

            var rounds = Math.Max(_scenarios.Any(s => s is not GenerationScenario) ? options.Rounds : 0, _generationMix is null ? 0 : options.GenerationRounds);
            for (var round = 1; round <= rounds; round++)
            {
                Console.WriteLine($"round {round}/{rounds} ...");
                var order = round % 2 == 1 ? _scenarios : Enumerable.Reverse(_scenarios);
                foreach (var scenario in order)
                {
                    if (round > (scenario is GenerationScenario ? options.GenerationRounds : options.Rounds))
                    {
                        continue;
                    }

                    var (slice, warm) = scenario switch
                    {
                        RawScenario => (options.RawDuration / options.Rounds, options.SliceWarmup / 2),
                        GenerationScenario => (options.GenerationDuration / options.GenerationRounds, options.GenerationSliceWarmup),
                        _ => (options.Duration / options.Rounds, options.SliceWarmup),
                    };
                    Freezer.Isolate(scenario.Pid);
                    await scenario.MeasureSliceAsync(warm, slice).ConfigureAwait(false);
                }
            }

            IReadOnlyList<ColdStartResult> coldStarts = [];
            if (_services is not null)
            {
                if (_servicesHost is not null)
                {
                    Console.WriteLine($"  services DevHost's worker process(es) after the rounds: {string.Join(",", Freezer.Tree(_servicesHost.Pid).Skip(1))}");
                }

                Console.WriteLine("cold start / warm restart (every child stopped; Azurite running) ...");
                Freezer.StopAll();
                coldStarts = await ColdStart.MeasureAsync(_services.BlobConnectionString, _root, options.IntraOpThreads, ["mlp-bench", "resnet18"]).ConfigureAwait(false);
            }

            Freezer.ThawAll();
            var raw = new List<(RawResult Result, RawScenario Scenario)>();
            foreach (var child in _raw)
            {
                var results = await child.ReportAsync().ConfigureAwait(false);
                raw.AddRange(results.Select(r => (r, _scenarios.OfType<RawScenario>().First(s => s.Child == child && s.Key == r.Key))));
            }

            var report = new Report(raw, [.. _scenarios.OfType<HttpScenario>()], coldStarts);
            var passed = true;
            if (raw.Count > 0 || _scenarios.OfType<HttpScenario>().Any())
            {
                Console.WriteLine();
                report.PrintTable();
                Console.WriteLine();
                passed &= report.PrintRatios(options.Workers, options.CompareWorkers);
                report.PrintErrors();
                Console.WriteLine();
                report.PrintColdStarts();
                report.PrintInternals();
            }

            var generation = _scenarios.OfType<GenerationScenario>().ToList();
            if (generation.Count > 0)
            {
                var generationReport = new GenerationReport(generation);
                Console.WriteLine();
                Console.WriteLine($"generation, lm-bench ({_generationMix!.Describe()}):");
                generationReport.PrintTable();
                Console.WriteLine();
                passed &= generationReport.PrintRatios();
                generationReport.PrintErrors();
            }

            Console.WriteLine();
            Console.WriteLine($"load average at end: {LoadAverage()} (at start: {loadBefore}; the bench's own load counts here)");
            return passed ? 0 : 1;
        }

        public async ValueTask DisposeAsync()
        {
            Freezer.ThawAll();
            foreach (var scenario in _scenarios.OfType<IDisposable>())
            {
                scenario.Dispose();
            }

            _engineModel?.Dispose();
            _engineModel = null;

            for (var i = _children.Count - 1; i >= 0; i--)
            {
                try
                {
                    await _children[i].DisposeAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is InvalidOperationException or IOException)
                {
                    Console.Error.WriteLine($"warning: stopping a child failed: {ex.Message}");
                }
            }

            if (_services is not null)
            {
                await _services.DisposeAsync().ConfigureAwait(false);
                _services = null;
            }

            if (_generationRedis is not null)
            {
                await _generationRedis.DisposeAsync().ConfigureAwait(false);
                _generationRedis = null;
            }

            try
            {
                if (Directory.Exists(_root))
                {
                    Directory.Delete(_root, recursive: true);
                }
            }
            catch (IOException)
            {
                // A child still holds a file; the temp folder is left behind.
            }
        }

        private async Task StartAsync()
        {
            var repo = Metadata("RepositoryRoot");
            var configuration = Metadata("Configuration");
            var devHostDll = Path.Combine(repo, "src", "ServerlessInference.DevHost", "bin", configuration, "net10.0", "ServerlessInference.DevHost.dll");
            var baselineDll = Path.Combine(repo, "bench", "ServerlessInference.Bench.Baseline", "bin", configuration, "net10.0", "ServerlessInference.Bench.Baseline.dll");
            var mlp = MlpBodies();
            var resnetJson = ResNetBodies(binary: false);
            var resnetBinary = ResNetBodies(binary: true);

            if (!options.SkipRaw)
            {
                foreach (var spinning in options.SkipSpinning ? [false] : new[] { false, true })
                {
                    Console.WriteLine($"starting raw ONNX Runtime child, spinning {(spinning ? "on" : "off")} ...");
                    var child = await RawChild.StartAsync(spinning, options.IntraOpThreads).ConfigureAwait(false);
                    _children.Add(child);
                    _raw.Add(child);
                    foreach (var key in new[] { RawChild.MlpBatch1, RawChild.MlpBatch32, RawChild.ResNet })
                    {
                        _scenarios.Add(new RawScenario(child, key, $"raw ONNX Runtime, {RawScenario.Describe(key)}, spinning {(spinning ? "on" : "off")}"));
                    }
                }
            }

            var wantsBatch32 = new[] { "2", "6", "5j", "5b" }.Any(options.Runs);
            foreach (var workers in wantsBatch32 ? options.CompareWorkers : [])
            {
                var host = await StartDevHostAsync(devHostDll, maxBatchSize: 32, workers, null).ConfigureAwait(false);
                var w = $"w={workers}";
                Add("2", $"DevHost mlp-bench c=64, MaxBatchSize 32, {w}", workers, host, MlpPath, mlp, 64, MlpBenchModel.OutputName, MlpOutputShape);
                Add("6", $"DevHost mlp-bench c=1, MaxBatchSize 32, {w}", workers, host, MlpPath, mlp, 1, MlpBenchModel.OutputName, MlpOutputShape);
                if (workers == options.Workers)
                {
                    Add("5j", $"DevHost resnet18 c=4, JSON tensors, {w}", workers, host, ResNetPath, resnetJson, 4, ResNet18Model.OutputName, ResNetOutputShape);
                }

                Add("5b", $"DevHost resnet18 c=4, binary tensors, {w}", workers, host, ResNetPath, resnetBinary, 4, ResNet18Model.OutputName, ResNetOutputShape);
            }

            foreach (var (name, environment) in options.Variants)
            {
                var host = await StartDevHostAsync(devHostDll, maxBatchSize: 32, options.Workers, environment).ConfigureAwait(false);
                var w = $"w={options.Workers}";
                Add("2", $"DevHost mlp-bench c=64, {name}, {w}", options.Workers, host, MlpPath, mlp, 64, MlpBenchModel.OutputName, MlpOutputShape, name);
                Add("6", $"DevHost mlp-bench c=1, {name}, {w}", options.Workers, host, MlpPath, mlp, 1, MlpBenchModel.OutputName, MlpOutputShape, name);
                Add("5b", $"DevHost resnet18 c=4, binary, {name}, {w}", options.Workers, host, ResNetPath, resnetBinary, 4, ResNet18Model.OutputName, ResNetOutputShape, name);
            }

            if (options.Runs("3"))
            {
                var host = await StartDevHostAsync(devHostDll, maxBatchSize: 1, options.Workers, null).ConfigureAwait(false);
                Add("3", $"DevHost mlp-bench c=64, MaxBatchSize 1, w={options.Workers}", options.Workers, host, MlpPath, mlp, 64, MlpBenchModel.OutputName, MlpOutputShape);
            }

            if (!options.SkipServices && new[] { "s2", "s6", "s5b" }.Any(options.Runs))
            {
                Console.WriteLine("starting Redis and Azurite ...");
                _services = await LocalServices.StartAsync(repo, Path.Combine(_root, "services")).ConfigureAwait(false);
                var redis = _services.RedisPid;
                var host = await StartDevHostAsync(devHostDll, maxBatchSize: 32, 1, new Dictionary<string, string>
                {
                    ["Inference__Redis__ConnectionString"] = _services.RedisConnectionString,
                    ["Inference__ModelStore__Blob__ConnectionString"] = _services.BlobConnectionString,
                }, services: true).ConfigureAwait(false);
                await WaitFirstInferAsync(host, MlpPath, mlp[0]).ConfigureAwait(false);
                await WaitFirstInferAsync(host, ResNetPath, resnetBinary[0]).ConfigureAwait(false);
                int[] Helpers() => [.. Freezer.Tree(host.Pid).Skip(1), redis];
                _servicesHost = host;
                Console.WriteLine($"  services DevHost pid {host.Pid}, worker process(es) {string.Join(",", Freezer.Tree(host.Pid).Skip(1))}, redis pid {redis}");
                const string w = "w=1 process";
                Add("s2", $"services mlp-bench c=64, MaxBatchSize 32, {w}", 1, host, MlpPath, mlp, 64, MlpBenchModel.OutputName, MlpOutputShape, helpers: Helpers);
                Add("s6", $"services mlp-bench c=1, MaxBatchSize 32, {w}", 1, host, MlpPath, mlp, 1, MlpBenchModel.OutputName, MlpOutputShape, helpers: Helpers);
                Add("s5b", $"services resnet18 c=4, binary tensors, {w}", 1, host, ResNetPath, resnetBinary, 4, ResNet18Model.OutputName, ResNetOutputShape, helpers: Helpers);
            }

            if (GenerationReport.Ids.Any(options.Runs))
            {
                await StartGenerationAsync(devHostDll).ConfigureAwait(false);
            }

            if (options.Runs("4") || options.Runs("4c1"))
            {
                Console.WriteLine("starting baseline ...");
                var host = await ServerProcess.StartAsync(ServerProcess.BaselineName, baselineDll, new Dictionary<string, string>(), TimeSpan.FromSeconds(120), Probe()).ConfigureAwait(false);
                _children.Add(host);
                Add("4", "baseline server mlp-bench c=64 (channel + batch loop)", null, host, MlpPath, mlp, 64, MlpBenchModel.OutputName, MlpOutputShape);
                Add("4c1", "baseline server mlp-bench c=1", null, host, MlpPath, mlp, 1, MlpBenchModel.OutputName, MlpOutputShape);
            }
        }

        /// <summary>The generation scenarios on lm-bench: DevHosts with continuous batching (g1, and g4's lone
        /// requests on the same host) and with one sequence at a time (g2), the same engine in this process (g3), and a
        /// services-profile DevHost over Redis and the folder model store (gs1).</summary>
        private async Task StartGenerationAsync(string devHostDll)
        {
            const int clients = 32;
            const string model = "lm-bench";
            var mix = _generationMix = GenerationMix.Create(GenerationMix.LmBenchTokenizer());
            var lone = mix.WithMaxTokens(4);
            static Dictionary<string, string> Sequences(int max) => new() { ["Inference__Generation__MaxConcurrentSequences"] = max.ToString(CultureInfo.InvariantCulture) };

            if (options.Runs(GenerationReport.Batched) || options.Runs(GenerationReport.Lone))
            {
                var host = await StartDevHostAsync(devHostDll, maxBatchSize: 32, 1, Sequences(clients)).ConfigureAwait(false);
                AddGeneration(GenerationReport.Batched, $"DevHost lm-bench c={clients} stream, MaxConcurrentSequences {clients}", host, null, mix, clients);
                AddGeneration(GenerationReport.Lone, "DevHost lm-bench c=1 (lone), max_tokens <= 4", host, null, lone, 1);
            }

            if (options.Runs(GenerationReport.OneAtATime))
            {
                var host = await StartDevHostAsync(devHostDll, maxBatchSize: 32, 1, Sequences(1)).ConfigureAwait(false);
                AddGeneration(GenerationReport.OneAtATime, $"DevHost lm-bench c={clients} stream, MaxConcurrentSequences 1", host, null, mix, clients);
            }

            if (options.Runs(GenerationReport.InProcess))
            {
                // The DevHost's engine settings: its ORT thread options, the default KV budget, the same batch limit.
                Console.WriteLine($"loading {model} in process (engine without HTTP or queue) ...");
                var config = DecoderLmModel.LmBench;
                var path = Path.Combine(_root, $"{model}.onnx");
                await File.WriteAllBytesAsync(path, DecoderLmModel.Build(config)).ConfigureAwait(false);
                _engineModel = await EngineModels.LoadAsync(DecoderLmModel.Manifest(config), path,
                    new ServerlessInference.Onnx.Generation.TextGenerationOptions { MaxConcurrentSequences = clients },
                    engine: new OnnxEngineOptions { IntraOpThreads = options.IntraOpThreads, AllowSpinning = false }).ConfigureAwait(false);
                Console.WriteLine($"  {model} in process on {_engineModel.ExecutionProvider}");
                _scenarios.Add(new GenerationScenario(GenerationReport.InProcess, $"engine in process lm-bench c={clients}, MaxConcurrentSeq. {clients}",
                    Environment.ProcessId, () => [], new EngineTarget(_engineModel), mix, clients));
            }

            if (options.Runs(GenerationReport.Services) && !options.SkipServices)
            {
                // Redis only: the model store is the bench's folder (the worker processes share the file system), so
                // the scenario needs no Azurite. A Redis the bench already runs is shared under another key prefix.
                var redis = _services;
                if (redis is null)
                {
                    Console.WriteLine("starting Redis ...");
                    redis = _generationRedis = await LocalServices.StartAsync(Metadata("RepositoryRoot"), Path.Combine(_root, "generation-services"), blob: false).ConfigureAwait(false);
                }

                var environment = Sequences(clients);
                environment["Inference__Redis__ConnectionString"] = redis.RedisConnectionString;
                environment["Inference__Redis__KeyPrefix"] = "si-gen:";
                environment["Inference__ModelStore__Provider"] = "Folder";
                var host = await StartDevHostAsync(devHostDll, maxBatchSize: 32, 1, environment, services: true).ConfigureAwait(false);
                var redisPid = redis.RedisPid;
                Console.WriteLine($"  services DevHost pid {host.Pid}, worker process(es) {string.Join(",", Freezer.Tree(host.Pid).Skip(1))}, redis pid {redisPid}");
                AddGeneration(GenerationReport.Services, $"services lm-bench c={clients} stream, MaxConcurrentSeq. {clients}", host,
                    () => [.. Freezer.Tree(host.Pid).Skip(1), redisPid], mix, clients);
            }

            void AddGeneration(string id, string label, ServerProcess host, Func<int[]>? helpers, GenerationMix requests, int concurrency)
            {
                if (options.Runs(id))
                {
                    _scenarios.Add(new GenerationScenario(id, label, host.Pid, helpers ?? (() => []), new SseTarget(host.BaseUri, model, concurrency), requests, concurrency));
                }
            }
        }

        private int _probes;

        /// <summary>The probe startup hook for the next server (null when not built or --no-probe).</summary>
        private (string Dll, string File)? Probe()
        {
            var dll = Path.Combine(Metadata("RepositoryRoot"), "bench", "ServerlessInference.Bench.Probe", "bin", Metadata("Configuration"), "net10.0", "ServerlessInference.Bench.Probe.dll");
            return options.NoProbe || !File.Exists(dll) ? null : (dll, Path.Combine(_root, $"probe-{++_probes}.txt"));
        }

        private void Add(string id, string label, int? workers, ServerProcess host, string path, IReadOnlyList<RequestBody> bodies, int concurrency,
            string outputName, long[] outputShape, string? variant = null, Func<int[]>? helpers = null)
        {
            if (options.Runs(id))
            {
                _scenarios.Add(new HttpScenario(variant is null ? id : $"{id}@{variant}", label, workers, host, path, bodies, concurrency, outputName, outputShape, helpers));
            }
        }

        /// <summary>Waits until <paramref name="body"/> is answered 200 (a services worker loads the model from blob
        /// storage on its first job).</summary>
        private static async Task WaitFirstInferAsync(ServerProcess host, string path, RequestBody body)
        {
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
            var url = new Uri(host.BaseUri, path);
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            string last = "";
            while (System.Diagnostics.Stopwatch.GetElapsedTime(started) < TimeSpan.FromSeconds(180))
            {
                try
                {
                    using var message = body.ToMessage(url);
                    using var response = await client.SendAsync(message).ConfigureAwait(false);
                    if (response.StatusCode == System.Net.HttpStatusCode.OK)
                    {
                        Console.WriteLine($"  first {path} answered after {System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds:0.0} s");
                        return;
                    }

                    last = $"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync().ConfigureAwait(false)}";
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    last = ex.Message;
                }

                await Task.Delay(500).ConfigureAwait(false);
            }

            throw new TimeoutException($"POST {url} did not answer 200 within 180 s; last: {last}{Environment.NewLine}{host.OutputTail}");
        }

        private async Task<ServerProcess> StartDevHostAsync(string dll, int maxBatchSize, int workers, Dictionary<string, string>? extra, bool services = false)
        {
            Console.WriteLine($"starting DevHost{(services ? " (services profile)" : "")}: MaxBatchSize {maxBatchSize}, {workers} worker(s){(extra is null ? "" : ", " + string.Join(", ", extra.Select(e => $"{e.Key}={e.Value}")))} ...");
            var environment = new Dictionary<string, string>
            {
                ["Inference__ModelStore__Root"] = Path.Combine(_root, "models"),
                ["Inference__WarmPool__CacheDirectory"] = Path.Combine(_root, $"weights-{++_devHosts}"),
                ["Inference__Worker__MaxBatchSize"] = maxBatchSize.ToString(CultureInfo.InvariantCulture),
                ["Inference__Worker__MaxBatchDelay"] = "00:00:00",
                ["Inference__Scaling__MinReplicas"] = workers.ToString(CultureInfo.InvariantCulture),
                ["Inference__Scaling__MaxReplicas"] = workers.ToString(CultureInfo.InvariantCulture),
                ["Inference__Scaling__TargetJobsPerWorker"] = "32",
                ["Inference__Onnx__IntraOpThreads"] = options.IntraOpThreads.ToString(CultureInfo.InvariantCulture),
                ["Inference__Onnx__AllowSpinning"] = "false",
            };
            foreach (var (key, value) in options.DevHostEnvironment.Concat(extra ?? []))
            {
                environment[key] = value;
            }

            // No probe in the services profile: its worker children inherit the environment and would write the same file.
            var host = await ServerProcess.StartAsync(ServerProcess.DevHostName, dll, environment, TimeSpan.FromSeconds(120), services ? null : Probe(),
                services ? ["--profile", "services"] : null).ConfigureAwait(false);
            _children.Add(host);
            return host;
        }

        private static RequestBody[] MlpBodies() =>
        [
            .. Enumerable.Range(1, 4).Select(seed => RequestBody.Create(new InferenceRequest
            {
                Id = $"mlp-{seed}",
                Inputs = [InferTensor.Create(MlpBenchModel.InputName, [1, 512], Inputs.Floats(512, seed))],
            }, binary: false)),
        ];

        private static RequestBody[] ResNetBodies(bool binary) =>
        [
            .. Enumerable.Range(1, 4).Select(seed => RequestBody.Create(new InferenceRequest
            {
                Id = $"resnet-{seed}",
                Parameters = binary ? new Dictionary<string, object> { [ParameterNames.BinaryDataOutput] = true } : null,
                Inputs = [InferTensor.Create(ResNet18Model.InputName, [1, 3, 224, 224], Inputs.Floats(3 * 224 * 224, seed))],
            }, binary)),
        ];

        private static string Metadata(string key) =>
            typeof(EndToEndBench).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == key)?.Value
            ?? throw new InvalidOperationException($"assembly metadata {key} is missing");

        /// <summary>Which code was measured: the DevHost dll's build time and the repository's commit and dirty state
        /// (other people edit src/ while the bench runs, and the bench measures whatever was last built).</summary>
        private static string BuildInfo()
        {
            var repo = Metadata("RepositoryRoot");
            var dll = Path.Combine(repo, "src", "ServerlessInference.DevHost", "bin", Metadata("Configuration"), "net10.0", "ServerlessInference.DevHost.dll");
            var built = File.Exists(dll) ? File.GetLastWriteTime(dll).ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture) : "missing";
            string Git(string arguments)
            {
                try
                {
                    var start = new System.Diagnostics.ProcessStartInfo("git", arguments) { WorkingDirectory = repo, RedirectStandardOutput = true, RedirectStandardError = true };
                    using var git = System.Diagnostics.Process.Start(start)!;
                    var output = git.StandardOutput.ReadToEnd();
                    git.WaitForExit();
                    return git.ExitCode == 0 ? output.Trim() : "?";
                }
                catch (System.ComponentModel.Win32Exception)
                {
                    return "?";
                }
            }

            var dirty = Git("status --porcelain -- src").Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
            return $"DevHost dll written {built}; git {Git("rev-parse --short HEAD")}, {dirty} changed path(s) under src/";
        }

        private static string LoadAverage()
        {
            try
            {
                return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
            }
            catch (IOException)
            {
                return "n/a";
            }
        }
    }
}
