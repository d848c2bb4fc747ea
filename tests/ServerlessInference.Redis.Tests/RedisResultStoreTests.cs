using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Testing.Contracts;
using StackExchange.Redis;

namespace ServerlessInference.Redis.Tests;

[Collection(RedisCollection.Name)]
public sealed class RedisResultStoreTests(RedisFixture redis)
{
    private RedisResultStore Store(RedisOptions? options = null) =>
        new(redis.Redis, RedisFixture.Wrap(options ?? redis.Options()), RedisFixture.Wrap(new ResultStoreOptions { Ttl = TimeSpan.FromMinutes(5) }), TimeProvider.System);

    private async Task<long> SubscribersAsync(string channel)
    {
        var reply = (RedisResult[])(await redis.Database.ExecuteAsync("PUBSUB", "NUMSUB", channel))!;
        return (long)reply[1];
    }

    [Fact]
    public async Task WaitAsync_ManyWaiters_ShareOneSubscription()
    {
        await using var store = Store();
        var jobs = Enumerable.Range(0, 100).Select(i => ContractJobs.Job(DateTimeOffset.UtcNow, i)).ToList();
        foreach (var job in jobs)
        {
            await store.TrackAsync(job, default);
        }

        var waits = jobs.Select(j => store.WaitAsync(j.Id, TimeSpan.FromMinutes(1), default).AsTask()).ToList();
        await WaitUntilAsync(() => Task.FromResult(store.WaitingJobs == jobs.Count));
        var subscribers = 0L;
        await WaitUntilAsync(async () => (subscribers = await SubscribersAsync(store.Channel)) > 0);

        Assert.Equal(1, subscribers);
        Assert.All(waits, w => Assert.False(w.IsCompleted));

        foreach (var job in jobs)
        {
            await store.PublishAsync(ContractJobs.Done(job, DateTimeOffset.UtcNow), default);
        }

        var records = await Task.WhenAll(waits).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.All(records, r => Assert.Equal(JobStatus.Succeeded, r!.Status));
        Assert.Equal(0, store.WaitingJobs);
        Assert.Equal(1, await SubscribersAsync(store.Channel));
    }

    [Fact]
    public async Task PublishAsync_FromAnotherProcess_WakesTheWaiter()
    {
        var options = redis.Options();
        await using var gateway = Store(options);
        await using var worker = Store(new RedisOptions { KeyPrefix = options.KeyPrefix });
        var job = ContractJobs.Job(DateTimeOffset.UtcNow);
        await gateway.TrackAsync(job, default);
        var wait = gateway.WaitAsync(job.Id, TimeSpan.FromMinutes(1), default).AsTask();

        Assert.True(await worker.TryStartAsync(job.Id, default));
        await worker.PublishAsync(ContractJobs.Done(job, DateTimeOffset.UtcNow, response: ContractJobs.Response("m", 1, 2, 3, 4)), default);

        var record = await wait.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(JobStatus.Succeeded, record!.Status);
        Assert.Equal([1f, 2, 3, 4], record.Response!.Outputs[0].AsSpan<float>().ToArray());
    }

    [Fact]
    public async Task TrackAsync_SetsATtlOfDeadlinePlusRetention()
    {
        var options = redis.Options();
        await using var store = Store(options);
        var job = ContractJobs.Job(DateTimeOffset.UtcNow, deadline: TimeSpan.FromMinutes(2));

        await store.TrackAsync(job, default);
        var queuedTtl = await redis.Database.KeyTimeToLiveAsync(options.KeyPrefix + "job:" + job.Id);
        await store.PublishAsync(ContractJobs.Done(job, DateTimeOffset.UtcNow), default);
        var doneTtl = await redis.Database.KeyTimeToLiveAsync(options.KeyPrefix + "job:" + job.Id);

        Assert.InRange(queuedTtl!.Value, TimeSpan.FromMinutes(6.9), TimeSpan.FromMinutes(7));
        Assert.InRange(doneTtl!.Value, TimeSpan.FromMinutes(4.9), TimeSpan.FromMinutes(5));
    }

    [Fact]
    public async Task TrackAsync_RedisUnreachable_ThrowsUnavailable()
    {
        var nowhere = new RedisOptions { ConnectionString = "127.0.0.1:1,connectTimeout=500" };
        await using var connection = (ConnectionMultiplexer)RedisServiceCollectionExtensions.Connect(nowhere);
        await using var store = new RedisResultStore(connection, RedisFixture.Wrap(nowhere), RedisFixture.Wrap(new ResultStoreOptions()), TimeProvider.System);
        var job = ContractJobs.Job(DateTimeOffset.UtcNow);

        var ex = await Assert.ThrowsAsync<InferenceException>(() => store.TrackAsync(job, default).AsTask());
        Assert.Equal(InferenceError.Unavailable, ex.Error);
        Assert.Equal(1, ex.RetryAfterSeconds);
        Assert.Equal(InferenceError.Unavailable, (await Assert.ThrowsAsync<InferenceException>(() => store.WaitAsync(job.Id, TimeSpan.FromSeconds(1), default).AsTask())).Error);
    }

    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < until, "condition not met within 10 s");
            await Task.Delay(10);
        }
    }
}
