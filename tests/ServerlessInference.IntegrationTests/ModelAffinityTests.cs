using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Embedded;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Testing.Services;
using ServerlessInference.Workers;
using Xunit.Abstractions;

namespace ServerlessInference.IntegrationTests;

/// <summary>Issue 13 across processes: three worker processes over Redis, five generated models, warm pools that hold
/// two each. Affinity keeps the loads far below what FIFO causes, and a job is never stuck waiting for the one worker
/// holding its model. A Redis and a platform of this test's own, with a folder model store (no Azurite needed); the
/// workers are child processes of the DevHost, as in the services profile.</summary>
[Trait("Category", "Integration")]
public sealed partial class ModelAffinityTests(ITestOutputHelper output)
{
    private const int WorkerCount = 3;
    private const int ModelCount = 5;
    private const int PoolModels = 2;
    private const int Requests = 600;
    private const int Concurrency = 8;
    private static readonly int[] LayerSizes = [512, 256, 16];

    // Long enough that a worker stalled by a busy machine does not make its jobs overdue.
    private static readonly TimeSpan AffinityWait = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan HeartbeatInterval = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);

    // A sixth model, never sent in the traffic: the ghost worker below holds it.
    private const string GhostModel = "aff-ghost";
    private const string GhostId = "ghost-worker";

    private static string ModelName(int index) => $"aff-{index + 1}";

    [Fact]
    public async Task ThreeWorkerProcessesFiveModelsPoolsOfTwo_AffinityKeepsLoadsLow_AndNoJobWaitsForOneWorkerPastTheAffinityWait()
    {
        var root = Path.Combine(Path.GetTempPath(), "si-integration-tests", "affinity-" + Guid.NewGuid().ToString("N")[..8]);
        var sessions = new Dictionary<string, InferenceSession>(StringComparer.Ordinal);
        try
        {
            // Five MLPs of the same shape, a seed each; a direct ONNX Runtime session of each for the expected outputs.
            var store = new FolderModelStore(Path.Combine(root, "models"));
            long modelBytes = 0;
            foreach (var (name, i) in Enumerable.Range(0, ModelCount).Select(ModelName).Append(GhostModel).Select((name, i) => (name, i)))
            {
                var weights = MlpBenchModel.Build(LayerSizes, seed: 1300 + i);
                var manifest = await store.UploadAsync(
                    MlpBenchModel.Manifest(layerSizes: LayerSizes) with { Name = name }, new MemoryStream(weights, writable: false), CancellationToken.None);
                modelBytes = Math.Max(modelBytes, manifest.SizeBytes);
                sessions[name] = new InferenceSession(weights, new SessionOptions { IntraOpNumThreads = 1 });
            }

            // Room for two models, not three.
            var budget = modelBytes * PoolModels + modelBytes / 2;
            await using var redis = await RedisServer.StartAsync();
            await using var host = new PlatformHost(redis.ConnectionString, "UseDevelopmentStorage=true", WorkerCount, new Dictionary<string, string?>
            {
                ["Inference:ModelStore:Provider"] = "Folder",
                ["Inference:ModelStore:Root"] = Path.Combine(root, "models"),
                ["Inference:DemoModels:Seed"] = "false",
                ["Inference:WarmPool:BudgetBytes"] = budget.ToString(CultureInfo.InvariantCulture),
                ["Inference:Worker:Affinity"] = "true",
                ["Inference:Worker:AffinityWait"] = AffinityWait.ToString(),
                ["Inference:Worker:HeartbeatInterval"] = HeartbeatInterval.ToString(),
                ["Inference:Worker:PollInterval"] = PollInterval.ToString(),
            });
            var workers = await host.StartAsync(PlatformFixture.StartTimeout);
            using var client = host.CreateClient();
            client.Timeout = TimeSpan.FromSeconds(60);
            var clock = Stopwatch.StartNew();

            // Placement: one request at a time for each model no worker holds warm, until every model is warm somewhere.
            // A worker heartbeats as soon as its batch is done and nothing waits, so /status shows its warm set at once
            // (a pass that reads it a moment early only sends one more request before the measured part).
            var seed = 0;
            for (var pass = 0; ; pass++)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(300));
                var cold = ColdModels(await PlatformHost.GetStatusAsync(client));
                if (cold.Count == 0)
                {
                    break;
                }

                Assert.True(pass < 10, $"after {pass} passes {string.Join(", ", cold)} were still warm on no worker\n{host.Logs.Tail()}");
                foreach (var model in cold)
                {
                    await InferAsync(client, sessions, model, seed++);
                }
            }

            // Every worker's view of the others (read at most once per heartbeat interval, by a loop that polls once per
            // poll interval) is now newer than the placement.
            await Task.Delay(HeartbeatInterval + PollInterval);
            var before = await StatusAfterHeartbeatsAsync(client, host, workers);
            output.WriteLine($"placed at {clock.Elapsed.TotalSeconds:F1} s: {Placement(before)}; loads so far {Loads(before)}");

            // Uniform traffic over the five models (a fixed seed), closed loop.
            var random = new Random(20261204);
            var work = Enumerable.Range(0, Requests).Select(i => (Model: ModelName(random.Next(ModelCount)), Seed: 1000 + i)).ToList();
            var failures = new ConcurrentQueue<string>();
            await Parallel.ForEachAsync(work, new ParallelOptions { MaxDegreeOfParallelism = Concurrency }, async (item, _) =>
            {
                if (await TryInferAsync(client, sessions, item.Model, item.Seed) is { } failure)
                {
                    failures.Enqueue(failure);
                }
            });
            Assert.True(failures.IsEmpty, $"{failures.Count} of {Requests} requests failed, e.g.\n{string.Join("\n", failures.Take(5))}\n{host.Logs.Tail()}");

            var after = await StatusAfterHeartbeatsAsync(client, host, workers);
            var loads = Loads(after) - Loads(before);
            output.WriteLine($"{Requests} requests at {clock.Elapsed.TotalSeconds:F1} s: {loads} loads ({loads * 1000.0 / Requests:F1} per 1,000); {Placement(after)}");

            // The bound, from the setup. Without affinity a worker takes whatever is next, and a job's model is warm there
            // with chance PoolModels / ModelCount = 2/5 at best: with batches of a few jobs over five models, most batches
            // load something, hundreds of loads for 600 requests. With affinity a worker loads only a model no live worker
            // holds (none, once placed) or a job that waited AffinityWait; every worker loading every model once,
            // ModelCount × WorkerCount = 15 (1 in 40 requests), is already far more than that allows.
            Assert.True(loads <= ModelCount * WorkerCount,
                $"{loads} model loads for {Requests} requests (bound {ModelCount * WorkerCount}); before: {Placement(before)}; after: {Placement(after)}\n"
                + string.Join("\n", host.Logs.Matching(" Loaded ").TakeLast(40)));

            // No job waits for one worker: a worker that holds a model warm and never takes a job (a registry entry the
            // test keeps fresh, so no view ever drops it as stale). Every real worker sees the model warm elsewhere and
            // leaves its jobs to that worker; once they have waited AffinityWait one of them takes them and loads it.
            var registry = host.Services.GetRequiredService<IWorkerRegistry>();
            using var stopGhost = new CancellationTokenSource();
            var ghost = HeartbeatGhostAsync(registry, GhostModel, stopGhost.Token);
            try
            {
                await WaitUntilWarmOnAsync(client, host, GhostModel, GhostId);
                var loadLinesBefore = LoadLines(host, GhostModel).Count;
                var waited = Stopwatch.StartNew();
                var answers = await Task.WhenAll(Enumerable.Range(0, 4).Select(i => TryInferAsync(client, sessions, GhostModel, 5000 + i)));
                output.WriteLine($"{GhostModel}'s jobs, warm only on {GhostId} (which takes none), answered in {waited.Elapsed.TotalSeconds:F1} s");
                Assert.All(answers, failure => Assert.Null(failure));

                // They waited for the worker holding the model (a lower bound: a slow machine only makes it longer), then a
                // real worker loaded it.
                Assert.True(waited.Elapsed >= AffinityWait, $"answered in {waited.Elapsed.TotalSeconds:F2} s: the jobs did not wait for {GhostId}");
                var loadedBy = LoadLines(host, GhostModel).Skip(loadLinesBefore).Select(WorkerOfLine).ToList();
                Assert.Contains(loadedBy, id => workers.Any(w => w.Id == id));
            }
            finally
            {
                await stopGhost.CancelAsync();
                await ghost;
                await registry.RemoveAsync(GhostId, CancellationToken.None);
            }

            output.WriteLine($"done at {clock.Elapsed.TotalSeconds:F1} s");
        }
        finally
        {
            foreach (var session in sessions.Values)
            {
                session.Dispose();
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

    /// <summary>One synchronous request; fails the test unless it answers the direct run's output.</summary>
    private static async Task InferAsync(HttpClient client, Dictionary<string, InferenceSession> sessions, string model, int seed)
    {
        var failure = await TryInferAsync(client, sessions, model, seed);
        Assert.Null(failure);
    }

    /// <summary>One synchronous request; null when it answered the direct run's output, else what went wrong.</summary>
    private static async Task<string?> TryInferAsync(HttpClient client, Dictionary<string, InferenceSession> sessions, string model, int seed)
    {
        var input = Oip.Deterministic(512, seed);
        try
        {
            using var response = await client.SendAsync(Oip.Infer(model, Oip.MlpRequest(input, $"{model}-{seed}")));
            if (response.StatusCode != HttpStatusCode.OK)
            {
                return $"{model} seed {seed}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}";
            }

            var result = await Oip.ReadResponseAsync(response);
            float[] expected;
            lock (sessions[model])
            {
                expected = Oip.RunDirect(sessions[model], Oip.MlpInput, [1, 512], input);
            }

            return Oip.Mismatch(expected, result.Outputs[0].AsSpan<float>()) is { } mismatch ? $"{model} seed {seed}: {mismatch}" : null;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return $"{model} seed {seed}: {ex.GetType().Name} {ex.Message}";
        }
    }

    /// <summary><c>/status</c> once every worker has heartbeated after this call began, so its per-model view (warm
    /// workers, recent loads) includes everything the workers did before it.</summary>
    private static async Task<JsonElement> StatusAfterHeartbeatsAsync(HttpClient client, PlatformHost host, IReadOnlyList<(string Id, int ProcessId)> workers)
    {
        var since = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var status = await PlatformHost.GetStatusAsync(client);
            var beats = status.GetProperty("workers").EnumerateArray()
                .ToDictionary(w => w.GetProperty("id").GetString()!, w => w.GetProperty("last_heartbeat").GetDateTimeOffset());
            if (workers.All(w => beats.TryGetValue(w.Id, out var beat) && beat > since))
            {
                return status;
            }

            Assert.True(clock.Elapsed < HeartbeatInterval * 4, $"not every worker heartbeated in {(HeartbeatInterval * 4).TotalSeconds} s: {status}\n{host.Logs.Tail()}");
            await Task.Delay(100);
        }
    }

    private static List<string> ColdModels(JsonElement status)
    {
        var warm = status.GetProperty("models").EnumerateArray()
            .Where(m => m.GetProperty("warm_workers").GetArrayLength() > 0)
            .Select(m => m.GetProperty("model").GetString()!)
            .ToHashSet(StringComparer.Ordinal);
        return [.. Enumerable.Range(0, ModelCount).Select(ModelName).Where(m => !warm.Contains(m))];
    }

    /// <summary>Loads of the test's models in the workers' recent activity, as <c>/status</c> sums them.</summary>
    private static long Loads(JsonElement status) => status.GetProperty("models").EnumerateArray()
        .Sum(m => m.GetProperty("recent_loads").GetInt64());

    private static string Placement(JsonElement status) => string.Join("; ", status.GetProperty("workers").EnumerateArray().Select(w =>
        $"{w.GetProperty("id").GetString()} [{string.Join(",", w.GetProperty("warm_models").EnumerateArray().Select(m => m.GetProperty("model").GetString()))}]"));

    /// <summary>The warm pool's load lines of <paramref name="model"/> that worker processes wrote (forwarded as
    /// <c>[worker-id] ...</c>).</summary>
    private static List<string> LoadLines(PlatformHost host, string model) =>
        [.. host.Logs.Matching($"Loaded {model}/").Where(l => LoadedLine().IsMatch(l))];

    private static string? WorkerOfLine(string line) => WorkerPrefix().Match(line) is { Success: true } match ? match.Groups["id"].Value : null;

    /// <summary>Heartbeats a worker that holds <paramref name="model"/> warm and takes no job, every 200 ms until
    /// cancelled.</summary>
    private static async Task HeartbeatGhostAsync(IWorkerRegistry registry, string model, CancellationToken cancellationToken)
    {
        var started = DateTimeOffset.UtcNow;
        while (!cancellationToken.IsCancellationRequested)
        {
            await registry.HeartbeatAsync(new WorkerStatus
            {
                Id = GhostId,
                Host = "nowhere",
                ExecutionProvider = "CPU",
                State = WorkerState.Running,
                InFlight = 0,
                WarmModels = [new WarmModelStatus(model, "1", 1)],
                MemoryUsedBytes = 1,
                MemoryBudgetBytes = 1,
                JobsCompleted = 0,
                StartedAt = started,
                LastHeartbeat = DateTimeOffset.UtcNow,
            }, CancellationToken.None);
            try
            {
                await Task.Delay(200, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Waits until <c>/status</c> shows <paramref name="model"/> warm on <paramref name="workerId"/> alone, and
    /// then one heartbeat interval and one poll more, so every worker's view of the others (read at most once per
    /// heartbeat interval) has it.</summary>
    private static async Task WaitUntilWarmOnAsync(HttpClient client, PlatformHost host, string model, string workerId)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var status = await PlatformHost.GetStatusAsync(client);
            var warmOn = status.GetProperty("models").EnumerateArray()
                .Where(m => m.GetProperty("model").GetString() == model)
                .SelectMany(m => m.GetProperty("warm_workers").EnumerateArray().Select(w => w.GetString()))
                .ToList();
            if (warmOn.SequenceEqual([workerId]))
            {
                break;
            }

            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"{model} not shown warm on {workerId} alone: {status}\n{host.Logs.Tail()}");
            await Task.Delay(100);
        }

        await Task.Delay(HeartbeatInterval + PollInterval);
    }

    // WarmPool's "Loaded {Model} ({Bytes} bytes) in {Milliseconds:F0} ms on {Provider}", Model being "name/version".
    [GeneratedRegex(@"\bLoaded [^\s/]+/\S+ \(\d+ bytes\) in \d+ ms on ")]
    private static partial Regex LoadedLine();

    [GeneratedRegex(@"\[(?<id>[^\]]+)\] ")]
    private static partial Regex WorkerPrefix();
}
