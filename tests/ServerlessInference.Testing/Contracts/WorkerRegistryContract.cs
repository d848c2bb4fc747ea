using ServerlessInference.Workers;

namespace ServerlessInference.Testing.Contracts;

/// <summary>What every <see cref="IWorkerRegistry"/> must do. Derive once per provider.</summary>
public abstract class WorkerRegistryContract : ContractClock
{
    /// <summary>The heartbeat TTL the tests use: long on a fake clock, a second or two on a server's clock.</summary>
    protected virtual TimeSpan Ttl => TimeSpan.FromSeconds(15);

    /// <summary>A fresh registry no other test sees.</summary>
    protected abstract ValueTask<IWorkerRegistry> CreateRegistryAsync(TimeSpan ttl);

    private ValueTask<IWorkerRegistry> RegistryAsync() => CreateRegistryAsync(Ttl);

    protected WorkerStatus Status(string id, int inFlight = 0, DateTimeOffset? startedAt = null, params WarmModelStatus[] warm) => new()
    {
        Id = id,
        Host = "host-" + id,
        ExecutionProvider = "CPU",
        State = WorkerState.Running,
        InFlight = inFlight,
        WarmModels = warm,
        MemoryUsedBytes = warm.Sum(m => m.Bytes),
        MemoryBudgetBytes = 1L << 30,
        JobsCompleted = 42,
        StartedAt = startedAt ?? Time.GetUtcNow(),
        LastHeartbeat = Time.GetUtcNow(),
    };

    [Fact]
    public async Task HeartbeatAsync_ThenList_ReturnsTheWholeStatus()
    {
        var registry = await RegistryAsync();
        var status = Status("w1", inFlight: 3, warm: [new WarmModelStatus("mlp", "1", 1234), new WarmModelStatus("resnet", "2", 5678)]);

        await registry.HeartbeatAsync(status, default);

        var listed = Assert.Single(await registry.ListAsync(default));
        Assert.Equal(status.Id, listed.Id);
        Assert.Equal(status.Host, listed.Host);
        Assert.Equal(status.ExecutionProvider, listed.ExecutionProvider);
        Assert.Equal(status.State, listed.State);
        Assert.Equal(3, listed.InFlight);
        Assert.Equal(status.WarmModels, listed.WarmModels);
        Assert.Equal(status.MemoryUsedBytes, listed.MemoryUsedBytes);
        Assert.Equal(status.MemoryBudgetBytes, listed.MemoryBudgetBytes);
        Assert.Equal(status.JobsCompleted, listed.JobsCompleted);
        Assert.Equal(status.StartedAt, listed.StartedAt);
        Assert.Equal(status.LastHeartbeat, listed.LastHeartbeat);
    }

    [Fact]
    public async Task HeartbeatAsync_Again_ReplacesTheStatus()
    {
        var registry = await RegistryAsync();
        await registry.HeartbeatAsync(Status("w1", inFlight: 1), default);

        await registry.HeartbeatAsync(Status("w1", inFlight: 5) with { State = WorkerState.Draining }, default);

        var listed = Assert.Single(await registry.ListAsync(default));
        Assert.Equal(5, listed.InFlight);
        Assert.Equal(WorkerState.Draining, listed.State);
    }

    [Fact]
    public async Task ListAsync_SeveralWorkers_OldestFirst()
    {
        var registry = await RegistryAsync();
        var now = Time.GetUtcNow();
        await registry.HeartbeatAsync(Status("young", startedAt: now), default);
        await registry.HeartbeatAsync(Status("old", startedAt: now - TimeSpan.FromMinutes(5)), default);
        await registry.HeartbeatAsync(Status("middle", startedAt: now - TimeSpan.FromMinutes(1)), default);

        Assert.Equal(["old", "middle", "young"], (await registry.ListAsync(default)).Select(w => w.Id));
    }

    [Fact]
    public async Task ListAsync_AfterTtl_DropsTheSilentWorker()
    {
        var registry = await RegistryAsync();
        await registry.HeartbeatAsync(Status("silent"), default);
        await registry.HeartbeatAsync(Status("alive"), default);

        await AdvanceAsync(Ttl * 0.6);
        await registry.HeartbeatAsync(Status("alive"), default);
        await AdvanceAsync(Ttl * 0.6);

        // 1.2 TTLs since "silent" spoke, 0.6 since "alive" did.
        Assert.Equal(["alive"], (await registry.ListAsync(default)).Select(w => w.Id));
    }

    [Fact]
    public async Task ListAsync_AllSilent_Empty()
    {
        var registry = await RegistryAsync();
        await registry.HeartbeatAsync(Status("w1"), default);

        await AdvanceAsync(Ttl);

        await EventuallyAsync(() => registry.ListAsync(default).AsTask(), l => l.Count == 0, "the worker to expire");
    }

    [Fact]
    public async Task RemoveAsync_DropsTheWorker()
    {
        var registry = await RegistryAsync();
        await registry.HeartbeatAsync(Status("w1"), default);
        await registry.HeartbeatAsync(Status("w2"), default);

        await registry.RemoveAsync("w1", default);
        await registry.RemoveAsync("never-there", default);

        Assert.Equal(["w2"], (await registry.ListAsync(default)).Select(w => w.Id));
    }

    [Fact]
    public async Task HeartbeatAsync_WithRecentModelActivity_ListsItBack()
    {
        var registry = await RegistryAsync();
        var activity = new[] { new ModelActivity("mlp", 3, 1), new ModelActivity("resnet", 0, 2) };

        await registry.HeartbeatAsync(Status("w1") with { RecentModelActivity = activity }, default);
        await registry.HeartbeatAsync(Status("w2"), default);

        var listed = (await registry.ListAsync(default)).ToDictionary(w => w.Id);
        Assert.Equal(activity, listed["w1"].RecentModelActivity);
        Assert.Empty(listed["w2"].RecentModelActivity);
    }
}
