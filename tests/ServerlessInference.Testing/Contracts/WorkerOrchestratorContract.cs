using ServerlessInference.Scaling;

namespace ServerlessInference.Testing.Contracts;

/// <summary>What every <see cref="IWorkerOrchestrator"/> must do. Derive once per orchestrator, over a platform of
/// the test's own: worker loops, child processes, or a fake of the API a real platform has (a Deployment's scale
/// subresource, a Container App's scale block).</summary>
/// <remarks>
/// <para>Each test gets one fresh platform with no workers and one orchestrator over it. The derived class sees the
/// platform from its own side (<see cref="PlatformReplicasAsync"/>, <see cref="WorkersStarted"/>), so a fact checks
/// what the orchestrator did, not only what it says.</para>
/// <para>What only some orchestrators do (picking idle workers to stop, retrying a throttled API, reading a platform
/// that already runs workers) stays in their own tests.</para>
/// </remarks>
public abstract class WorkerOrchestratorContract : ContractClock
{
    /// <summary>The orchestrator under test over a fresh platform with no workers; tracked so it is disposed after the test.</summary>
    protected abstract ValueTask<IWorkerOrchestrator> CreateOrchestratorAsync();

    /// <summary>The workers the platform runs, seen from the platform: worker loops not told to stop, live worker
    /// processes (a stopped one counts until it has drained and exited), or the replica count a Deployment or a
    /// Container App is told to keep.</summary>
    protected abstract ValueTask<int> PlatformReplicasAsync();

    /// <summary>How many workers the platform has started so far (a Container App starts every replica of a new
    /// revision afresh).</summary>
    protected abstract int WorkersStarted { get; }

    /// <summary>From now on the platform refuses to start workers: the API refuses the write, the worker cannot be
    /// started. <see cref="HealPlatform"/> undoes it.</summary>
    protected virtual void BreakPlatform() => Volatile.Write(ref _platformBroken, true);

    protected virtual void HealPlatform() => Volatile.Write(ref _platformBroken, false);

    /// <summary>Whether <see cref="BreakPlatform"/> was called without <see cref="HealPlatform"/> since: a fake platform
    /// that keeps the default break and heal refuses to start workers while this is true.</summary>
    protected bool PlatformBroken => Volatile.Read(ref _platformBroken);

    private bool _platformBroken;

    [Fact]
    public async Task GetReplicasAsync_NewPlatform_Zero()
    {
        var orchestrator = await CreateOrchestratorAsync();

        Assert.Equal(0, await orchestrator.GetReplicasAsync(default));
        Assert.Equal(0, await PlatformReplicasAsync());
    }

    [Fact]
    public async Task SetReplicasAsync_Count_RunsThatManyAndGetReadsIt()
    {
        var orchestrator = await CreateOrchestratorAsync();

        await orchestrator.SetReplicasAsync(2, default);

        Assert.Equal(2, await orchestrator.GetReplicasAsync(default));
        await PlatformEventuallyAsync(2);
        Assert.Equal(2, WorkersStarted);
    }

    [Fact]
    public async Task SetReplicasAsync_UpThenDown_KeepsTheLowerCount()
    {
        var orchestrator = await CreateOrchestratorAsync();
        await orchestrator.SetReplicasAsync(3, default);

        await orchestrator.SetReplicasAsync(1, default);

        // Workers told to stop may still drain; they no longer count.
        Assert.Equal(1, await orchestrator.GetReplicasAsync(default));
        await PlatformEventuallyAsync(1);
    }

    [Fact]
    public async Task SetReplicasAsync_StepByStep_FollowsEveryCount()
    {
        var orchestrator = await CreateOrchestratorAsync();

        foreach (var replicas in new[] { 1, 3, 2, 4, 0, 1 })
        {
            await orchestrator.SetReplicasAsync(replicas, default);

            Assert.Equal(replicas, await orchestrator.GetReplicasAsync(default));
            await PlatformEventuallyAsync(replicas);
        }
    }

