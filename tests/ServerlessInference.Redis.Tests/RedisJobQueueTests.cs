using System.Diagnostics;
using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Testing.Contracts;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace ServerlessInference.Redis.Tests;

/// <summary>What the contract cannot see: the stream, the PEL and the dead-letter stream as Redis holds them.</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisJobQueueTests(RedisFixture redis, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly List<RedisJobQueue> _queues = [];

    private static JobQueueOptions QueueOptions(TimeSpan? lease = null, int capacity = 1000) => new()
    {
        Capacity = capacity,
        LeaseDuration = lease ?? TimeSpan.FromSeconds(30),
        MaxDeliveryCount = 3,
        RetryAfterSeconds = 2,
    };

    private RedisJobQueue Queue(RedisOptions options, JobQueueOptions? queueOptions = null)
    {
        var queue = new RedisJobQueue(redis.Redis, RedisFixture.Wrap(options), RedisFixture.Wrap(queueOptions ?? QueueOptions()), TimeProvider.System);
        _queues.Add(queue);
        return queue;
    }

    private static InferenceJob NewJob(float seed = 1) => ContractJobs.Job(DateTimeOffset.UtcNow, seed);

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var queue in _queues)
        {
            await queue.DisposeAsync();
        }
    }

    [Fact]
    public async Task ReceiveAsync_DeadConsumersLease_IsReclaimedOnceItHasBeenIdleForTheLease()
    {
        var options = redis.Options("worker-that-dies");
        var lease = TimeSpan.FromSeconds(1);
        var dying = Queue(options, QueueOptions(lease));
        var survivor = Queue(new RedisOptions { KeyPrefix = options.KeyPrefix, ReclaimInterval = options.ReclaimInterval, ConsumerName = "worker-that-lives" }, QueueOptions(lease));
        var job = NewJob();
        await survivor.EnqueueAsync(job, default);
        var held = Assert.Single(await dying.ReceiveAsync(1, TimeSpan.Zero, default));
        var receivedAt = Stopwatch.GetTimestamp();
        await dying.DisposeAsync();

        // The dead consumer still owns it, and it stays invisible until its idle time reaches the lease.
        Assert.Empty(await survivor.ReceiveAsync(1, TimeSpan.Zero, default));
        var pending = Assert.Single(await redis.Database.StreamPendingMessagesAsync(survivor.PartitionStreamKey("m"), "workers", 10, RedisValue.Null));
        Assert.Equal("worker-that-dies", pending.ConsumerName);

        var again = Assert.Single(await survivor.ReceiveAsync(1, TimeSpan.FromSeconds(10), default));

        Assert.True(Stopwatch.GetElapsedTime(receivedAt) >= lease - TimeSpan.FromMilliseconds(50), "reclaimed before the lease ran out");
        Assert.Equal(job.Id, again.Job.Id);
        Assert.Equal(2, again.DeliveryCount);
        Assert.Contains("lease expired", again.LastError);
        // Put back as a new entry carrying the earlier delivery (n), then delivered to the survivor.
        pending = Assert.Single(await redis.Database.StreamPendingMessagesAsync(survivor.PartitionStreamKey("m"), "workers", 10, RedisValue.Null));
        Assert.Equal("worker-that-lives", pending.ConsumerName);
        Assert.Equal(1, pending.DeliveryCount);
        Assert.Equal(1, (int)Assert.Single(await redis.Database.StreamRangeAsync(survivor.PartitionStreamKey("m")))["n"]);

        await held.CompleteAsync(default);
        Assert.Equal(1, await redis.Database.StreamLengthAsync(survivor.PartitionStreamKey("m")));
        await again.CompleteAsync(default);
        Assert.Equal(0, await redis.Database.StreamLengthAsync(survivor.PartitionStreamKey("m")));
    }

    [Fact]
    public async Task Partitions_OnePerAffinityKey_RemovedOnceNothingIsQueuedOrPending()
    {
        var options = redis.Options();
        var queue = Queue(options);
        InferenceJob Keyed(string model, string? prefix = null)
        {
            var job = ContractJobs.Job(DateTimeOffset.UtcNow, model: model);
            return new InferenceJob { Id = job.Id, Model = model, Version = job.Version, Request = job.Request, SubmittedAt = job.SubmittedAt, Deadline = job.Deadline, PrefixKey = prefix };
        }

        await queue.EnqueueAsync(Keyed("a"), default);
        await queue.EnqueueAsync(Keyed("a", "p"), default);
        await queue.EnqueueAsync(Keyed("b"), default);

        Assert.Equal(["a", "a#p", "b"], (await queue.ListPartitionsAsync(default)).Order(StringComparer.Ordinal));
        var prefixed = Assert.Single(await redis.Database.StreamRangeAsync(queue.PartitionStreamKey("a#p")));
        Assert.Equal("p", (string?)prefixed["prefix"]);
        Assert.Equal("a", (string?)prefixed["model"]);

        var leases = (await queue.ReceiveAsync(3, TimeSpan.Zero, default)).ToDictionary(l => l.Job.AffinityKey);
        await leases["a"].AbandonAsync("again", default);
        await leases["b"].CompleteAsync(default);
        await leases["a#p"].DeadLetterAsync("poison", default);

        // b and a#p hold nothing any more: their streams (and groups) and index entries are gone; a's job is back.
        Assert.Equal(["a"], await queue.ListPartitionsAsync(default));
        Assert.False(await redis.Database.KeyExistsAsync(queue.PartitionStreamKey("b")));
        Assert.False(await redis.Database.KeyExistsAsync(queue.PartitionStreamKey("a#p")));
        Assert.True(await redis.Database.KeyExistsAsync(queue.PartitionStreamKey("a")));

        await Assert.Single(await queue.ReceiveAsync(3, TimeSpan.Zero, default)).CompleteAsync(default);

        Assert.Empty(await queue.ListPartitionsAsync(default));
        var server = redis.Redis.GetServer(redis.Redis.GetEndPoints()[0]);
        var left = server.Keys(pattern: options.KeyPrefix + "*").Select(k => k.ToString()[options.KeyPrefix.Length..]).Order(StringComparer.Ordinal).ToList();

        // Streams, index, waiting set, counters, byte budget and reclaim cursors all went with the last partition.
        Assert.Equal(["{jobs}:dead"], left);
        Assert.Equal(new QueueDepth(0, 0), await queue.GetDepthAsync(default));
    }

    [Fact]
    public async Task GetDepthAsync_EntriesLostWithoutASettle_HealsTheCountsAndRemovesEmptyPartitions()
    {
        var queue = Queue(redis.Options());
        InferenceJob Capped(string model)
        {
            var job = ContractJobs.Job(DateTimeOffset.UtcNow, model: model);
            return new InferenceJob { Id = job.Id, Model = model, Version = job.Version, Request = job.Request, SubmittedAt = job.SubmittedAt, Deadline = job.Deadline, ModelQueueCapacity = 2 };
        }

        await queue.EnqueueAsync(Capped("m"), default);
        await queue.EnqueueAsync(Capped("m"), default);
        await queue.EnqueueAsync(Capped("lost"), default);

        // As a Redis restarted from a cut append-only file can leave it: entries gone, counts not told.
        var stream = queue.PartitionStreamKey("m");
        await redis.Database.StreamDeleteAsync(stream, [(await redis.Database.StreamRangeAsync(stream))[0].Id]);
        var lost = queue.PartitionStreamKey("lost");
        await redis.Database.StreamDeleteAsync(lost, [Assert.Single(await redis.Database.StreamRangeAsync(lost)).Id]);
        await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(Capped("m"), default).AsTask());

        var depth = await queue.GetDepthAsync(default);

        Assert.Equal(new QueueDepth(1, 0), depth);
        Assert.Equal(new ModelDepth(1, 0), Assert.Single(depth.ByModel!).Value);
        Assert.Equal(["m"], await queue.ListPartitionsAsync(default));
        Assert.False(await redis.Database.KeyExistsAsync(lost));
        await queue.EnqueueAsync(Capped("m"), default);
        await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(Capped("m"), default).AsTask());
    }

    [Fact]
    public async Task ListJobIdsAsync_JobsMovingBetweenPages_ListsEveryJobOfEveryPartition()
    {
        var queue = Queue(redis.Options(), QueueOptions(capacity: 2000));
        var ids = new HashSet<string>();
        for (var i = 0; i < 1200; i++)
        {
            var job = ContractJobs.Job(DateTimeOffset.UtcNow, i, model: $"m{i % 3}");
            ids.Add(job.Id);
            await queue.EnqueueAsync(job, default);
        }

        // Jobs at the heads of the partitions move to their tails while the listing pages through them.
        var leases = await queue.ReceiveAsync(30, TimeSpan.Zero, default);
        var listing = queue.ListJobIdsAsync(default).AsTask();
        foreach (var lease in leases)
        {
            await lease.AbandonAsync("moved", default);
        }

        Assert.Equal(ids.Order(), (await listing).Order());
    }

    [Fact]
    public async Task DeadLetterAsync_MovesTheJobToTheDeadLetterStreamWithWhy()
    {
        var queue = Queue(redis.Options());
        var job = NewJob(3);
        await queue.EnqueueAsync(job, default);
        for (var i = 1; i <= 2; i++)
        {
            await Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default)).AbandonAsync($"failure {i}", default);
        }

        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        await lease.DeadLetterAsync("dead-lettered after 3 deliveries", default);

        var entry = Assert.Single(await redis.Database.StreamRangeAsync(queue.DeadLetterKey));
        Assert.Equal(job.Id, (string?)entry["id"]);
        Assert.Equal("dead-lettered after 3 deliveries", (string?)entry["reason"]);
        Assert.Equal(3, (int)entry["deliveries"]);
        Assert.Equal("failure 2", (string?)entry["err"]);
        var letter = Assert.Single(await queue.ReadDeadLettersAsync(10, default));
        Assert.Equal(job.Id, letter.Job.Id);
        Assert.Equal(job.Request.Inputs[0].AsSpan<float>().ToArray(), letter.Job.Request.Inputs[0].AsSpan<float>().ToArray());
        Assert.Equal(3, letter.DeliveryCount);
        Assert.Equal(0, await redis.Database.StreamLengthAsync(queue.PartitionStreamKey("m")));
        Assert.False(await redis.Database.KeyExistsAsync(queue.PartitionStreamKey("m")), "the emptied partition is removed");
    }

    [Fact]
    public async Task SettledJobs_AreDeleted_UnacknowledgedOnesNeverAre()
    {
        var queue = Queue(redis.Options());
        var jobs = new List<InferenceJob>();
        for (var i = 0; i < 30; i++)
        {
            jobs.Add(NewJob(i));
            await queue.EnqueueAsync(jobs[^1], default);
        }

        var leases = await queue.ReceiveAsync(20, TimeSpan.Zero, default);
        foreach (var lease in leases.Take(10))
        {
            await lease.CompleteAsync(default);
        }

        // Ten pending (delivered, unacknowledged) and ten never delivered are all still in the stream.
        var left = await redis.Database.StreamRangeAsync(queue.PartitionStreamKey("m"));
        Assert.Equal(jobs.Skip(10).Select(j => j.Id), left.Select(e => (string?)e["id"]));
        Assert.Equal(new QueueDepth(10, 10), await queue.GetDepthAsync(default));

        // More traffic than the stream ever held at once: nothing unacknowledged disappears.
        for (var round = 0; round < 5; round++)
        {
            for (var i = 0; i < 20; i++)
            {
                await queue.EnqueueAsync(NewJob(i), default);
            }

            foreach (var lease in await queue.ReceiveAsync(40, TimeSpan.Zero, default))
            {
                if (jobs.All(j => j.Id != lease.Job.Id))
                {
                    await lease.CompleteAsync(default);
                }
            }
        }

        var stillThere = (await redis.Database.StreamRangeAsync(queue.PartitionStreamKey("m"))).Select(e => (string?)e["id"]).ToHashSet();
        Assert.Subset(stillThere, jobs.Skip(10).Select(j => (string?)j.Id).ToHashSet());
        Assert.Equal(20, stillThere.Count);
    }

    [Fact]
    public async Task ReceiveAsync_WaitingInAnotherProcess_IsWokenByTheNotificationNotByPolling()
    {
        // Polling once a minute: only the pub/sub notification can wake the receiver in time.
        var options = redis.Options("receiver");
        options.ReclaimInterval = TimeSpan.FromMinutes(1);
        var receiver = Queue(options);
        var producer = Queue(new RedisOptions { KeyPrefix = options.KeyPrefix, ConsumerName = "producer", ReclaimInterval = TimeSpan.FromMinutes(1) });
        Assert.Empty(await receiver.ReceiveAsync(1, TimeSpan.Zero, default));

        var latencies = new List<double>();
        for (var i = 0; i < 100; i++)
        {
            var receive = receiver.ReceiveAsync(1, TimeSpan.FromSeconds(30), default).AsTask();
            var started = Stopwatch.GetTimestamp();
            await producer.EnqueueAsync(NewJob(i), default);
            var lease = Assert.Single(await receive.WaitAsync(TimeSpan.FromSeconds(10)));
            latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            await lease.CompleteAsync(default);
        }

        latencies.Sort();
        output.WriteLine($"enqueue → waiting receiver in another instance woke: p50 {latencies[50]:0.000} ms, p90 {latencies[90]:0.000} ms, max {latencies[^1]:0.000} ms");
    }

    [Fact]
    public async Task ReceiveAsync_OnlyJobsKeptForOtherWorkers_WakesWhenTheFirstBecomesOverdueNotByPolling()
    {
        // Polling once a minute: only the script's "overdue in N ms" can wake the receiver in time.
        var options = redis.Options();
        options.ReclaimInterval = TimeSpan.FromMinutes(1);
        var queue = Queue(options);
        Assert.Empty(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        var job = NewJob();
        await queue.EnqueueAsync(job, default);
        var prefer = new JobPreference { WarmElsewhere = new HashSet<string> { job.AffinityKey }, AffinityWait = TimeSpan.FromSeconds(1) };

        var started = Stopwatch.GetTimestamp();
        var leases = await queue.ReceiveAsync(1, TimeSpan.FromSeconds(50), prefer, default).AsTask().WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(job.Id, Assert.Single(leases).Job.Id);
        output.WriteLine($"a job kept for another worker (affinity wait 1 s) was taken after {Stopwatch.GetElapsedTime(started).TotalMilliseconds:0} ms");
    }

    [Fact]
    public async Task ReceiveAsync_TwoConsumersRacing_NeverLeaseOneDeliveryTwiceAndLeaveNoKeys()
    {
        var options = redis.Options("consumer-1");
        var first = Queue(options);
        var second = Queue(new RedisOptions { KeyPrefix = options.KeyPrefix, ReclaimInterval = options.ReclaimInterval, ConsumerName = "consumer-2" });
        string[] models = ["a", "b", "c", "d"];
        var jobs = new List<InferenceJob>();
        for (var i = 0; i < 120; i++)
        {
            var job = ContractJobs.Job(DateTimeOffset.UtcNow, i, models[i % models.Length]);
            job = new InferenceJob { Id = job.Id, Model = job.Model, Version = job.Version, Request = job.Request, SubmittedAt = job.SubmittedAt, Deadline = job.Deadline, PrefixKey = i % 5 == 0 ? "p" : null };
            jobs.Add(job);
            await (i % 2 == 0 ? first : second).EnqueueAsync(job, default);
        }

        // Each consumer runs two receive loops with different preferences; every job is put back once, so put-back and
        // fresh entries race in the same partitions, and the partitions empty while the other consumer reads them.
        var held = new HashSet<(string Id, int Delivery)>();
        var doubles = new List<string>();
        var completed = new List<string>();
        var loops = new (RedisJobQueue Queue, JobPreference Preference)[]
        {
            (first, new JobPreference { Warm = ["a", "b"], WarmElsewhere = new HashSet<string> { "c", "d" }, AffinityWait = TimeSpan.FromMinutes(5) }),
            (first, JobPreference.None),
            (second, new JobPreference { Warm = ["d", "c#p"], WarmElsewhere = new HashSet<string> { "a" }, AffinityWait = TimeSpan.FromMinutes(5) }),
            (second, JobPreference.None),
        }.Select(async loop =>
        {
            while (true)
            {
                lock (completed)
                {
                    if (completed.Count == jobs.Count)
                    {
                        return true;
                    }
                }

                var leases = await loop.Queue.ReceiveAsync(4, TimeSpan.FromMilliseconds(50), loop.Preference, default);
                foreach (var lease in leases)
                {
                    lock (completed)
                    {
                        if (!held.Add((lease.Job.Id, lease.DeliveryCount)))
                        {
                            doubles.Add($"{lease.Job.Id} delivery {lease.DeliveryCount}");
                        }
                    }

                    if (lease.DeliveryCount == 1)
                    {
                        await lease.AbandonAsync("once more", default);
                        continue;
                    }

                    await lease.CompleteAsync(default);
                    lock (completed)
                    {
                        completed.Add(lease.Job.Id);
                    }
                }
            }
        });

        await Task.WhenAll(loops).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Empty(doubles);
        Assert.Equal(jobs.Select(j => j.Id).Order(), completed.Order());
        Assert.Equal(2 * jobs.Count, held.Count);
        Assert.Equal(new QueueDepth(0, 0), await first.GetDepthAsync(default));
        var server = redis.Redis.GetServer(redis.Redis.GetEndPoints()[0]);
        Assert.Empty(server.Keys(pattern: options.KeyPrefix + "*"));
    }

    [Fact]
    public async Task ReceiveAsync_StreamLost_RecreatesTheGroupAndDelivers()
    {
        var queue = Queue(redis.Options());
        await queue.EnqueueAsync(NewJob(), default);
        await Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default)).CompleteAsync(default);

        // As after a restart of a Redis without persistence: the stream and its group are gone (with a job).
        await queue.EnqueueAsync(NewJob(), default);
        await redis.Database.KeyDeleteAsync(queue.PartitionStreamKey("m"));
        var job = NewJob();
        await queue.EnqueueAsync(job, default);

        Assert.Equal(job.Id, Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default)).Job.Id);
    }

    [Fact]
    public async Task EnqueueAsync_LargeRequest_TravelsBesideTheEntryAndIsDeletedWhenSettled()
    {
        var options = redis.Options();
        options.InlineRequestMaxBytes = 1;
        var queue = Queue(options);
        var small = Queue(redis.Options());
        var job = NewJob(5);
        await queue.EnqueueAsync(job, default);

        var entry = Assert.Single(await redis.Database.StreamRangeAsync(queue.PartitionStreamKey("m")));
        Assert.True(entry["request"].IsNull, "a large request must not sit inside the stream entry");
        var bodyKey = (string)entry["body"]!;
        Assert.True(await redis.Database.KeyExistsAsync(bodyKey));
        Assert.NotNull(await redis.Database.KeyTimeToLiveAsync(bodyKey));
        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        Assert.Equal(job.Request.Inputs[0].AsSpan<float>().ToArray(), lease.Job.Request.Inputs[0].AsSpan<float>().ToArray());
        await lease.CompleteAsync(default);

        Assert.False(await redis.Database.KeyExistsAsync(bodyKey));
        Assert.Equal(0, await redis.Database.StreamLengthAsync(queue.PartitionStreamKey("m")));

        // Below the threshold the request stays inline.
        await small.EnqueueAsync(NewJob(6), default);
        Assert.False(Assert.Single(await redis.Database.StreamRangeAsync(small.PartitionStreamKey("m")))["request"].IsNull);
    }

    [Fact]
    public async Task DeadLetterAsync_LargeRequest_MovesTheRequestIntoTheDeadLetter()
    {
        var options = redis.Options();
        options.InlineRequestMaxBytes = 1;
        var queue = Queue(options);
        var job = NewJob(8);
        await queue.EnqueueAsync(job, default);
        var bodyKey = (string)Assert.Single(await redis.Database.StreamRangeAsync(queue.PartitionStreamKey("m")))["body"]!;
        await Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default)).AbandonAsync("first failure", default);
        Assert.True(await redis.Database.KeyExistsAsync(bodyKey), "an abandoned job keeps its request");

        await Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default)).DeadLetterAsync("poison", default);

        Assert.False(await redis.Database.KeyExistsAsync(bodyKey));
        var letter = Assert.Single(await queue.ReadDeadLettersAsync(10, default));
        Assert.Equal(job.Request.Inputs[0].AsSpan<float>().ToArray(), letter.Job.Request.Inputs[0].AsSpan<float>().ToArray());
        Assert.Equal("poison", letter.Reason);
    }

    [Fact]
    public async Task ReceiveAsync_RequestBodyMissing_IsDeadLetteredAsUnreadable()
    {
        var options = redis.Options();
        options.InlineRequestMaxBytes = 1;
        var queue = Queue(options);
        var lost = NewJob(1);
        var good = NewJob(2);
        await queue.EnqueueAsync(lost, default);
        await queue.EnqueueAsync(good, default);
        var entries = await redis.Database.StreamRangeAsync(queue.PartitionStreamKey("m"));
        await redis.Database.KeyDeleteAsync((string)entries[0]["body"]!);

        var leases = await queue.ReceiveAsync(5, TimeSpan.Zero, default);

        Assert.Equal(good.Id, Assert.Single(leases).Job.Id);
        var dead = Assert.Single(await redis.Database.StreamRangeAsync(queue.DeadLetterKey));
        Assert.Equal(lost.Id, (string?)dead["id"]);
        Assert.Contains("request body", (string?)dead["reason"]);
    }

    [Fact]
    public async Task ReceiveAsync_UnreadableEntry_IsDeadLetteredNotRedeliveredForever()
    {
        var queue = Queue(redis.Options());
        await queue.GetDepthAsync(default);
        Assert.Empty(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        await redis.Database.StreamAddAsync(queue.PartitionStreamKey("m"), [new NameValueEntry("id", "broken"), new NameValueEntry("request", "not oip")]);
        var good = NewJob();
        await queue.EnqueueAsync(good, default);

        var leases = await queue.ReceiveAsync(5, TimeSpan.Zero, default);

        Assert.Equal(good.Id, Assert.Single(leases).Job.Id);
        var dead = Assert.Single(await redis.Database.StreamRangeAsync(queue.DeadLetterKey));
        Assert.Contains("unreadable", (string?)dead["reason"]);
        Assert.Equal(new QueueDepth(0, 1), await queue.GetDepthAsync(default));
    }

    [Fact]
    public async Task EnqueueAsync_RedisUnreachable_ThrowsUnavailableWithRetryAfter()
    {
        var nowhere = new RedisOptions { ConnectionString = $"127.0.0.1:{FreePort()},connectTimeout=500", UnavailableRetryAfterSeconds = 3 };
        var started = Stopwatch.GetTimestamp();
        await using var connection = (ConnectionMultiplexer)RedisServiceCollectionExtensions.Connect(nowhere);
        output.WriteLine($"connecting to a closed port returned after {Stopwatch.GetElapsedTime(started).TotalMilliseconds:0} ms");
        await using var queue = new RedisJobQueue(connection, RedisFixture.Wrap(nowhere), RedisFixture.Wrap(QueueOptions()), TimeProvider.System);

        var ex = await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(NewJob(), default).AsTask());

        Assert.Equal(InferenceError.Unavailable, ex.Error);
        Assert.Equal(3, ex.RetryAfterSeconds);
        Assert.Equal(InferenceError.Unavailable, (await Assert.ThrowsAsync<InferenceException>(() => queue.ReceiveAsync(1, TimeSpan.Zero, default).AsTask())).Error);
        Assert.Equal(InferenceError.Unavailable, (await Assert.ThrowsAsync<InferenceException>(() => queue.GetDepthAsync(default).AsTask())).Error);
    }

    [Fact]
    public async Task EnqueueAsync_RedisStoppedThenRestarted_FailsMeanwhileAndKeepsAcceptedJobs()
    {
        await using var server = await Testing.Services.RedisServer.StartAsync(appendOnly: true);
        var options = new RedisOptions { ConnectionString = server.ConnectionString, ReclaimInterval = TimeSpan.FromMilliseconds(100) };
        await using var connection = (ConnectionMultiplexer)RedisServiceCollectionExtensions.Connect(options);
        await using var queue = new RedisJobQueue(connection, RedisFixture.Wrap(options), RedisFixture.Wrap(QueueOptions()), TimeProvider.System);
        var accepted = NewJob(1);
        await queue.EnqueueAsync(accepted, default);

        await server.StopAsync();
        var refused = await Retry(async () =>
        {
            try
            {
                await queue.EnqueueAsync(NewJob(2), default);
                return null;
            }
            catch (InferenceException ex)
            {
                return ex;
            }
        });
        Assert.Equal(InferenceError.Unavailable, refused.Error);
        Assert.NotNull(refused.RetryAfterSeconds);

        await server.RestartAsync();
        var later = NewJob(3);
        await Retry(async () =>
        {
            try
            {
                await queue.EnqueueAsync(later, default);
                return "accepted";
            }
            catch (InferenceException ex) when (ex.Error == InferenceError.Unavailable)
            {
                return null;
            }
        });

        var ids = (await queue.ReceiveAsync(10, TimeSpan.Zero, default)).Select(l => l.Job.Id).ToList();
        Assert.Equal([accepted.Id, later.Id], ids);
    }

    private static async Task<T> Retry<T>(Func<Task<T?>> attempt)
        where T : class
    {
        var until = Stopwatch.GetTimestamp() + (30 * Stopwatch.Frequency);
        while (true)
        {
            if (await attempt() is { } value)
            {
                return value;
            }

            Assert.True(Stopwatch.GetTimestamp() < until, "no change within 30 s");
            await Task.Delay(50);
        }
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}
