using System.Collections.Concurrent;
using System.Diagnostics;
using ServerlessInference.Onnx.Demo;
using StackExchange.Redis;
using Xunit.Abstractions;

namespace ServerlessInference.IntegrationTests;

[Collection(PlatformCollection.Name)]
[Trait("Category", "Integration")]
public sealed class WorkerKillTests(PlatformFixture fixture, ITestOutputHelper output)
{
    private const int JobCount = 16;
    private static readonly int[] Seeds = [31, 32, 33, 34];

    [Fact]
    public async Task KillNineOfAWorkerMidBatch_EveryAcceptedJobCompletesWithExactlyOneResult()
    {
        var host = fixture.Host;
        using var client = host.CreateClient();
        var workers = await host.WaitForWorkersAsync(client, PlatformFixture.StartTimeout);
        foreach (var seed in Seeds)
        {
            fixture.ExpectedResNet(seed);
        }

        // Count every terminal result the store announces: its publish script announces each result it stores.
        await using var redis = await ConnectionMultiplexer.ConnectAsync(fixture.Redis.ConnectionString);
        var announced = new ConcurrentDictionary<string, int>();
        await redis.GetSubscriber().SubscribeAsync(RedisChannel.Literal(host.KeyPrefix + "results"), (_, id) => announced.AddOrUpdate(id!, 1, (_, n) => n + 1));
        var db = redis.GetDatabase();
        var stream = host.Queue.PartitionStreamKey(ResNet18Model.Name);

        var jobs = new List<(string Id, int Seed)>();
        for (var i = 0; i < JobCount; i++)
        {
            var seed = Seeds[i % Seeds.Length];
            jobs.Add((await Jobs.SubmitAsync(client, ResNet18Model.Name, Oip.ResNetRequest(PlatformFixture.ResNetInput(seed), $"kill-{i}")), seed));
        }

        // The victim: a worker process holding leases (pending entries of its consumer) on at least two jobs while at
        // least one job has finished, i.e. in the middle of its batch.
        var clock = Stopwatch.StartNew();
        (string Id, int ProcessId, long Pending) victim = default;
        while (victim.Id is null)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"no worker was seen mid-batch in 30 s\nlog:\n{host.Logs.Tail()}");
            if (await AnySucceededAsync(client, jobs.Select(j => j.Id)))
            {
                var pending = (await db.StreamPendingAsync(stream, "workers")).Consumers ?? [];
                var busiest = workers
                    .Select(w => (w.Id, w.ProcessId, Pending: pending.FirstOrDefault(c => c.Name == PlatformHost.ConsumerName(w.ProcessId)).PendingMessageCount))
                    .MaxBy(w => w.Pending);
                if (busiest.Pending >= 2)
                {
                    victim = busiest;
                    break;
                }
            }

            await Task.Delay(20);
        }

        using (var process = Process.GetProcessById(victim.ProcessId))
        {
            process.Kill();
            process.WaitForExit(10_000);
        }

        var killedAt = clock.Elapsed;
        var pendingInfo = await db.StreamPendingAsync(stream, "workers");
        var leftBehind = (pendingInfo.Consumers ?? []).FirstOrDefault(c => c.Name == PlatformHost.ConsumerName(victim.ProcessId)).PendingMessageCount;
        output.WriteLine($"killed {victim.Id} (pid {victim.ProcessId}) at {killedAt.TotalSeconds:F1} s holding {victim.Pending} leases; {leftBehind} left behind");
        Assert.True(leftBehind >= 1, "the killed worker held no lease any more; the kill was not mid-batch");

        // Every job completes (the leases of the dead worker are reclaimed after the 3 s lease), with the right output.
        var done = await Jobs.WaitAllTerminalAsync(client, jobs.Select(j => j.Id), TimeSpan.FromSeconds(90), () => host.Logs.Tail());
        output.WriteLine($"all {jobs.Count} jobs terminal at {clock.Elapsed.TotalSeconds:F1} s");
        foreach (var (id, seed) in jobs)
        {
            var job = done[id];
            Assert.True(job.GetProperty("status").GetString() == "succeeded", $"job {id}: {job}");
            var response = Oip.JobResponse(job);
            Assert.Equal([1L, 512, 1, 1], Assert.Single(response.Outputs).Shape);
            Oip.AssertClose(fixture.ExpectedResNet(seed), response.Outputs[0].AsSpan<float>());
        }

        // Exactly one result each: one announcement per job, and no more arrive once the queue is empty.
        await WaitForAsync(async () => (await host.Queue.GetDepthAsync(CancellationToken.None)) is { Queued: 0, InFlight: 0 }, TimeSpan.FromSeconds(10), "the queue did not drain");
        await WaitForAsync(() => Task.FromResult(jobs.All(j => announced.ContainsKey(j.Id))), TimeSpan.FromSeconds(5), "a result was never announced");
        // With the queue empty no worker can publish again. Redis delivers a channel's messages to a subscriber in order,
        // so once a marker published now arrives, every earlier announcement (a duplicate included) has arrived too.
        var marker = "marker-" + Guid.NewGuid().ToString("N");
        await redis.GetSubscriber().PublishAsync(RedisChannel.Literal(host.KeyPrefix + "results"), marker);
        await WaitForAsync(() => Task.FromResult(announced.ContainsKey(marker)), TimeSpan.FromSeconds(10), "the marker was never announced");
        Assert.All(jobs, j => Assert.Equal(1, announced[j.Id]));
        Assert.Empty(await host.Queue.ReadDeadLettersAsync(10, CancellationToken.None));
        Assert.Equal(0, await db.StreamLengthAsync(host.Queue.DeadLetterKey));
        Assert.False(await db.KeyExistsAsync(stream), "the drained partition is removed, pending entries and all");

        // The scaler replaces the dead worker (MinReplicas 2).
        var replaced = await host.WaitForWorkersAsync(client, TimeSpan.FromSeconds(60));
        Assert.DoesNotContain(victim.ProcessId, replaced.Select(w => w.ProcessId));
        Assert.Contains(workers.Single(w => w.ProcessId != victim.ProcessId), replaced);
        Assert.NotEmpty(host.Logs.Matching($"Worker process {victim.Id} exited on its own"));
        await host.AssertScalingWithinMaxReplicasAsync(client);
    }

    private static async Task<bool> AnySucceededAsync(HttpClient client, IEnumerable<string> ids)
    {
        foreach (var id in ids)
        {
            using var poll = await client.GetAsync($"/jobs/{id}");
            if ((await Oip.ReadJsonAsync(poll)).GetProperty("status").GetString() == "succeeded")
            {
                return true;
            }
        }

        return false;
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition, TimeSpan timeout, string message)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(clock.Elapsed < timeout, $"{message} within {timeout.TotalSeconds} s");
            await Task.Delay(100);
        }
    }
}