    [Fact]
    public async Task SetReplicasAsync_Zero_StopsEveryWorker()
    {
        var orchestrator = await CreateOrchestratorAsync();
        await orchestrator.SetReplicasAsync(2, default);

        await orchestrator.SetReplicasAsync(0, default);

        Assert.Equal(0, await orchestrator.GetReplicasAsync(default));
        await PlatformEventuallyAsync(0);
    }

    [Fact]
    public async Task SetReplicasAsync_SameCountAgain_StartsNoWorker()
    {
        var orchestrator = await CreateOrchestratorAsync();
        await orchestrator.SetReplicasAsync(2, default);
        var started = WorkersStarted;

        // The scaler asks for the count it wants on every tick; a steady count must not churn workers.
        await orchestrator.SetReplicasAsync(2, default);
        await orchestrator.SetReplicasAsync(2, default);

        Assert.Equal(2, await orchestrator.GetReplicasAsync(default));
        Assert.Equal(2, await PlatformReplicasAsync());
        Assert.Equal(started, WorkersStarted);
    }

    [Fact]
    public async Task SetReplicasAsync_Negative_ThrowsAndChangesNothing()
    {
        var orchestrator = await CreateOrchestratorAsync();
        await orchestrator.SetReplicasAsync(1, default);

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => orchestrator.SetReplicasAsync(-1, default).AsTask());

        Assert.Equal(1, await orchestrator.GetReplicasAsync(default));
        Assert.Equal(1, await PlatformReplicasAsync());
        Assert.Equal(1, WorkersStarted);
    }

    [Fact]
    public async Task SetReplicasAsync_PlatformRefuses_ThrowsAndCountsNoNewWorker()
    {
        var orchestrator = await CreateOrchestratorAsync();
        await orchestrator.SetReplicasAsync(1, default);
        BreakPlatform();

        var failure = await Record.ExceptionAsync(() => orchestrator.SetReplicasAsync(3, default).AsTask());

        // Failures throw (the scaler logs them and asks again on its next tick); nothing pretends the workers run.
        Assert.NotNull(failure);
        Assert.IsNotAssignableFrom<ArgumentException>(failure);
        HealPlatform();
        Assert.Equal(1, await orchestrator.GetReplicasAsync(default));
        Assert.Equal(1, await PlatformReplicasAsync());
    }

    [Fact]
    public async Task SetReplicasAsync_AfterTheFailurePasses_Succeeds()
    {
        var orchestrator = await CreateOrchestratorAsync();
        BreakPlatform();
        await Assert.ThrowsAnyAsync<Exception>(() => orchestrator.SetReplicasAsync(2, default).AsTask());
        HealPlatform();

        await orchestrator.SetReplicasAsync(2, default);

        Assert.Equal(2, await orchestrator.GetReplicasAsync(default));
        await PlatformEventuallyAsync(2);
    }

    [Fact]
    public async Task SetReplicasAsync_CancelledToken_ThrowsAndChangesNothing()
    {
        var orchestrator = await CreateOrchestratorAsync();
        await orchestrator.SetReplicasAsync(1, default);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => orchestrator.SetReplicasAsync(3, cancelled.Token).AsTask());
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => orchestrator.SetReplicasAsync(0, cancelled.Token).AsTask());

        Assert.Equal(1, await orchestrator.GetReplicasAsync(default));
        Assert.Equal(1, await PlatformReplicasAsync());
        Assert.Equal(1, WorkersStarted);
    }

    [Fact]
    public async Task GetReplicasAsync_CancelledToken_Throws()
    {
        var orchestrator = await CreateOrchestratorAsync();
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => orchestrator.GetReplicasAsync(cancelled.Token).AsTask());
    }

    /// <summary>Workers told to stop drain before they go, so the platform may take a while to shrink.</summary>
    private Task<int> PlatformEventuallyAsync(int replicas) =>
        EventuallyAsync(() => PlatformReplicasAsync().AsTask(), n => n == replicas, $"the platform to run {replicas} workers");
}
