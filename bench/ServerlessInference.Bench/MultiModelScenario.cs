using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Reflection;
using System.Text.Json;
using ServerlessInference.Embedded;
using ServerlessInference.Onnx.Demo;

namespace ServerlessInference.Bench;

/// <summary>Issue 13's bench: many models on few workers. Twelve MLPs built in code (about 38 MB each), three worker
/// processes per side whose warm-pool budget holds three models each, Zipf traffic over the models whose popularity
/// ranks are permuted every period, a closed loop of 32 clients. The same platform runs twice in one invocation, with
/// <c>Inference:Worker:Affinity</c> on and off, measured in interleaved rounds; the ratios on / off of model loads per
/// 1,000 requests, throughput and the coldest quarter's p99 are checked against the issue's bars.</summary>
/// <remarks>Services profile: a DevHost (gateway and scaler) per side over one redis-server (a key prefix per side)
/// and a folder model store, its workers child processes with warm pools of their own, as on a real cluster.
/// <c>dotnet run -c Release --project bench/ServerlessInference.Bench -- multi-model [--seconds 60] [--quick]</c>.</remarks>
internal static class MultiModelScenario
{
    public const string Command = "multi-model";

    private const double LoadsBar = 0.25;
    private const double ThroughputBar = 1.5;
    private const double ColdP99Bar = 1.0;
    private static readonly long[] OutputShape = [1, 16];

