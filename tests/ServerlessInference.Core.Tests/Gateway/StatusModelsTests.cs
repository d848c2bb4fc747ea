using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Gateway;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Tests.TestDoubles;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Gateway;

/// <summary><c>/status</c> per model: the queue's per-model depth, the workers holding the model warm, the loads and
/// evictions the workers report, and the manifest's sharing settings.</summary>
public sealed class StatusModelsTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
    private readonly TempModelStore _models = new();

    public void Dispose() => _models.Dispose();

    private WorkerStatus Worker(string id, string[] warm, params ModelActivity[] activity) => new()
    {
        Id = id,
        Host = "h",
        ExecutionProvider = "CPU",
        State = WorkerState.Running,
        InFlight = 0,
        WarmModels = [.. warm.Select(m => new WarmModelStatus(m, "1", 100))],
        RecentModelActivity = activity,
        MemoryUsedBytes = 100,
        MemoryBudgetBytes = 1000,
        JobsCompleted = 0,
        StartedAt = _time.GetUtcNow(),
        LastHeartbeat = _time.GetUtcNow(),
    };

    private async Task<JsonElement> StatusAsync(QueueDepth depth)
    {
        var registry = new InMemoryWorkerRegistry(_time);
        await registry.HeartbeatAsync(Worker("w1", ["hot", "cold"], new ModelActivity("hot", 2, 0), new ModelActivity("cold", 1, 1)), default);
        _time.Advance(TimeSpan.FromSeconds(1));
        await registry.HeartbeatAsync(Worker("w2", ["hot"], new ModelActivity("hot", 1, 0), new ModelActivity("gone", 0, 3)), default);

        var services = new ServiceCollection()
            .AddSingleton<IJobQueue>(new FixedDepthQueue(depth))
            .AddSingleton<IWorkerRegistry>(registry)
            .AddSingleton(new ModelCatalog(_models.Store, _time))
            .BuildServiceProvider();
        var report = await StatusReport.BuildAsync(services, default);
        return JsonDocument.Parse(report).RootElement.Clone();
    }

    private static JsonElement Model(JsonElement status, string name) =>
        status.GetProperty("models").EnumerateArray().Single(m => m.GetProperty("model").GetString() == name);

    [Fact]
    public async Task BuildAsync_PerModel_QueueWarmWorkersActivityAndManifestSettings()
    {
        var hot = _models.Add("hot");
        await _models.Store.UploadAsync(hot with { Version = "2", Weight = 3, MinWarm = 1, MaxWorkers = 2, MaxQueued = 50, Sha256 = "", SizeBytes = 0 },
            new MemoryStream(new byte[100]), default);
        _models.Add("cold");
        _models.Add("idle");
        var depth = new QueueDepth(7, 3)
        {
            ByModel = new Dictionary<string, ModelDepth> { ["hot"] = new(5, 2), ["cold"] = new(2, 1) },
        };

        var status = await StatusAsync(depth);

        Assert.Equal(300, status.GetProperty("model_activity_window_seconds").GetDouble());
        Assert.Equal(["cold", "gone", "hot", "idle"], status.GetProperty("models").EnumerateArray().Select(m => m.GetProperty("model").GetString()));
        var hotStatus = Model(status, "hot");
        Assert.Equal(5, hotStatus.GetProperty("queued").GetInt64());
        Assert.Equal(2, hotStatus.GetProperty("in_flight").GetInt64());
        Assert.Equal(["w1", "w2"], hotStatus.GetProperty("warm_workers").EnumerateArray().Select(w => w.GetString()));
        Assert.Equal(3, hotStatus.GetProperty("recent_loads").GetInt32());
        Assert.Equal(0, hotStatus.GetProperty("recent_evictions").GetInt32());
        // The latest version's manifest speaks for the model.
        Assert.Equal(3, hotStatus.GetProperty("weight").GetDouble());
        Assert.Equal(1, hotStatus.GetProperty("min_warm").GetInt32());
        Assert.Equal(2, hotStatus.GetProperty("max_workers").GetInt32());
        Assert.Equal(50, hotStatus.GetProperty("max_queued").GetInt32());

        var cold = Model(status, "cold");
        Assert.Equal(2, cold.GetProperty("queued").GetInt64());
        Assert.Equal(["w1"], cold.GetProperty("warm_workers").EnumerateArray().Select(w => w.GetString()));
        Assert.Equal(1, cold.GetProperty("recent_loads").GetInt32());
        Assert.Equal(1, cold.GetProperty("recent_evictions").GetInt32());
        Assert.Equal(JsonValueKind.Null, cold.GetProperty("max_workers").ValueKind);

        var idle = Model(status, "idle");
        Assert.Equal(0, idle.GetProperty("queued").GetInt64());
        Assert.Empty(idle.GetProperty("warm_workers").EnumerateArray());
        Assert.Equal(1, idle.GetProperty("weight").GetDouble());

        // A model a worker reports but the store no longer lists: its counts, no settings.
        var gone = Model(status, "gone");
        Assert.Equal(3, gone.GetProperty("recent_evictions").GetInt32());
        Assert.Equal(JsonValueKind.Null, gone.GetProperty("weight").ValueKind);

        // The existing fields stay.
        Assert.Equal(7, status.GetProperty("queue").GetProperty("queued").GetInt64());
        Assert.Equal(2, status.GetProperty("workers").GetArrayLength());
    }

    [Fact]
    public async Task BuildAsync_QueueWithoutPerModelDepth_WritesNullCounts()
    {
        _models.Add("hot");

        var status = await StatusAsync(new QueueDepth(4, 0));

        var hot = Model(status, "hot");
        Assert.Equal(JsonValueKind.Null, hot.GetProperty("queued").ValueKind);
        Assert.Equal(JsonValueKind.Null, hot.GetProperty("in_flight").ValueKind);
        Assert.Equal(2, hot.GetProperty("warm_workers").GetArrayLength());
    }

    /// <summary>A queue that only reports a depth.</summary>
    private sealed class FixedDepthQueue(QueueDepth depth) : IJobQueue
    {
        public int MaxDeliveryCount => 3;

        public ValueTask EnqueueAsync(InferenceJob job, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, CancellationToken cancellationToken) =>
            throw new NotSupportedException();

        public ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, JobPreference preference, CancellationToken cancellationToken) =>
            throw new NotSupportedException();

        public ValueTask<QueueDepth> GetDepthAsync(CancellationToken cancellationToken) => ValueTask.FromResult(depth);
    }
}
