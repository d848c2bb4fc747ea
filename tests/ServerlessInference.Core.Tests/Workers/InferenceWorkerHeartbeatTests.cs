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