    public static async Task<int> RunAsync(string[] args)
    {
        MultiModelOptions options;
        try
        {
            options = MultiModelOptions.Parse(args);
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine(ex.Message);
            return 2;
        }

        var metadata = typeof(MultiModelScenario).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().ToDictionary(a => a.Key, a => a.Value);
        var repo = metadata["RepositoryRoot"]!;
        var dll = Path.Combine(repo, "src", "ServerlessInference.DevHost", "bin", metadata["Configuration"]!, "net10.0", "ServerlessInference.DevHost.dll");
        var root = Path.Combine(Path.GetTempPath(), $"si-bench-multi-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        Freezer.Enabled &= !options.NoFreeze;
        LocalServices? redis = null;
        var sides = new List<Side>();
        try
        {
            var busyBefore = await CpuMeter.MachineBusyCoresAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(false);
            Console.WriteLine($"multi-model bench, {DateTimeOffset.Now:yyyy-MM-dd HH:mm zzz}, {Environment.ProcessorCount} cores, load average {LoadAverage()}, "
                + $"machine busy over 2 s before starting: {Format.Num(busyBefore, "0.00")} cores");
            var modelBytes = await WriteModelsAsync(Path.Combine(root, "models"), options).ConfigureAwait(false);
            var budget = modelBytes * options.PoolModels + modelBytes / 2;
            var zipf = new ZipfSampler(options.Models, options.Exponent);
            Console.WriteLine($"{options.Models} models mm-01.. (MLP 512→2048×3→16, {modelBytes / 1e6:0.0} MB each); {options.Workers} worker processes per side, "
                + $"warm pool {budget / 1e6:0.0} MB each ({options.PoolModels} models); Zipf exponent {Format.Num(options.Exponent, "0.##")} "
                + $"(hottest rank {Percent(zipf.Probability(0))}, coldest quarter {Percent(ColdShare(zipf))} of requests); ranks permuted every "
                + $"{Format.Num(options.Period.TotalSeconds)} s; closed loop c={options.Concurrency}; {Format.Num(options.Duration.TotalSeconds)} s measured per side "
                + $"in {options.Rounds} interleaved rounds after {Format.Num(options.Warmup.TotalSeconds)} s warm-up; {options.IntraOpThreads} intra-op thread(s) per worker");

            Console.WriteLine("starting Redis ...");
            redis = await LocalServices.StartAsync(repo, Path.Combine(root, "redis"), blob: false).ConfigureAwait(false);
            var bodies = Bodies();
            foreach (var affinity in new[] { true, false })
            {
                var side = new Side(affinity, options);
                sides.Add(side);
                await side.StartAsync(dll, root, redis, budget).ConfigureAwait(false);
            }

            foreach (var side in sides)
            {
                Freezer.Isolate(side.Pid);
                await side.WarmAsync(bodies, zipf).ConfigureAwait(false);
            }

            var slice = options.Duration / options.Rounds;
            for (var round = 1; round <= options.Rounds; round++)
            {
                Console.WriteLine($"round {round}/{options.Rounds} ...");
                foreach (var side in round % 2 == 1 ? sides : Enumerable.Reverse(sides))
                {
                    Freezer.Isolate(side.Pid);
                    await side.MeasureSliceAsync(bodies, zipf, slice, redis.RedisPid).ConfigureAwait(false);
                }
            }

            // The load lines of a side stopped right after its slice arrive once it runs again.
            Freezer.ThawAll();
            await Task.Delay(TimeSpan.FromSeconds(1.5)).ConfigureAwait(false);
            foreach (var side in sides)
            {
                await side.ReadLoadsAsync(end: true).ConfigureAwait(false);
            }

            Console.WriteLine();
            return Report(sides[0], sides[1], zipf) ? 0 : 1;
        }
        finally
        {
            Freezer.ThawAll();
            foreach (var side in sides)
            {
                await side.DisposeAsync().ConfigureAwait(false);
            }

            if (redis is not null)
            {
                await redis.DisposeAsync().ConfigureAwait(false);
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

    public static string ModelName(int index) => $"mm-{index + 1:00}";

    /// <summary>Builds the models (the same layers as mlp-bench, a seed each) into a folder model store; returns the
    /// size of one.</summary>
    private static async Task<long> WriteModelsAsync(string folder, MultiModelOptions options)
    {
        Console.WriteLine($"building {options.Models} models ...");
        var store = new FolderModelStore(folder);
        long bytes = 0;
        for (var i = 0; i < options.Models; i++)
        {
            using var weights = new MemoryStream(MlpBenchModel.Build([.. MlpBenchModel.DefaultLayerSizes], MlpBenchModel.DefaultSeed + 1 + i), writable: false);
            var manifest = await store.UploadAsync(MlpBenchModel.Manifest() with { Name = ModelName(i) }, weights, CancellationToken.None).ConfigureAwait(false);
            bytes = Math.Max(bytes, manifest.SizeBytes);
        }

        return bytes;
    }

    private static RequestBody[] Bodies() =>
    [
        .. Enumerable.Range(1, 4).Select(seed => RequestBody.Create(new InferenceRequest
        {
            Inputs = [InferTensor.Create(MlpBenchModel.InputName, [1, 512], Inputs.Floats(512, seed))],
        }, binary: false)),
    ];

    private static double ColdShare(ZipfSampler zipf) =>
        Enumerable.Range(ColdQuarter.FirstRank(zipf.Count), zipf.Count - ColdQuarter.FirstRank(zipf.Count)).Sum(zipf.Probability);

    private static bool Report(Side on, Side off, ZipfSampler zipf)
    {
        Console.WriteLine($"multi-model, {on.Options.Models} models on {on.Options.Workers} worker processes per side (services profile), c={on.Options.Concurrency}");
        Console.WriteLine();
        Console.WriteLine("| side         | requests | throughput req/s | p50 ms | p99 ms | cold-quarter p99 ms (n) | model loads | loads / 1k req | server CPU ms/req | other programs |");
        Console.WriteLine("|--------------|---------:|-----------------:|-------:|-------:|------------------------:|------------:|---------------:|------------------:|---------------:|");
        foreach (var side in new[] { on, off })
        {
            Console.WriteLine($"| {side.Name,-12} | {side.Answered,8} | {Format.Num(side.Throughput),16} | {Format.Num(side.Percentile(0.50, coldOnly: false), "0.00"),6} "
                + $"| {Format.Num(side.Percentile(0.99, coldOnly: false), "0.00"),6} | {$"{Format.Num(side.Percentile(0.99, coldOnly: true), "0.00")} ({side.ColdCount})",23} "
                + $"| {Format.Num(side.Loads, "0"),11} | {Format.Num(side.LoadsPerThousand, "0.00"),14} | {Format.Num(side.ServerCpuMs, "0.00"),17} | {Format.Num(side.OtherCores, "0.00") + " cores",14} |");
        }

        Console.WriteLine();
        foreach (var side in new[] { on, off })
        {
            Console.WriteLine($"{side.Name}: loads from {side.LoadsSource}; per model {side.LoadsByModel()}; "
                + $"coldest quarter {Percent(side.ColdCount / (double)Math.Max(1, side.SampleCount))} of requests (Zipf: {Percent(ColdShare(zipf))})");
            if (side.Errors > 0)
            {
                Console.WriteLine($"  INVALID: {side.Errors} request(s) failed, e.g. {string.Join(" | ", side.ErrorSamples)}");
            }
        }

        var valid = on.Errors == 0 && off.Errors == 0 && on.Answered > 0 && off.Answered > 0;
        Console.WriteLine();
        Console.WriteLine("| ratio, affinity on / off                  |  value | bar     | verdict | from |");
        Console.WriteLine("|-------------------------------------------|-------:|---------|---------|------|");
        var passed = Ratio("model loads per 1,000 requests", on.LoadsPerThousand, off.LoadsPerThousand, "<= 0.25", r => r <= LoadsBar, "0.00");
        passed &= Ratio("throughput", on.Throughput, off.Throughput, ">= 1.5", r => r >= ThroughputBar, "0.0");
        passed &= Ratio("p99 latency of the coldest quarter (ms)", on.Percentile(0.99, true), off.Percentile(0.99, true), "<= 1.0", r => r <= ColdP99Bar, "0.00");
        return passed && valid;

        bool Ratio(string what, double? a, double? b, string bar, Func<double, bool> pass, string format)
        {
            double? ratio = a is double x && b is double y && y > 0 ? x / y : null;
            var verdict = !valid ? "INVALID" : ratio is double r && pass(r) ? "PASS" : "FAIL";
            Console.WriteLine($"| {what,-41} | {Format.Num(ratio, "0.00"),6} | {bar,-7} | {verdict,-7} | {Format.Num(a, format)} / {Format.Num(b, format)} |");
            return verdict == "PASS";
        }
    }

    private static string Percent(double share) => (share * 100).ToString("0.0", CultureInfo.InvariantCulture) + "%";

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

    /// <summary>One request sent during a measured slice: its model, the model's rank when it was sent, its latency.</summary>
    private readonly record struct Sample(int Model, int Rank, double Milliseconds);

    /// <summary>One platform under test (a DevHost with its worker processes), affinity on or off, and what it measured.</summary>
    private sealed class Side(bool affinity, MultiModelOptions options) : IAsyncDisposable
    {
        private readonly HttpClient _client = LoadDriver.CreateClient(options.Concurrency);
        private readonly HotSetSchedule _schedule = new(options.Models, options.Period, options.Seed);
        private readonly BenchRandom[] _random = [.. Enumerable.Range(0, options.Concurrency).Select(i => new BenchRandom(options.Seed + 1 + (ulong)i))];
        private readonly ConcurrentBag<Sample[]> _samples = [];
        private readonly ConcurrentQueue<string> _errorSamples = new();
        private readonly ConcurrentDictionary<string, int> _loggedLoads = new(StringComparer.Ordinal);
        private ServerProcess? _host;
        private Sample[]? _all;
        private TimeSpan _clock;
        private long _answeredInWindow;
        private long _answered;
        private long _errors;
        private double _otherCoreSeconds;
        private double _wallSeconds;
        private double _serverCpuSeconds;
        private bool _cpuKnown = true;
        private Dictionary<string, int>? _loggedBefore;
        private Dictionary<string, int>? _loggedAfter;
        private Dictionary<string, double>? _metricsBefore;
        private Dictionary<string, double>? _metricsAfter;
        private string _metricsRead = "n/a";
        private bool _metricsFromGateway;

        public MultiModelOptions Options => options;

        public string Name => affinity ? "affinity on" : "affinity off";

        public int Pid => _host?.Pid ?? 0;

        public long Answered => Interlocked.Read(ref _answered);

        public long Errors => Interlocked.Read(ref _errors);

        public IReadOnlyList<string> ErrorSamples => [.. _errorSamples.Take(3)];

        public double? Throughput => _clock > TimeSpan.Zero ? Interlocked.Read(ref _answeredInWindow) / _clock.TotalSeconds : null;

        public double? OtherCores => _wallSeconds > 0 ? _otherCoreSeconds / _wallSeconds : null;

        public double? ServerCpuMs => _cpuKnown && Answered > 0 ? _serverCpuSeconds * 1000 / Answered : null;

        private Sample[] All => _all ??= [.. _samples.SelectMany(s => s)];

        public int SampleCount => All.Length;

        public int ColdCount => All.Count(s => ColdQuarter.Contains(s.Rank, options.Models));

        /// <summary>The platform's own count when its workers export <see cref="ModelLoadCounts.Metric"/>, else the
        /// warm pool's load log lines.</summary>
        private Dictionary<string, double>? LoadDelta
        {
            get
            {
                if (_metricsAfter is not null)
                {
                    return _metricsAfter.ToDictionary(p => p.Key, p => p.Value - (_metricsBefore?.GetValueOrDefault(p.Key) ?? 0));
                }

                return _loggedAfter?.ToDictionary(p => p.Key, p => (double)(p.Value - (_loggedBefore?.GetValueOrDefault(p.Key) ?? 0)));
            }
        }

        public string LoadsSource
        {
            get
            {
                var logged = _loggedAfter is null ? "n/a" : Format.Num(_loggedAfter.Sum(p => p.Value - (_loggedBefore?.GetValueOrDefault(p.Key) ?? 0)), "0");
                return _metricsAfter is not null
                    ? $"{(_metricsFromGateway ? "the gateway's" : "the workers'")} /metrics {ModelLoadCounts.Metric} (warm-pool log lines counted meanwhile: {logged})"
                    : $"the workers' warm-pool log lines 'Loaded <model>' (no worker exports {ModelLoadCounts.Metric}; /metrics read from {_metricsRead} worker processes)";
            }
        }

        public double? Loads => LoadDelta?.Values.Sum();

        public double? LoadsPerThousand => Loads is double loads && Answered > 0 ? loads * 1000 / Answered : null;

        public string LoadsByModel() => LoadDelta is { } delta
            ? string.Join(", ", delta.Where(p => p.Value != 0).OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key} {Format.Num(p.Value, "0")}"))
            : "n/a";

        /// <summary>Nearest-rank percentile of the latencies of every request sent during a measured slice (all of the
        /// coldest quarter's with <paramref name="coldOnly"/>), in milliseconds.</summary>
        public double? Percentile(double p, bool coldOnly)
        {
            var sorted = All.Where(s => !coldOnly || ColdQuarter.Contains(s.Rank, options.Models)).Select(s => s.Milliseconds).Order().ToArray();
            return sorted.Length == 0 ? null : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
        }

        public async Task StartAsync(string dll, string root, LocalServices redis, long budget)
        {
            var tag = affinity ? "on" : "off";
            var environment = new Dictionary<string, string>
            {
                ["Inference__Redis__ConnectionString"] = redis.RedisConnectionString,
                ["Inference__Redis__KeyPrefix"] = $"si-mm-{tag}:",
                ["Inference__ModelStore__Provider"] = "Folder",
                ["Inference__ModelStore__Root"] = Path.Combine(root, "models"),
                ["Inference__DemoModels__Seed"] = "false",
                ["Inference__WarmPool__CacheDirectory"] = Path.Combine(root, $"weights-{tag}"),
                ["Inference__WarmPool__BudgetBytes"] = budget.ToString(CultureInfo.InvariantCulture),
                ["Inference__Worker__MaxBatchSize"] = "32",
                ["Inference__Worker__MaxBatchDelay"] = "00:00:00",
                ["Inference__Worker__Affinity"] = affinity ? "true" : "false",
                ["Inference__Scaling__MinReplicas"] = options.Workers.ToString(CultureInfo.InvariantCulture),
                ["Inference__Scaling__MaxReplicas"] = options.Workers.ToString(CultureInfo.InvariantCulture),
                ["Inference__Onnx__IntraOpThreads"] = options.IntraOpThreads.ToString(CultureInfo.InvariantCulture),
                ["Inference__Onnx__AllowSpinning"] = "false",
            };
            Console.WriteLine($"starting DevHost (services profile), {Name}: Inference__Worker__Affinity={environment["Inference__Worker__Affinity"]} ...");
            _host = await ServerProcess.StartAsync(ServerProcess.DevHostName, dll, environment, TimeSpan.FromSeconds(120), null, ["--profile", "services"]).ConfigureAwait(false);
            _host.LineWritten += line =>
            {
                if (ModelLoadCounts.ModelOfLogLine(line) is { } model)
                {
                    _loggedLoads.AddOrUpdate(model, 1, (_, n) => n + 1);
                }
            };
        }

        /// <summary>Waits for the workers, checks every model answers, runs the warm-up load, then reads the load
        /// counters the measured figures start from.</summary>
        public async Task WarmAsync(IReadOnlyList<RequestBody> bodies, ZipfSampler zipf)
        {
            var host = _host!;
            await WaitForWorkersAsync(host).ConfigureAwait(false);
            for (var model = 0; model < options.Models; model++)
            {
                await LoadDriver.VerifyAsync(_client, Url(model), [bodies[model % bodies.Count]], MlpBenchModel.OutputName, OutputShape).ConfigureAwait(false);
            }

            // Own random streams, so the measured ones start at the same place on both sides; the first period's order.
            var random = Enumerable.Range(0, options.Concurrency).Select(i => new BenchRandom(~(options.Seed + (ulong)i))).ToArray();
            await RunAsync(bodies, zipf, random, options.Warmup, clock: TimeSpan.Zero, measured: false).ConfigureAwait(false);
            await Task.Delay(TimeSpan.FromSeconds(1)).ConfigureAwait(false); // the warm-up's last load lines
            await ReadLoadsAsync(end: false).ConfigureAwait(false);
            Console.WriteLine($"  {Name}: warm (DevHost pid {host.Pid}, workers {string.Join(",", Freezer.Tree(host.Pid).Skip(1))})");
        }

        public async Task MeasureSliceAsync(IReadOnlyList<RequestBody> bodies, ZipfSampler zipf, TimeSpan slice, int redisPid)
        {
            int[] measured = [.. Freezer.Tree(Pid), redisPid];
            var cpu = new CpuMeter(measured, ServerProcess.LivePids());
            var started = Stopwatch.GetTimestamp();
            await RunAsync(bodies, zipf, _random, slice, _clock, measured: true).ConfigureAwait(false);
            var wall = Stopwatch.GetElapsedTime(started);
            cpu.Sample();
            _clock += slice;
            if (cpu.OtherCores is double other)
            {
                _otherCoreSeconds += other * wall.TotalSeconds;
                _wallSeconds += wall.TotalSeconds;
            }

            var servers = measured.Select((_, i) => cpu.ProcessSeconds(i)).ToArray();
            if (servers.All(s => s is not null))
            {
                _serverCpuSeconds += servers.Sum(s => s!.Value);
            }
            else
            {
                _cpuKnown = false;
            }
        }

        /// <summary>Reads the load counters: every worker process's <c>/metrics</c> (summed), and the log lines so far.</summary>
        public async Task ReadLoadsAsync(bool end)
        {
            var logged = new Dictionary<string, int>(_loggedLoads, StringComparer.Ordinal);
            Dictionary<string, double>? metrics = null;
            var workers = Freezer.Tree(Pid).Skip(1).ToList();
            var reached = 0;
            foreach (var worker in workers)
            {
                var (answered, counts) = await WorkerMetricsAsync(worker).ConfigureAwait(false);
                reached += answered ? 1 : 0;
                if (counts is not null)
                {
                    metrics ??= new Dictionary<string, double>(StringComparer.Ordinal);
                    foreach (var (model, value) in counts)
                    {
                        metrics[model] = metrics.GetValueOrDefault(model) + value;
                    }
                }
            }

            _metricsRead = $"{reached} of {workers.Count}";
            _metricsFromGateway = false;
            if (metrics is null)
            {
                // A gateway that sums its workers' counters (from their heartbeats) would export it there instead.
                var (_, gateway) = await MetricsAsync(_host!.BaseUri).ConfigureAwait(false);
                metrics = gateway;
                _metricsFromGateway = gateway is not null;
            }

            if (end)
            {
                _loggedAfter = logged;
                _metricsAfter = metrics;
            }
            else
            {
                _loggedBefore = logged;
                _metricsBefore = metrics;
            }
        }

        /// <summary>A worker's <see cref="ModelLoadCounts.Metric"/> series, from the <c>/metrics</c> of the port it
        /// listens on (the orchestrator lets the OS choose it, so it is read from /proc): whether one answered, and the
        /// series (null when it has none).</summary>
        private async Task<(bool Answered, Dictionary<string, double>? Counts)> WorkerMetricsAsync(int pid)
        {
            foreach (var port in ListeningPorts(pid))
            {
                var read = await MetricsAsync(new Uri($"http://127.0.0.1:{port}/")).ConfigureAwait(false);
                if (read.Answered)
                {
                    return read;
                }
            }

            return (false, null);
        }

        private async Task<(bool Answered, Dictionary<string, double>? Counts)> MetricsAsync(Uri baseUri)
        {
            try
            {
                using var response = await _client.GetAsync(new Uri(baseUri, "metrics")).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return (true, ModelLoadCounts.FromPrometheus(await response.Content.ReadAsStringAsync().ConfigureAwait(false)));
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
                // Not an HTTP port (a worker may listen on more than one), or gone.
            }

            return (false, null);
        }

        /// <summary>The loopback TCP ports <paramref name="pid"/> listens on: its socket inodes (/proc/PID/fd) matched
        /// against the listening sockets of /proc/net/tcp and tcp6. Linux only; elsewhere none.</summary>
        private static List<int> ListeningPorts(int pid)
        {
            var ports = new List<int>();
            try
            {
                var inodes = new HashSet<string>(StringComparer.Ordinal);
                foreach (var fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
                {
                    if (new FileInfo(fd).LinkTarget is { } target && target.StartsWith("socket:[", StringComparison.Ordinal))
                    {
                        inodes.Add(target[8..^1]);
                    }
                }

                foreach (var table in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
                {
                    foreach (var line in File.ReadLines(table).Skip(1))
                    {
                        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
                        var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                        if (fields.Length > 9 && fields[3] == "0A" && inodes.Contains(fields[9]))
                        {
                            ports.Add(int.Parse(fields[1][(fields[1].LastIndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture));
                        }
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
            {
                // Gone meanwhile, or not Linux.
            }

            return ports;
        }

        private Uri Url(int model) => new(_host!.BaseUri, $"v2/models/{ModelName(model)}/infer");

        /// <summary>The closed loop: each client draws a rank, finds the model that holds it at this point of the side's
        /// clock, sends, and sends again as soon as the answer arrives, until <paramref name="duration"/> is over.</summary>
        private async Task RunAsync(IReadOnlyList<RequestBody> bodies, ZipfSampler zipf, BenchRandom[] random, TimeSpan duration, TimeSpan clock, bool measured)
        {
            var started = Stopwatch.GetTimestamp();
            var end = started + (long)(duration.TotalSeconds * Stopwatch.Frequency);

            async Task LoopAsync(int client)
            {
                var samples = new List<Sample>(1024);
                var next = client;
                while (true)
                {
                    var sent = Stopwatch.GetTimestamp();
                    if (sent >= end)
                    {
                        break;
                    }

                    var elapsed = clock + Stopwatch.GetElapsedTime(started, sent);
                    var rank = zipf.Sample(random[client]);
                    var model = _schedule.ModelAt(rank, elapsed);
                    try
                    {
                        using var message = bodies[next++ % bodies.Count].ToMessage(Url(model));
                        using var response = await _client.SendAsync(message, HttpCompletionOption.ResponseContentRead).ConfigureAwait(false);
                        var received = Stopwatch.GetTimestamp();
                        if (response.StatusCode != HttpStatusCode.OK)
                        {
                            var text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
                            Fail($"{ModelName(model)}: {(int)response.StatusCode} {text[..Math.Min(text.Length, 200)]}");
                        }
                        else if (measured)
                        {
                            Interlocked.Increment(ref _answered);
                            if (received <= end)
                            {
                                Interlocked.Increment(ref _answeredInWindow);
                            }

                            samples.Add(new Sample(model, rank, Stopwatch.GetElapsedTime(sent, received).TotalMilliseconds));
                        }
                    }
                    catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
                    {
                        Fail($"{ModelName(model)}: {ex.GetType().Name}: {ex.Message}");
                    }
                }

                if (measured)
                {
                    _samples.Add([.. samples]);
                }
            }

            await Task.WhenAll(Enumerable.Range(0, options.Concurrency).Select(i => Task.Run(() => LoopAsync(i)))).ConfigureAwait(false);
            _all = null;
        }

        private void Fail(string what)
        {
            Interlocked.Increment(ref _errors);
            if (_errorSamples.Count < 5)
            {
                _errorSamples.Enqueue(what);
            }
        }

        private async Task WaitForWorkersAsync(ServerProcess host)
        {
            var started = Stopwatch.GetTimestamp();
            while (true)
            {
                using var status = JsonDocument.Parse(await _client.GetStringAsync(new Uri(host.BaseUri, "status")).ConfigureAwait(false));
                var registered = status.RootElement.GetProperty("workers").GetArrayLength();
                if (registered >= options.Workers)
                {
                    return;
                }

                if (Stopwatch.GetElapsedTime(started) > TimeSpan.FromSeconds(180))
                {
                    throw new TimeoutException($"{Name}: {registered} of {options.Workers} workers registered after 180 s{Environment.NewLine}{host.OutputTail}");
                }

                await Task.Delay(250).ConfigureAwait(false);
            }
        }

        public async ValueTask DisposeAsync()
        {
            _client.Dispose();
            if (_host is not null)
            {
                await _host.DisposeAsync().ConfigureAwait(false);
            }
        }
    }
}
