using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Embedded;
using ServerlessInference.Models;
using ServerlessInference.Protocol;
using ServerlessInference.Scaling;
using ServerlessInference.Tests.TestDoubles;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Scaling;

/// <summary>The scaler's tick with models: the placement plan it publishes and the workers it asks to stop first.</summary>
public sealed class ScalerPlacementTests : IDisposable
{
    private readonly WorkerRig _rig = new();
    private readonly InMemoryPlacementBoard _board = new();
    private readonly RecordingOrchestrator _orchestrator = new();

    public void Dispose() => _rig.Dispose();

    [Fact]
    public async Task TickAsync_MinWarmModelWarmNowhere_PublishesAnOrderForAWorkerWithRoom()
    {
        Upload("kept", minWarm: 1);
        _orchestrator.Replicas = 1;
        await _rig.Registry.HeartbeatAsync(Status("w1"), default);

        var decision = await Scaler().TickAsync(default);

        Assert.Equal(1, decision.DesiredReplicas);
        var plan = await _board.ReadAsync(default);
        Assert.NotNull(plan);
        Assert.Equal([new PlacementOrder("w1", "kept")], plan.Loads);
        Assert.Equal(["kept"], plan.Keep);
        Assert.Equal(decision.At + PlacementPlan.Lifetime, plan.ExpiresAt);
    }

    [Fact]
    public async Task TickAsync_ScaleDown_TellsTheOrchestratorWhichWorkersToStopFirst()
    {
        _rig.Models.Add("a");
        _orchestrator.Replicas = 2;
        await _rig.Registry.HeartbeatAsync(Status("w1", "a"), default);
        await _rig.Registry.HeartbeatAsync(Status("w2"), default);
        var scaler = Scaler();

        // Idle: down after the stabilization window, to zero after the idle window; the empty worker goes first.
        for (var second = 0; second <= 40 && _orchestrator.Calls.Count == 0; second += 5)
        {
            await scaler.TickAsync(default);
            _rig.Time.Advance(TimeSpan.FromSeconds(5));
        }

        var call = Assert.Single(_orchestrator.Calls);
        Assert.Equal(0, call.Replicas);
        Assert.Equal(["w2", "w1"], call.StopFirst);
    }

    [Fact]
    public async Task SetReplicasAsync_InProcessWithAPreference_StopsThePreferredIdleWorkers()
    {
        await using var orchestrator = new InProcessWorkerOrchestrator(id => _rig.Worker(id), NullLogger<InProcessWorkerOrchestrator>.Instance);
        await orchestrator.SetReplicasAsync(3, default);

        await orchestrator.SetReplicasAsync(1, ["worker-3", "worker-1"], default);

        // Without the preference the idlest-first rule (all idle) would keep worker-3.
        Assert.Equal("worker-2", Assert.Single(orchestrator.Workers).Id);
    }

    [Theory]
    [InlineData(0, "w1", 1)]
    [InlineData(0, "w3", int.MaxValue)]
    [InlineData(2, "w1", int.MaxValue)]
    public void Preference_BusyOrUnnamedWorkers_GoAfterTheNamedIdleOnes(int inFlight, string worker, int expected) =>
        Assert.Equal(expected, InProcessWorkerOrchestrator.Preference(["w2", "w1"], worker, inFlight));

    private Scaler Scaler() => new(
        _rig.Queue,
        _rig.Registry,
        _orchestrator,
        new InMemoryScalingDecisionLog(),
        Options.Create(new ScalingOptions { MaxReplicas = 4, TargetJobsPerWorker = 10, ScaleDownStabilization = TimeSpan.FromSeconds(10), IdleToZero = TimeSpan.FromSeconds(10) }),
        _rig.Time,
        _rig.Metrics,
        NullLogger<Scaler>.Instance,
        _rig.Catalog,
        _board);

    private void Upload(string name, int minWarm)
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
        _rig.Models.Store.UploadAsync(manifest, new MemoryStream(new byte[100]), default).AsTask().GetAwaiter().GetResult();
    }

    private WorkerStatus Status(string id, params string[] warm) => new()
    {
        Id = id,
        Host = "test",
        ExecutionProvider = "FAKE",
        State = WorkerState.Running,
        InFlight = 0,
        WarmModels = [.. warm.Select(m => new WarmModelStatus(m, "1", 100))],
        MemoryUsedBytes = 100 * warm.Length,
        MemoryBudgetBytes = 1000,
        JobsCompleted = 0,
        StartedAt = _rig.Time.GetUtcNow(),
        LastHeartbeat = _rig.Time.GetUtcNow(),
    };

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
