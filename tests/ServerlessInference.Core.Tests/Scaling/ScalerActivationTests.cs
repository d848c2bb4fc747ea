using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Embedded;
using ServerlessInference.Hosting;
using ServerlessInference.Scaling;
using ServerlessInference.Tests.TestDoubles;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Scaling;

/// <summary>A job that no worker can take wakes the scaler at once, not at its next tick (Knative's activator).</summary>
public sealed class ScalerActivationTests : IDisposable
{
    private readonly WorkerRig _rig = new();
    private readonly CountingOrchestrator _orchestrator = new();

    public void Dispose() => _rig.Dispose();

    [Fact]
    public async Task Nudge_JobIntoAnEmptyFleet_ScalesUpWithoutTheClockReachingTheNextTick()
    {
        var options = Options.Create(new ScalingOptions { TickInterval = TimeSpan.FromSeconds(10), TargetJobsPerWorker = 10 });
        var scaler = new Scaler(_rig.Queue, _rig.Registry, _orchestrator, new InMemoryScalingDecisionLog(), options, _rig.Time, _rig.Metrics,
            NullLogger<Scaler>.Instance);
        using var service = new ScalerService(scaler, _orchestrator, options, _rig.Time, NullLogger<ScalerService>.Instance, _rig.Registry);
        await service.StartAsync(default);
        try
        {
            // The first tick runs at start on an empty queue: nothing to do.
            await _orchestrator.WaitForGetsAsync(1);
            Assert.Equal(0, _orchestrator.Replicas);

            await _rig.SubmitAsync("m");
            service.Nudge();

            // The clock never moves: only the activation can have ticked.
            await _orchestrator.WaitForSetAsync();
        }
        finally
        {
            await service.StopAsync(default);
        }

        Assert.Equal(1, _orchestrator.Replicas);
    }

    [Fact]
    public void Needed_IdleRunningWorker_IsNo_BusyDrainingOrNone_IsYes()
    {
        var t0 = _rig.Time.GetUtcNow();
        WorkerStatus Worker(WorkerState state, int inFlight) => new()
        {
            Id = Guid.NewGuid().ToString(), Host = "h", ExecutionProvider = "CPU", State = state, InFlight = inFlight, WarmModels = [],
            MemoryUsedBytes = 0, MemoryBudgetBytes = 1, JobsCompleted = 0, StartedAt = t0, LastHeartbeat = t0,
        };

        Assert.True(ScaleActivation.Needed([]));
        Assert.True(ScaleActivation.Needed([Worker(WorkerState.Running, 3), Worker(WorkerState.Draining, 0)]));
        Assert.False(ScaleActivation.Needed([Worker(WorkerState.Running, 3), Worker(WorkerState.Running, 0)]));
    }

    private sealed class CountingOrchestrator : IWorkerOrchestrator
    {
        private readonly SemaphoreSlim _gets = new(0);
        private readonly SemaphoreSlim _sets = new(0);
        private int _getsSeen;

        public int Replicas { get; private set; }

        public ValueTask<int> GetReplicasAsync(CancellationToken cancellationToken)
        {
            _gets.Release();
            return ValueTask.FromResult(Replicas);
        }

        public ValueTask SetReplicasAsync(int replicas, CancellationToken cancellationToken)
        {
            Replicas = replicas;
            _sets.Release();
            return ValueTask.CompletedTask;
        }

        public async Task WaitForGetsAsync(int count)
        {
            while (_getsSeen < count)
            {
                Assert.True(await _gets.WaitAsync(TimeSpan.FromSeconds(30)), "the scaler did not tick");
                _getsSeen++;
            }
        }

        public async Task WaitForSetAsync() =>
            Assert.True(await _sets.WaitAsync(TimeSpan.FromSeconds(30)), "the scaler did not scale");
    }
}
