using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Jobs;
using ServerlessInference.Testing.Contracts;
using StackExchange.Redis;

namespace ServerlessInference.Redis.Tests;

/// <summary>The reconciler over the real Redis queue and result store: a record whose queue entry is gone is failed
/// with the reason; every job still in the queue, young, or ended is left alone.</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisJobReconcilerTests(RedisFixture redis) : IAsyncLifetime
{
    private static readonly TimeSpan s_grace = TimeSpan.FromMinutes(2);
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private RedisOptions _options = null!;
    private RedisJobQueue _queue = null!;
    private RedisResultStore _results = null!;

    public Task InitializeAsync()
    {
        _options = redis.Options();
        _queue = new RedisJobQueue(redis.Redis, RedisFixture.Wrap(_options), RedisFixture.Wrap(new JobQueueOptions()), _time);
        _results = new RedisResultStore(redis.Redis, RedisFixture.Wrap(_options), RedisFixture.Wrap(new ResultStoreOptions()), _time);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _queue.DisposeAsync();
        await _results.DisposeAsync();
    }

    private JobReconciler Reconciler() => new(_queue, _results, RedisFixture.Wrap(new JobReconcilerOptions { Grace = s_grace }), _time, NullLogger<JobReconciler>.Instance);

    private async Task<InferenceJob> SubmitAsync(bool enqueue = true)
    {
        var job = ContractJobs.Job(_time.GetUtcNow(), deadline: TimeSpan.FromHours(1));
        await _results.TrackAsync(job, default);
        if (enqueue)
        {
            await _queue.EnqueueAsync(job, default);
        }

        return job;
    }

    /// <summary>What a Redis restart from an append-only file can leave: the record without its stream entry.</summary>
    private async Task LoseEntryAsync(string jobId)
    {
        foreach (var entry in await redis.Database.StreamRangeAsync(_queue.PartitionStreamKey("m")))
        {
            if (entry["id"] == jobId)
            {
                await redis.Database.StreamAcknowledgeAsync(_queue.PartitionStreamKey("m"), _options.ConsumerGroup, entry.Id);
                await redis.Database.StreamDeleteAsync(_queue.PartitionStreamKey("m"), [entry.Id]);
                return;
            }
        }

        Assert.Fail($"job {jobId} has no entry to lose");
    }

    [Fact]
    public async Task ReconcileAsync_RecordsWhoseEntryIsGone_AreFailedWithTheReasonAndNothingElseIsTouched()
    {
        var waiting = await SubmitAsync();
        var running = await SubmitAsync();
        var lostQueued = await SubmitAsync();
        var lostRunning = await SubmitAsync();
        var done = await SubmitAsync();
        var notEnqueued = await SubmitAsync(enqueue: false);
        var leases = await _queue.ReceiveAsync(10, TimeSpan.Zero, default);
        Assert.Equal(5, leases.Count);
        Assert.True(await _results.TryStartAsync(running.Id, default));
        Assert.True(await _results.TryStartAsync(lostRunning.Id, default));
        Assert.True(await _results.TryStartAsync(done.Id, default));
        await _results.PublishAsync(ContractJobs.Done(done, _time.GetUtcNow()), default);
        await leases.Single(l => l.Job.Id == done.Id).CompleteAsync(default);
        await LoseEntryAsync(lostQueued.Id);
        await LoseEntryAsync(lostRunning.Id);

        // Within the grace nothing is judged: the gateway records a job just before it enqueues it.
        _time.Advance(s_grace - TimeSpan.FromSeconds(1));
        Assert.Empty(await Reconciler().ReconcileAsync(default));
        _time.Advance(TimeSpan.FromSeconds(2));
        var young = await SubmitAsync(enqueue: false);

        var failed = await Reconciler().ReconcileAsync(default);

        Assert.Equal(new[] { lostQueued.Id, lostRunning.Id, notEnqueued.Id }.Order(), failed.Order());
        var queued = (await _results.GetAsync(lostQueued.Id, default))!;
        Assert.Equal(JobStatus.Failed, queued.Status);
        Assert.Equal(JobReconciler.LostWhileQueued, queued.Error);
        Assert.Equal(JobReconciler.LostWhileQueued, (await _results.GetAsync(notEnqueued.Id, default))!.Error);
        var started = (await _results.GetAsync(lostRunning.Id, default))!;
        Assert.Equal(JobStatus.Failed, started.Status);
        Assert.Equal(JobReconciler.LostWhileRunning, started.Error);
        Assert.NotNull(started.StartedAt);
        Assert.Equal(JobStatus.Queued, (await _results.GetAsync(waiting.Id, default))!.Status);
        Assert.Equal(JobStatus.Running, (await _results.GetAsync(running.Id, default))!.Status);
        Assert.Equal(JobStatus.Succeeded, (await _results.GetAsync(done.Id, default))!.Status);
        Assert.Equal(JobStatus.Queued, (await _results.GetAsync(young.Id, default))!.Status);

        // A second sweep finds nothing more.
        Assert.Empty(await Reconciler().ReconcileAsync(default));
    }

    [Fact]
    public async Task ListJobIdsAsync_ManyPagesWithAbandonedJobs_ListsEveryJobHeldAndNoSettledOne()
    {
        var jobs = new List<InferenceJob>();
        for (var i = 0; i < 1_100; i++)
        {
            jobs.Add(await SubmitAsync());
        }

        var leases = await _queue.ReceiveAsync(20, TimeSpan.Zero, default);
        await leases[0].CompleteAsync(default);
        await leases[1].AbandonAsync("try again", default);

        var ids = await _queue.ListJobIdsAsync(default);

        Assert.Equal(jobs.Select(j => j.Id).Where(id => id != leases[0].Job.Id).Order(), ids.Order());
    }

    [Fact]
    public async Task ListUnfinishedAsync_SkipsEndedRecordsAndKeysOfAnotherKind()
    {
        var queued = await SubmitAsync(enqueue: false);
        var done = await SubmitAsync(enqueue: false);
        await _results.PublishAsync(ContractJobs.Done(done, _time.GetUtcNow()), default);
        await redis.Database.StringSetAsync(_options.KeyPrefix + "job:not-a-hash", "x");

        var unfinished = new List<JobRecord>();
        await foreach (var record in _results.ListUnfinishedAsync(default))
        {
            unfinished.Add(record);
        }

        var only = Assert.Single(unfinished);
        Assert.Equal(queued.Id, only.Id);
        Assert.Equal(JobStatus.Queued, only.Status);
        Assert.Equal(queued.SubmittedAt, only.SubmittedAt);
    }
}
