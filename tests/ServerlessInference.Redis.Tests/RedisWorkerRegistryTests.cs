using ServerlessInference.Scaling;
using ServerlessInference.Workers;

namespace ServerlessInference.Redis.Tests;

[Collection(RedisCollection.Name)]
public sealed class RedisWorkerRegistryTests(RedisFixture redis)
{
    private static WorkerStatus Status(string id, int inFlight, params WarmModelStatus[] warm) => new()
    {
        Id = id,
        Host = "h",
        ExecutionProvider = "CPU",
        State = WorkerState.Running,
        InFlight = inFlight,
        WarmModels = warm,
        MemoryUsedBytes = 0,
        MemoryBudgetBytes = 1,
        JobsCompleted = 0,
        StartedAt = DateTimeOffset.UtcNow,
        LastHeartbeat = DateTimeOffset.UtcNow,
    };

    [Fact]
    public async Task RecordColdStartAsync_MoreThanKept_EveryRegistryReadsTheNewestFirstWithTheirStages()
    {
        var options = redis.Options();
        var writer = new RedisWorkerRegistry(redis.Redis, RedisFixture.Wrap(options));
        // Another instance (a gateway elsewhere) reads what the worker's registry wrote.
        var reader = new RedisWorkerRegistry(redis.Redis, RedisFixture.Wrap(options));
        var t0 = new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero);
        for (var i = 0; i < IWorkerRegistry.ColdStartsKept + 2; i++)
        {
            await writer.RecordColdStartAsync(new ColdStart
            {
                WorkerId = "w", JobId = "j" + i, Model = "mlp", Version = "1", QueuedAt = t0, AnsweredAt = t0.AddMilliseconds(300 + i),
                Stages = [new ColdStartStageTime(ColdStartStage.SessionCreated, 160), new ColdStartStageTime(ColdStartStage.Answered, 140 + i)],
            }, default);
        }

        var kept = await reader.ListColdStartsAsync(default);

        Assert.Equal(IWorkerRegistry.ColdStartsKept, kept.Count);
        Assert.Equal("j11", kept[0].JobId);
        Assert.Equal("j2", kept[^1].JobId);
        Assert.Equal(311, kept[0].TotalMilliseconds, 3);
        Assert.Equal([new ColdStartStageTime(ColdStartStage.SessionCreated, 160), new ColdStartStageTime(ColdStartStage.Answered, 151)], kept[0].Stages);
    }

    [Fact]
    public async Task WhoHasWarmAsync_FollowsHeartbeatsEvictionsRemovalsAndTtl()
    {
        var options = redis.Options();
        options.WorkerTtl = TimeSpan.FromSeconds(1);
        var registry = new RedisWorkerRegistry(redis.Redis, RedisFixture.Wrap(options));
        var mlp = new WarmModelStatus("mlp", "1", 100);
        var resnet = new WarmModelStatus("resnet", "1", 200);
        await registry.HeartbeatAsync(Status("busy", 3, mlp), default);
        await registry.HeartbeatAsync(Status("idle", 0, mlp, resnet), default);
        await registry.HeartbeatAsync(Status("cold", 0), default);

        Assert.Equal(["idle", "busy"], (await registry.WhoHasWarmAsync("mlp", "1", default)).Select(w => w.Id));
        Assert.Equal(["idle"], (await registry.WhoHasWarmAsync("resnet", "1", default)).Select(w => w.Id));
        Assert.Empty(await registry.WhoHasWarmAsync("mlp", "2", default));

        // "idle" evicts resnet: its next heartbeat takes it out of resnet's index.
        await registry.HeartbeatAsync(Status("idle", 0, mlp), default);
        Assert.Empty(await registry.WhoHasWarmAsync("resnet", "1", default));
        Assert.Null(await redis.Database.SortedSetScoreAsync(options.KeyPrefix + "{workers}:m:resnet/1", "idle"));

        await registry.RemoveAsync("busy", default);
        Assert.Equal(["idle"], (await registry.WhoHasWarmAsync("mlp", "1", default)).Select(w => w.Id));

        await Task.Delay(TimeSpan.FromSeconds(1.2));
        Assert.Empty(await registry.WhoHasWarmAsync("mlp", "1", default));
        Assert.Empty(await registry.ListAsync(default));
        Assert.Equal(0, await redis.Database.SortedSetLengthAsync(options.KeyPrefix + "{workers}"));
    }

    [Fact]
    public async Task AppendAsync_ManyDecisions_StreamStaysCapped()
    {
        var options = redis.Options();
        options.ScalingLogLength = 20;
        var log = new RedisScalingDecisionLog(redis.Redis, RedisFixture.Wrap(options));

        for (var i = 0; i < 600; i++)
        {
            await log.AppendAsync(new ScalingDecision(DateTimeOffset.UtcNow, i % 3, (i + 1) % 3, i, 0, $"decision {i}"), default);
        }

        // MAXLEN ~ trims whole stream nodes (100 entries each by default): about the cap, never the whole history.
        Assert.InRange(await redis.Database.StreamLengthAsync(log.StreamKey), 20, 150);
        Assert.Equal(["decision 599", "decision 598"], (await log.ReadRecentAsync(2, default)).Select(d => d.Reason));
    }

    [Fact]
    public async Task ListAsync_StatusFromAWorkerWithoutRecentModelActivity_ReadsAsNone()
    {
        var options = redis.Options();
        var registry = new RedisWorkerRegistry(redis.Redis, RedisFixture.Wrap(options));
        await registry.HeartbeatAsync(Status("old", 0, new WarmModelStatus("mlp", "1", 100)) with
        {
            RecentModelActivity = [new ModelActivity("mlp", 1, 0)],
        }, default);
        // What a worker built before the field existed wrote: the same JSON without it.
        var key = options.KeyPrefix + "{workers}:w:old";
        var json = System.Text.Json.Nodes.JsonNode.Parse((string)(await redis.Database.StringGetAsync(key))!)!.AsObject();
        Assert.True(json.Remove(nameof(WorkerStatus.RecentModelActivity)));
        await redis.Database.StringSetAsync(key, json.ToJsonString(), TimeSpan.FromMinutes(1));

        var listed = Assert.Single(await registry.ListAsync(default));

        Assert.Equal("old", listed.Id);
        Assert.Equal([new WarmModelStatus("mlp", "1", 100)], listed.WarmModels);
        Assert.Empty(listed.RecentModelActivity);
    }
}

