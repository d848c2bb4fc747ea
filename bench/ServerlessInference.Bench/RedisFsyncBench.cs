using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Options;
using ServerlessInference.Jobs;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Redis;
using StackExchange.Redis;

namespace ServerlessInference.Bench;

/// <summary>What <c>appendfsync always</c> costs the gateway: async accepts per second against a Redis that syncs its
/// append-only file once a second (<c>everysec</c>, the default) and one that syncs before every reply (<c>always</c>).
/// An accept is exactly the gateway's two writes for a 202 (<see cref="IResultStore.TrackAsync"/>, then
/// <see cref="IJobQueue.EnqueueAsync"/> of an mlp-bench job), from closed-loop clients in this process: no HTTP and no
/// worker, so the figure is the Redis side alone. The two servers run side by side and are measured in interleaved
/// slices (order alternating per round); each slice starts from an empty database.</summary>
/// <remarks><c>dotnet run -c Release --project bench/ServerlessInference.Bench -- redis-fsync [--seconds 5] [--rounds 5]
/// [--concurrency 64]</c>. The data lives under the temp folder: the disk there is the disk measured.</remarks>
internal static class RedisFsyncBench
{
    public const string Command = "redis-fsync";

    private static readonly string[] Settings = ["everysec", "always"];

    public static async Task<int> RunAsync(string[] args)
    {
        var seconds = 5.0;
        var rounds = 5;
        var concurrency = 64;
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--seconds": seconds = double.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--rounds": rounds = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--concurrency": concurrency = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }

        if (seconds <= 0 || rounds < 1 || concurrency < 1)
        {
            Console.Error.WriteLine("--seconds must be positive, --rounds and --concurrency at least 1");
            return 2;
        }

        var root = Path.Combine(Path.GetTempPath(), $"si-bench-fsync-{Environment.ProcessId}");
        var repo = typeof(RedisFsyncBench).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().First(a => a.Key == "RepositoryRoot").Value!;
        var targets = new List<Target>();
        try
        {
            Console.WriteLine($"redis-fsync: async accepts (record + queue entry, mlp-bench) at concurrency {concurrency}; {rounds} interleaved rounds of {Format.Num(seconds)} s per setting; data under {root}");
            foreach (var setting in Settings)
            {
                var services = await LocalServices.StartAsync(repo, Path.Combine(root, setting), blob: false, appendFsync: setting).ConfigureAwait(false);
                targets.Add(new Target(setting, services));
            }

            var job = Job();
            foreach (var target in targets)
            {
                // Warm: connection, scripts cached on the server, the file created.
                await target.MeasureAsync(job, concurrency, TimeSpan.FromSeconds(Math.Min(1, seconds))).ConfigureAwait(false);
            }

            for (var round = 1; round <= rounds; round++)
            {
                foreach (var target in round % 2 == 1 ? targets : Enumerable.Reverse(targets))
                {
                    var (accepts, elapsed, latencies) = await target.MeasureAsync(job, concurrency, TimeSpan.FromSeconds(seconds)).ConfigureAwait(false);
                    target.Record(accepts, elapsed, latencies);
                    Console.WriteLine($"  round {round} {target.Setting,-8}: {Format.Num(accepts / elapsed.TotalSeconds, "0")} accepts/s");
                }
            }

            Console.WriteLine();
            Console.WriteLine($"| appendfsync | accepts/s | p50 ms | p99 ms | accepts |");
            Console.WriteLine($"|-------------|----------:|-------:|-------:|--------:|");
            foreach (var target in targets)
            {
                Console.WriteLine($"| {target.Setting,-11} | {Format.Num(target.Rate, "0"),9} | {Format.Num(target.Percentile(0.5), "0.00"),6} | {Format.Num(target.Percentile(0.99), "0.00"),6} | {target.Accepts,7} |");
            }

            Console.WriteLine();
            Console.WriteLine($"always / everysec accepts/s: {Format.Num(targets[1].Rate / targets[0].Rate, "0.00")}");
            return 0;
        }
        finally
        {
            foreach (var target in targets)
            {
                await target.DisposeAsync().ConfigureAwait(false);
            }

            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static InferenceJob Job() => new()
    {
        Id = InferenceJob.NewId(),
        Model = MlpBenchModel.Name,
        Version = "1",
        Request = new InferenceRequest { Inputs = [InferTensor.Create(MlpBenchModel.InputName, [1, 512], Inputs.Floats(512, 1))] },
        SubmittedAt = DateTimeOffset.UtcNow,
        Deadline = DateTimeOffset.UtcNow.AddHours(1),
    };

    private sealed class Target(string setting, LocalServices services) : IAsyncDisposable
    {
        private readonly ConnectionMultiplexer _redis = ConnectionMultiplexer.Connect(services.RedisConnectionString + ",allowAdmin=true");
        private readonly List<double> _latencies = [];
        private double _seconds;

        public string Setting => setting;

        public long Accepts { get; private set; }

        public double Rate => Accepts / _seconds;

        public void Record(long accepts, TimeSpan elapsed, List<double> latencies)
        {
            Accepts += accepts;
            _seconds += elapsed.TotalSeconds;
            _latencies.AddRange(latencies);
        }

        public double Percentile(double p)
        {
            if (_latencies.Count == 0)
            {
                return double.NaN;
            }

            _latencies.Sort();
            return _latencies[Math.Min(_latencies.Count - 1, (int)(p * _latencies.Count))];
        }

        /// <summary>Closed-loop clients for <paramref name="duration"/> on an empty database; returns what they did.</summary>
        public async Task<(long Accepts, TimeSpan Elapsed, List<double> Latencies)> MeasureAsync(InferenceJob template, int concurrency, TimeSpan duration)
        {
            await _redis.GetServers()[0].FlushDatabaseAsync().ConfigureAwait(false);
            var redisOptions = Options.Create(new RedisOptions { ConnectionString = services.RedisConnectionString, KeyPrefix = "bench:" });
            await using var queue = new RedisJobQueue(_redis, redisOptions, Options.Create(new JobQueueOptions { Capacity = int.MaxValue }), TimeProvider.System);
            await using var results = new RedisResultStore(_redis, redisOptions, Options.Create(new ResultStoreOptions()), TimeProvider.System);
            var latencies = new List<double>[concurrency];
            var clock = Stopwatch.StartNew();
            var accepts = 0L;
            await Task.WhenAll(Enumerable.Range(0, concurrency).Select(c => Task.Run(async () =>
            {
                var mine = latencies[c] = [];
                while (clock.Elapsed < duration)
                {
                    var job = new InferenceJob
                    {
                        Id = InferenceJob.NewId(),
                        Model = template.Model,
                        Version = template.Version,
                        Request = template.Request,
                        SubmittedAt = template.SubmittedAt,
                        Deadline = template.Deadline,
                    };
                    var started = Stopwatch.GetTimestamp();
                    await results.TrackAsync(job, CancellationToken.None).ConfigureAwait(false);
                    await queue.EnqueueAsync(job, CancellationToken.None).ConfigureAwait(false);
                    mine.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                    Interlocked.Increment(ref accepts);
                }
            }))).ConfigureAwait(false);
            var elapsed = clock.Elapsed;
            return (accepts, elapsed, [.. latencies.SelectMany(l => l)]);
        }

        public async ValueTask DisposeAsync()
        {
            await _redis.DisposeAsync().ConfigureAwait(false);
            await services.DisposeAsync().ConfigureAwait(false);
        }
    }
}
