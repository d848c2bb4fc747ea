using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Scaling;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Scaling;

public sealed class ScalerTests : IDisposable
{
    private readonly WorkerRig _rig = new(maxBatchSize: 10);

    public void Dispose() => _rig.Dispose();

    [Fact]
    public async Task TickAsync_Burst_ScalesZeroToNToZeroAndNeverStopsABusyWorker()
    {
        _rig.Models.Add("m");
        await using var orchestrator = new InProcessWorkerOrchestrator(id => _rig.Worker(id), NullLogger<InProcessWorkerOrchestrator>.Instance);
        var decisions = new InMemoryScalingDecisionLog();
        var scaler = new Scaler(
            _rig.Queue,
            _rig.Registry,
            orchestrator,
            decisions,
            Options.Create(new ScalingOptions
            {
                MaxReplicas = 4,
                TargetJobsPerWorker = 10,
                ScaleDownStabilization = TimeSpan.FromSeconds(30),
                IdleToZero = TimeSpan.FromSeconds(60),
            }),
            _rig.Time,
            _rig.Metrics,
            NullLogger<Scaler>.Instance);

        Assert.Equal(0, (await scaler.TickAsync(default)).DesiredReplicas);

        // Every batch waits at a gate; the batch holding job 0 waits at a gate of its own.
        var main = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _rig.Engine.BeforeRun = (requests, _) => requests.Any(r => r.Inputs[0].AsSpan<float>()[0] == 0f) ? held.Task : main.Task;
        try
        {
            await RunBurstAsync(scaler, orchestrator, main, held);
            Assert.Contains(await decisions.ReadRecentAsync(50, default), d => d.DesiredReplicas == 0 && d.CurrentReplicas == 1);
        }
        finally
        {
            // A failed assertion must not leave workers parked at a gate (disposing the orchestrator drains them).
            main.TrySetResult();
            held.TrySetResult();
        }
    }

    private async Task RunBurstAsync(Scaler scaler, InProcessWorkerOrchestrator orchestrator, TaskCompletionSource main, TaskCompletionSource held)
    {
        var jobs = new List<InferenceJob>();
        for (var i = 0; i < 40; i++)
        {
            jobs.Add(await _rig.SubmitAsync("m", seed: i * 10));
        }

        var up = await scaler.TickAsync(default);
        Assert.Equal(4, up.DesiredReplicas);
        Assert.Equal(4, orchestrator.Workers.Count);
        await WaitUntilAsync(async () => (await _rig.Queue.GetDepthAsync(default)).InFlight == 40);

        main.SetResult();
        await WaitUntilAsync(async () => (await _rig.Queue.GetDepthAsync(default)).InFlight < 40
            && (await _rig.Queue.GetDepthAsync(default)).InFlight == orchestrator.Workers.Sum(w => w.InFlight)
            && orchestrator.Workers.Count(w => w.InFlight > 0) == 1);
        var busy = orchestrator.Workers.Single(w => w.InFlight > 0);

        // The load is now one held batch: after the stabilization window the scaler goes down to that one worker.
        var decisions = new List<ScalingDecision>();
        for (var second = 5; second <= 40; second += 5)
        {
            _rig.Time.Advance(TimeSpan.FromSeconds(5));
            decisions.Add(await scaler.TickAsync(default));
        }

        Assert.All(decisions, d => Assert.True(d.DesiredReplicas >= 1));
        Assert.Equal(1, decisions[^1].DesiredReplicas);
        Assert.Same(busy, Assert.Single(orchestrator.Workers));
        Assert.True(busy.InFlight > 0);

        held.SetResult();
        var records = await _rig.AwaitAllAsync(jobs);
        Assert.All(records, r => Assert.Equal(JobStatus.Succeeded, r.Status));

        // Idle: to zero only after the idle window.
        for (var second = 5; second <= 70; second += 5)
        {
            _rig.Time.Advance(TimeSpan.FromSeconds(5));
            await scaler.TickAsync(default);
        }

        Assert.Equal(0, await orchestrator.GetReplicasAsync(default));
        Assert.Equal(40, records.Length);
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var giveUp = DateTime.UtcNow.AddSeconds(30);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < giveUp, "condition not met in 30 s");
            await Task.Delay(2);
        }
    }
}
