using ServerlessInference.Jobs;
using ServerlessInference.Tests.TestDoubles;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Workers;

/// <summary>A worker loop with affinity over the embedded queue: it takes the jobs of the model it holds warm before an
/// older job of a model another worker holds warm, and takes that job too once it has waited the affinity wait.</summary>
public sealed class WorkerAffinityTests : IDisposable
{
    private readonly WorkerRig _rig = new();

    public void Dispose() => _rig.Dispose();

    /// <summary>Another worker (not running here) that holds <paramref name="model"/> warm, as the registry shows it.</summary>
    private ValueTask RegisterOtherWorkerAsync(string model) => _rig.Registry.HeartbeatAsync(new WorkerStatus
    {
        Id = "other",
        Host = "elsewhere",
        ExecutionProvider = "CPU",
        State = WorkerState.Running,
        InFlight = 0,
        WarmModels = [new WarmModelStatus(model, "1", 100)],
        MemoryUsedBytes = 100,
        MemoryBudgetBytes = 1000,
        JobsCompleted = 0,
        StartedAt = _rig.Time.GetUtcNow(),
        LastHeartbeat = _rig.Time.GetUtcNow(),
    }, default);

    private async Task<(InferenceJob Older, InferenceJob Warm)> ArrangeAsync()
    {
        var x = _rig.Models.Add("x");
        _rig.Models.Add("y");
        using (await _rig.Pool.AcquireAsync(x, default))
        {
            // x is warm in this worker's pool from now on.
        }

        await RegisterOtherWorkerAsync("y");
        var older = await _rig.SubmitAsync("y");
        _rig.Time.Advance(TimeSpan.FromMilliseconds(10));
        var warm = await _rig.SubmitAsync("x");
        return (older, warm);
    }

    [Fact]
    public async Task RunAsync_ModelWarmHere_TakesItsJobBeforeAnOlderJobWarmOnAnotherWorker()
    {
        var (older, warm) = await ArrangeAsync();
        var worker = _rig.Worker("me");
        var run = worker.RunAsync(default);

        var done = Assert.Single(await _rig.AwaitAllAsync([warm]));

        Assert.Equal(JobStatus.Succeeded, done.Status);
        // The older job waits for the worker holding y warm; the fake clock has not reached its affinity wait.
        Assert.Equal(JobStatus.Queued, (await _rig.Results.GetAsync(older.Id, default))!.Status);
        Assert.Equal(["x"], _rig.Pool.Snapshot().Select(m => m.Name));

        // No job waits for one worker for longer than the affinity wait: then this worker takes it and loads y.
        _rig.Time.Advance(_rig.WorkerOptions.AffinityWait);
        Assert.Equal(JobStatus.Succeeded, Assert.Single(await _rig.AwaitAllAsync([older])).Status);
        Assert.Contains("y", _rig.Pool.Snapshot().Select(m => m.Name));

        // The heartbeat carries the load (x was loaded before the worker started, by the test).
        await WaitUntilAsync(async () => (await _rig.Registry.ListAsync(default)).FirstOrDefault(w => w.Id == "me") is { } me
            && me.RecentModelActivity.Contains(new ModelActivity("y", 1, 0)));
        worker.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>Models x (warm in this worker's pool from now on) and y (cold), each of <paramref name="size"/> bytes, in
    /// the rig's 1 MiB pool: at 600 kB loading y evicts x, at 100 kB both fit.</summary>
    private async Task WarmXBesideColdYAsync(int size)
    {
        var x = _rig.Models.Add("x", size: size);
        _rig.Models.Add("y", size: size);
        using (await _rig.Pool.AcquireAsync(x, default))
        {
        }
    }

    [Fact]
    public async Task RunAsync_PoolFull_LeavesAColdModelsJobForTheLoadWaitThenLoadsIt()
    {
        await WarmXBesideColdYAsync(600_000);
        var cold = await _rig.SubmitAsync("y");
        _rig.Time.Advance(TimeSpan.FromMilliseconds(10));
        var warm = await _rig.SubmitAsync("x");
        var worker = _rig.Worker("me");
        var run = worker.RunAsync(default);

        Assert.Equal(JobStatus.Succeeded, Assert.Single(await _rig.AwaitAllAsync([warm])).Status);
        // y is warm nowhere, but taking its job would evict x: it waits for the load wait, which the clock has not reached.
        Assert.Equal(JobStatus.Queued, (await _rig.Results.GetAsync(cold.Id, default))!.Status);
        Assert.Equal(["x"], _rig.Pool.Snapshot().Select(m => m.Name));

        _rig.Time.Advance(_rig.WorkerOptions.LoadWait);
        Assert.Equal(JobStatus.Succeeded, Assert.Single(await _rig.AwaitAllAsync([cold])).Status);
        Assert.Equal(["y"], _rig.Pool.Snapshot().Select(m => m.Name));
        worker.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task RunAsync_PoolFullButItsModelUnusedForTheLoadWait_LoadsAColdModelAtOnce()
    {
        await WarmXBesideColdYAsync(600_000);
        // x has gone unused for the load wait: evicting it costs no model in demand.
        _rig.Time.Advance(_rig.WorkerOptions.LoadWait);
        var cold = await _rig.SubmitAsync("y");
        var worker = _rig.Worker("me");
        var run = worker.RunAsync(default);

        // No more time passes: the job is taken without waiting.
        Assert.Equal(JobStatus.Succeeded, Assert.Single(await _rig.AwaitAllAsync([cold])).Status);
        Assert.Equal(["y"], _rig.Pool.Snapshot().Select(m => m.Name));
        worker.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task RunAsync_PoolWithRoom_TakesAColdModelsJobAtOnce()
    {
        await WarmXBesideColdYAsync(100_000);
        var cold = await _rig.SubmitAsync("y");
        var worker = _rig.Worker("me");
        var run = worker.RunAsync(default);

        // No time passes: with room in the pool the load evicts nothing, so the job is not held back.
        Assert.Equal(JobStatus.Succeeded, Assert.Single(await _rig.AwaitAllAsync([cold])).Status);
        Assert.Equal(["x", "y"], _rig.Pool.Snapshot().Select(m => m.Name).Order());
        worker.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task RunAsync_AffinityOff_TakesAJobWarmOnAnotherWorkerWithoutWaiting()
    {
        _rig.WorkerOptions.Affinity = false;
        var (older, warm) = await ArrangeAsync();
        var worker = _rig.Worker("me");
        var run = worker.RunAsync(default);

        // FIFO, as before affinity: the job of the model warm elsewhere is taken with no time passing (with affinity on it
        // would wait for the fake clock to reach the affinity wait, and this would time out).
        var records = await _rig.AwaitAllAsync([older, warm]);
        worker.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.All(records, r => Assert.Equal(JobStatus.Succeeded, r.Status));
    }

    /// <summary>Yields until <paramref name="condition"/> holds; the real-time bound only stops a hung test.</summary>
    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var bound = System.Diagnostics.Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(bound.Elapsed < TimeSpan.FromSeconds(30), "the condition did not hold within 30 s");
            await Task.Yield();
        }
    }
}
