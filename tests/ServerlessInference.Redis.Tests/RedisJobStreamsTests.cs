using ServerlessInference.Streaming;
using StackExchange.Redis;

namespace ServerlessInference.Redis.Tests;

/// <summary>What the Redis provider adds to the contract: its storage format, its TTL, one subscription per followed
/// job, wake-ups across processes, and 503 while Redis is down.</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisJobStreamsTests(RedisFixture redis)
{
    private RedisJobStreams Streams(RedisOptions options, JobStreamOptions? streamOptions = null) =>
        new(redis.Redis, RedisFixture.Wrap(options), RedisFixture.Wrap(streamOptions ?? new JobStreamOptions()), TimeProvider.System);

    private async Task<long> SubscribersAsync(string channel)
    {
        var reply = (RedisResult[])(await redis.Database.ExecuteAsync("PUBSUB", "NUMSUB", channel))!;
        return (long)reply[1];
    }

    [Fact]
    public async Task AppendAsync_StoresOneEntryPerSequenceUnderTheJobsKey()
    {
        var options = redis.Options();
        var streams = Streams(options);

        await streams.AppendAsync("j1", [JobStreamEvent.Token(0, 42, "Hi"), JobStreamEvent.Token(1, 7, ""), JobStreamEvent.Final(2, FinishReason.Error, "boom")], default);

        Assert.Equal(options.KeyPrefix + "stream:j1", streams.Key("j1"));
        var entries = await redis.Database.StreamRangeAsync(streams.Key("j1"));
        Assert.Equal(["1-0", "2-0", "3-0"], entries.Select(e => e.Id.ToString()));
        Assert.Equal("x=Hi t=42", Fields(entries[0]));
        Assert.Equal("x= t=7", Fields(entries[1]));
        Assert.Equal("x= f=error e=boom", Fields(entries[2]));
    }

    [Fact]
    public async Task AppendAsync_SetsAndRestartsTheKeysTtl()
    {
        var streams = Streams(redis.Options(), new JobStreamOptions { Ttl = TimeSpan.FromMinutes(30) });
        await streams.AppendAsync("j", [JobStreamEvent.Token(0, 1, "a")], default);
        var first = await redis.Database.KeyTimeToLiveAsync(streams.Key("j"));

        // As if most of the TTL had passed: the next append must restart it; a duplicate must not.
        await redis.Database.KeyExpireAsync(streams.Key("j"), TimeSpan.FromMinutes(1));
        await streams.AppendAsync("j", [JobStreamEvent.Token(0, 1, "a")], default);
        var afterDuplicate = await redis.Database.KeyTimeToLiveAsync(streams.Key("j"));
        await streams.AppendAsync("j", [JobStreamEvent.Token(1, 2, "b")], default);
        var afterAppend = await redis.Database.KeyTimeToLiveAsync(streams.Key("j"));

        Assert.InRange(first!.Value, TimeSpan.FromMinutes(29), TimeSpan.FromMinutes(30));
        Assert.InRange(afterDuplicate!.Value, TimeSpan.Zero, TimeSpan.FromMinutes(1));
        Assert.InRange(afterAppend!.Value, TimeSpan.FromMinutes(29), TimeSpan.FromMinutes(30));
    }

    [Fact]
    public async Task FollowAsync_AppendedByAnotherProcess_WakesOnPubSubAlone()
    {
        var options = redis.Options();
        options.StreamPollInterval = TimeSpan.FromHours(1); // only the notification can wake the follower
        var gateway = Streams(options);
        var worker = Streams(new RedisOptions { KeyPrefix = options.KeyPrefix });
        await using var follower = gateway.FollowAsync("j", -1, default).GetAsyncEnumerator();
        var first = follower.MoveNextAsync().AsTask();
        await WaitUntilAsync(async () => await SubscribersAsync(gateway.Key("j")) == 1);

        await worker.AppendAsync("j", [JobStreamEvent.Token(0, 5, "a")], default);
        Assert.True(await first.WaitAsync(TimeSpan.FromSeconds(10)));
        var second = follower.MoveNextAsync().AsTask();
        await worker.AppendAsync("j", [JobStreamEvent.Final(1, FinishReason.Stop)], default);
        Assert.True(await second.WaitAsync(TimeSpan.FromSeconds(10)));

        Assert.True(follower.Current.IsFinal);
        Assert.False(await follower.MoveNextAsync());
    }

    [Fact]
    public async Task FollowAsync_ManyFollowersOfOneJob_ShareOneSubscriptionAndDropItAtTheEnd()
    {
        var streams = Streams(redis.Options());
        var followers = Enumerable.Range(0, 5).Select(_ => Drain(streams.FollowAsync("j", -1, default))).ToList();
        await WaitUntilAsync(async () => await SubscribersAsync(streams.Key("j")) == 1);
        Assert.Equal(1, streams.FollowedJobs);

        await streams.AppendAsync("j", [JobStreamEvent.Token(0, 1, "a"), JobStreamEvent.Final(1, FinishReason.Eos)], default);

        var seen = await Task.WhenAll(followers).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.All(seen, s => Assert.Equal(2, s));
        Assert.Equal(0, streams.FollowedJobs);
        await WaitUntilAsync(async () => await SubscribersAsync(streams.Key("j")) == 0);
    }

    [Fact]
    public async Task ReadAsync_MoreThanAPage_ReadsEverything()
    {
        var streams = Streams(redis.Options());
        var events = Enumerable.Range(0, 2500).Select(i => JobStreamEvent.Token(i, i, "t")).ToArray();
        for (var i = 0; i < events.Length; i += 500)
        {
            await streams.AppendAsync("j", events[i..(i + 500)], default);
        }

        Assert.Equal(events, await streams.ReadAsync("j", default));
        Assert.Equal(events[2001..], await CollectAsync(streams.FollowAsync("j", 2000, new CancellationTokenSource(TimeSpan.FromSeconds(30)).Token), 499));
    }

    [Fact]
    public async Task Calls_RedisUnreachable_ThrowUnavailable()
    {
        var nowhere = new RedisOptions { ConnectionString = "127.0.0.1:1,connectTimeout=500" };
        await using var connection = (ConnectionMultiplexer)RedisServiceCollectionExtensions.Connect(nowhere);
        var streams = new RedisJobStreams(connection, RedisFixture.Wrap(nowhere), RedisFixture.Wrap(new JobStreamOptions()), TimeProvider.System);

        var append = await Assert.ThrowsAsync<InferenceException>(() => streams.AppendAsync("j", [JobStreamEvent.Token(0, 1, "a")], default).AsTask());
        var read = await Assert.ThrowsAsync<InferenceException>(() => streams.ReadAsync("j", default).AsTask());
        var follow = await Assert.ThrowsAsync<InferenceException>(() => Drain(streams.FollowAsync("j", -1, default)));

        Assert.All([append, read, follow], ex => Assert.Equal(InferenceError.Unavailable, ex.Error));
        Assert.Equal(1, append.RetryAfterSeconds);
        Assert.Contains("token stream", append.Message, StringComparison.Ordinal);
        Assert.Equal(0, streams.FollowedJobs);
    }

    private static string Fields(StreamEntry entry) => string.Join(' ', entry.Values.Select(v => $"{v.Name}={v.Value}"));

    private static async Task<int> Drain(IAsyncEnumerable<JobStreamEvent> events)
    {
        var count = 0;
        await foreach (var _ in events)
        {
            count++;
        }

        return count;
    }

    private static async Task<List<JobStreamEvent>> CollectAsync(IAsyncEnumerable<JobStreamEvent> events, int count)
    {
        var list = new List<JobStreamEvent>();
        await foreach (var e in events)
        {
            list.Add(e);
            if (list.Count == count)
            {
                break;
            }
        }

        return list;
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
