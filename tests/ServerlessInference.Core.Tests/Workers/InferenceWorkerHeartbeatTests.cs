using Microsoft.Extensions.Logging.Abstractions;
using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Tests.TestDoubles;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Workers;

public sealed class InferenceWorkerHeartbeatTests : IDisposable
{
    private readonly WorkerRig _rig = new();

    public void Dispose() => _rig.Dispose();

    [Theory]
    [InlineData("model load")]
    [InlineData("batch")]
    public async Task RunAsync_BlockedPastTheRegistryTtl_StaysRegisteredAndBusy(string blockedIn)
    {
        _rig.Models.Add("m");
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var blocked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (blockedIn == "batch")
        {
            _rig.Engine.BeforeRun = async (_, _) =>
            {
                blocked.TrySetResult();
                await gate.Task;
            };
        }
        else
        {
            _rig.Engine.LoadGate = gate;
        }

        // The registry forgets a worker 15 s after its last heartbeat (the Redis registry's default).
        var registry = new InMemoryWorkerRegistry(_rig.Time, TimeSpan.FromSeconds(15));
        var job = await _rig.SubmitAsync("m");
        var worker = new InferenceWorker("w", _rig.Queue, _rig.Results, _rig.Pool, _rig.Catalog, registry, _rig.WorkerOptions, _rig.Time, _rig.Metrics, NullLogger.Instance);
        var run = worker.RunAsync(default);
        var giveUp = DateTime.UtcNow.AddSeconds(30);
        while (!blocked.Task.IsCompleted && _rig.Engine.Loads == 0 && DateTime.UtcNow < giveUp)
        {
            await Task.Delay(5);
        }

        // A minute passes while the loop is blocked: four registry TTLs.
        for (var i = 0; i < 24; i++)
        {
            _rig.Time.Advance(TimeSpan.FromSeconds(2.5));
            await Task.Yield();
        }

        var listed = await registry.ListAsync(default);
        gate.SetResult();
        var record = (await _rig.AwaitAllAsync([job])).Single();
        worker.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        var status = Assert.Single(listed);
        Assert.Equal("w", status.Id);
        Assert.Equal(1, status.InFlight);
        Assert.True(_rig.Time.GetUtcNow() - status.LastHeartbeat <= TimeSpan.FromSeconds(5));
        Assert.Equal(JobStatus.Succeeded, record.Status);
        Assert.Empty(await registry.ListAsync(default));
    }
}

public sealed class InferenceWorkerSlowLoadTests : IDisposable
{
    private readonly WorkerRig _rig = new();

    public void Dispose() => _rig.Dispose();

    [Fact]
    public async Task RunAsync_ModelLoadOutlastsTheLease_RenewsSoTheJobIsNotDeliveredTwice()
    {
        _rig.Models.Add("m");
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _rig.Engine.LoadGate = gate;
        var job = await _rig.SubmitAsync("m");
        var worker = _rig.Worker();
        var run = worker.RunAsync(default);
        var giveUp = DateTime.UtcNow.AddSeconds(30);
        while (_rig.Engine.Loads == 0 && DateTime.UtcNow < giveUp)
        {
            await Task.Delay(5);
        }

        // Two 30 s lease durations pass while the model loads; renewals every 10 s keep the job invisible.
        for (var i = 0; i < 12; i++)
        {
            _rig.Time.Advance(TimeSpan.FromSeconds(5));
            await Task.Yield();
        }

        Assert.Empty(await _rig.Queue.ReceiveAsync(1, TimeSpan.Zero, default));
        gate.SetResult();
        var record = (await _rig.AwaitAllAsync([job])).Single();
        worker.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(JobStatus.Succeeded, record.Status);
        Assert.Equal(1, _rig.Engine.Loads);
    }
}
