using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Functions.Scaling;
using ServerlessInference.Hosting;
using ServerlessInference.Hosting.Providers;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Protocol;
using ServerlessInference.Scaling;
using ServerlessInference.Workers;

namespace ServerlessInference.Functions.Tests.Scaling;

/// <summary>The timer function's scaler decides from the same inputs as the DevHost's background scaler: depth per model
/// from the queue, warm sets and budgets from the registry, the manifests from the model catalog, and it publishes its
/// placement plan and stop-first choice. Wired as the Functions app wires it, on embedded providers.</summary>
public sealed class ScalerFunctionPlacementTests : IAsyncDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "si-functions-tests", Guid.NewGuid().ToString("N"));
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
    private readonly PerModelQueue _queue = new();
    private readonly RecordingOrchestrator _orchestrator = new();
    private readonly ServiceProvider _services;

    public ScalerFunctionPlacementTests()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Inference:ModelStore:Root"] = _root,
            ["Inference:Scaling:TargetJobsPerWorker"] = "10",
        }).Build();
        var services = new ServiceCollection()
            .AddSingleton<IConfiguration>(configuration)
            .AddSingleton<TimeProvider>(_time)
            .AddLogging();
        services.AddServerlessInference().AddProviders(ProviderChoice.Read(configuration)).AddScaler(ScalerTicks.External);

        // No queue provider on this branch counts per model yet; this one reports what such a provider would.
        services.AddSingleton<IJobQueue>(_queue);
        services.AddSingleton<IWorkerOrchestrator>(_orchestrator);
        _services = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
    }

    public async ValueTask DisposeAsync()
    {
        await _services.DisposeAsync();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private ScalerFunction Function => ActivatorUtilities.CreateInstance<ScalerFunction>(_services);

    [Fact]
    public async Task RunAsync_ColdModelQueuedAndTheOnlyWorkerFull_AsksForASecondWorker()
    {
        // One worker whose 300-byte budget is full of three models with work; 'x' (100 bytes) waits and fits nowhere.
        // Depth alone (4 jobs, 10 per worker) would keep one worker: only the per-model inputs together ask for two.
        foreach (var model in new[] { "a", "b", "c", "x" })
        {
            await UploadAsync(model);
        }

        await HeartbeatAsync("w1", "a", "b", "c");
        _orchestrator.Replicas = 1;
        _queue.ByModel = new Dictionary<string, ModelDepth>
        {
            ["a"] = new(0, 1),
            ["b"] = new(0, 1),
            ["c"] = new(0, 1),
            ["x#prefix"] = new(1, 0),
        };

        await Function.RunAsync(new TimerInfo(), default);

        var call = Assert.Single(_orchestrator.Calls);
        Assert.Equal(2, call.Replicas);
        var decision = Assert.Single(await _services.GetRequiredService<IScalingDecisionLog>().ReadRecentAsync(10, default));
        Assert.Contains("'x' has 1 queued jobs", decision.Reason);
    }

    [Fact]
    public async Task RunAsync_MinWarmModel_PublishesItsPlacementAndStopsTheOtherWorkerFirst()
    {
        await UploadAsync("a");
        await UploadAsync("kept", minWarm: 1);
        _orchestrator.Replicas = 2;
        var board = _services.GetRequiredService<IPlacementBoard>();

        // Both workers idle with room; 'kept' is warm nowhere: the first tick orders it onto w1 (first fit by id).
        await HeartbeatAsync("w1", "a");
        await HeartbeatAsync("w2", "a");
        await Function.RunAsync(new TimerInfo(), default);
        var plan = await board.ReadAsync(default);
        Assert.NotNull(plan);
        Assert.Equal([new PlacementOrder("w1", "kept")], plan.Loads);
        Assert.Equal(["kept"], plan.Keep);

        // w1 loads it. No work: after the windows the scaler keeps one worker for min_warm and names w2 (whose 'a' is
        // warm on w1 too) to stop, not w1, the only holder of 'kept'.
        for (var tick = 0; tick < 30 && _orchestrator.Calls.Count == 0; tick++)
        {
            _time.Advance(TimeSpan.FromSeconds(10));
            await HeartbeatAsync("w1", "a", "kept");
            await HeartbeatAsync("w2", "a");
            await Function.RunAsync(new TimerInfo(), default);
        }

        var call = Assert.Single(_orchestrator.Calls);
        Assert.Equal(1, call.Replicas);
        Assert.Equal(["w2"], call.StopFirst);
    }

    private async Task UploadAsync(string name, int minWarm = 0)
    {
        var manifest = new ModelManifest
        {
            Name = name,
            Sha256 = "",
            SizeBytes = 0,
            Inputs = [new TensorSpec("x", TensorDatatype.Fp32, [-1, 4])],
            Outputs = [new TensorSpec("y", TensorDatatype.Fp32, [-1, 4])],
            MinWarm = minWarm,
        };
        await _services.GetRequiredService<IModelStore>().UploadAsync(manifest, new MemoryStream(new byte[100]), default);
    }

    private ValueTask HeartbeatAsync(string id, params string[] warm) =>
        _services.GetRequiredService<IWorkerRegistry>().HeartbeatAsync(new WorkerStatus
        {
            Id = id,
            Host = "test",
            ExecutionProvider = "CPU",
            State = WorkerState.Running,
            InFlight = 0,
            WarmModels = [.. warm.Select(m => new WarmModelStatus(m, "1", 100))],
            MemoryUsedBytes = 100 * warm.Length,
            MemoryBudgetBytes = 300,
            JobsCompleted = 0,
            StartedAt = _time.GetUtcNow(),
            LastHeartbeat = _time.GetUtcNow(),
        }, default);

    /// <summary>Reports <see cref="ByModel"/> as its depth; nothing is ever received.</summary>
    private sealed class PerModelQueue : IJobQueue
    {
        public IReadOnlyDictionary<string, ModelDepth> ByModel { get; set; } = new Dictionary<string, ModelDepth>();

        public int MaxDeliveryCount => 5;

        public ValueTask EnqueueAsync(InferenceJob job, CancellationToken cancellationToken) =>
            throw new NotSupportedException("the scaler never enqueues");

        public ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(
            int maxCount, TimeSpan maxWait, JobPreference preference, CancellationToken cancellationToken) =>
            ValueTask.FromResult<IReadOnlyList<JobLease>>([]);

        public ValueTask<QueueDepth> GetDepthAsync(CancellationToken cancellationToken) =>
            ValueTask.FromResult(new QueueDepth(ByModel.Values.Sum(d => d.Queued), ByModel.Values.Sum(d => d.InFlight)) { ByModel = ByModel });
    }

    private sealed class RecordingOrchestrator : IWorkerOrchestrator
    {
        public int Replicas { get; set; }

        public List<(int Replicas, IReadOnlyList<string> StopFirst)> Calls { get; } = [];

        public ValueTask<int> GetReplicasAsync(CancellationToken cancellationToken) => ValueTask.FromResult(Replicas);

        public ValueTask SetReplicasAsync(int replicas, CancellationToken cancellationToken) => SetReplicasAsync(replicas, [], cancellationToken);

        public ValueTask SetReplicasAsync(int replicas, IReadOnlyList<string> preferredToStop, CancellationToken cancellationToken)
        {
            Calls.Add((replicas, preferredToStop));
            Replicas = replicas;
            return ValueTask.CompletedTask;
        }
    }
}
