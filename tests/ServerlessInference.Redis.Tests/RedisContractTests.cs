using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Scaling;
using ServerlessInference.Streaming;
using ServerlessInference.Testing.Contracts;
using ServerlessInference.Workers;

namespace ServerlessInference.Redis.Tests;

// The Redis providers run every contract suite on real time: idle times and TTLs are the server's clock.

/// <summary>The job queue contract on Redis; <paramref name="inlineRequestMaxBytes"/> picks where requests travel.</summary>
public abstract class RedisJobQueueContractBase(RedisFixture redis, int inlineRequestMaxBytes) : JobQueueContract
{
    protected override TimeProvider Time => TimeProvider.System;

    protected override TimeSpan LeaseDuration => TimeSpan.FromSeconds(2);

    protected override async ValueTask AdvanceAsync(TimeSpan duration) => await Task.Delay(duration);

    protected override ValueTask<IJobQueue> CreateQueueAsync(JobQueueOptions options)
    {
        var redisOptions = redis.Options();
        redisOptions.InlineRequestMaxBytes = inlineRequestMaxBytes;
        return ValueTask.FromResult<IJobQueue>(Track(new RedisJobQueue(redis.Redis, RedisFixture.Wrap(redisOptions), RedisFixture.Wrap(options), TimeProvider.System)));
    }

    protected override async ValueTask<IReadOnlyList<DeadLetter>> ReadDeadLettersAsync(IJobQueue queue) =>
        await ((RedisJobQueue)queue).ReadDeadLettersAsync(1000, default);
}

/// <summary>Requests inside the stream entries (the default for small ones).</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisJobQueueContractTests(RedisFixture redis) : RedisJobQueueContractBase(redis, new RedisOptions().InlineRequestMaxBytes);

/// <summary>Every request kept beside its stream entry (as large requests are).</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisJobQueueSideBodyContractTests(RedisFixture redis) : RedisJobQueueContractBase(redis, 1);

[Collection(RedisCollection.Name)]
public sealed class RedisResultStoreContractTests(RedisFixture redis) : ResultStoreContract
{
    protected override TimeProvider Time => TimeProvider.System;

    protected override TimeSpan ShortTtl => TimeSpan.FromSeconds(1);

    protected override async ValueTask AdvanceAsync(TimeSpan duration) => await Task.Delay(duration);

    protected override ValueTask<IResultStore> CreateStoreAsync(TimeSpan ttl) =>
        ValueTask.FromResult<IResultStore>(Track(new RedisResultStore(redis.Redis, RedisFixture.Wrap(redis.Options()),
            RedisFixture.Wrap(new ResultStoreOptions { Ttl = ttl }), TimeProvider.System)));

    protected override ValueTask<IResultStore> CreateStoreAsync(ResultStoreOptions options) =>
        ValueTask.FromResult<IResultStore>(Track(new RedisResultStore(redis.Redis, RedisFixture.Wrap(redis.Options()),
            RedisFixture.Wrap(options), TimeProvider.System)));
}

[Collection(RedisCollection.Name)]
public sealed class RedisWorkerRegistryContractTests(RedisFixture redis) : WorkerRegistryContract
{
    protected override TimeProvider Time => TimeProvider.System;

    protected override TimeSpan Ttl => TimeSpan.FromSeconds(2);

    protected override async ValueTask AdvanceAsync(TimeSpan duration) => await Task.Delay(duration);

    protected override ValueTask<IWorkerRegistry> CreateRegistryAsync(TimeSpan ttl)
    {
        var options = redis.Options();
        options.WorkerTtl = ttl;
        return ValueTask.FromResult<IWorkerRegistry>(new RedisWorkerRegistry(redis.Redis, RedisFixture.Wrap(options)));
    }
}

[Collection(RedisCollection.Name)]
public sealed class RedisScalingDecisionLogContractTests(RedisFixture redis) : ScalingDecisionLogContract
{
    protected override TimeProvider Time => TimeProvider.System;

    protected override async ValueTask AdvanceAsync(TimeSpan duration) => await Task.Delay(duration);

    protected override ValueTask<IScalingDecisionLog> CreateLogAsync(int capacity)
    {
        var options = redis.Options();
        options.ScalingLogLength = capacity;
        return ValueTask.FromResult<IScalingDecisionLog>(new RedisScalingDecisionLog(redis.Redis, RedisFixture.Wrap(options)));
    }
}

[Collection(RedisCollection.Name)]
public sealed class RedisPlacementBoardContractTests(RedisFixture redis) : PlacementBoardContract
{
    protected override TimeProvider Time => TimeProvider.System;

    protected override async ValueTask AdvanceAsync(TimeSpan duration) => await Task.Delay(duration);

    protected override ValueTask<IPlacementBoard> CreateBoardAsync() =>
        ValueTask.FromResult<IPlacementBoard>(new RedisPlacementBoard(redis.Redis, RedisFixture.Wrap(redis.Options())));

    [Fact]
    public async Task PublishAsync_Plan_ExpiresTheKeyWithThePlan()
    {
        var board = new RedisPlacementBoard(redis.Redis, RedisFixture.Wrap(redis.Options()));
        var at = DateTimeOffset.UtcNow;

        await board.PublishAsync(new PlacementPlan(at, at + TimeSpan.FromSeconds(20), [], []), default);

        var ttl = await redis.Redis.GetDatabase().KeyTimeToLiveAsync(board.Key);
        Assert.NotNull(ttl);
        Assert.InRange(ttl.Value, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(20));
    }
}

[Collection(RedisCollection.Name)]
public sealed class RedisJobStreamsContractTests(RedisFixture redis) : JobStreamsContract
{
    protected override TimeProvider Time => TimeProvider.System;

    protected override TimeSpan ShortTtl => TimeSpan.FromSeconds(1);

    protected override async ValueTask AdvanceAsync(TimeSpan duration) => await Task.Delay(duration);

    protected override ValueTask<IJobStreams> CreateStreamsAsync(JobStreamOptions options) =>
        ValueTask.FromResult<IJobStreams>(new RedisJobStreams(redis.Redis, RedisFixture.Wrap(redis.Options()), RedisFixture.Wrap(options), TimeProvider.System));
}
