using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Jobs;

public sealed class InMemoryJobQueueTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    private InMemoryJobQueue Queue(int capacity = 100, int maxDeliveries = 3) => new(
        Options.Create(new JobQueueOptions { Capacity = capacity, LeaseDuration = TimeSpan.FromSeconds(30), MaxDeliveryCount = maxDeliveries, RetryAfterSeconds = 2 }),
        _time);

    [Fact]
    public async Task ReceiveAsync_JobsQueued_ReturnsUpToMaxInFifoOrder()
    {
        var queue = Queue();
        var jobs = Enumerable.Range(0, 5).Select(i => TestJobs.Job("m", _time.GetUtcNow(), i)).ToList();
        foreach (var job in jobs)
        {
            await queue.EnqueueAsync(job, default);
        }

        var first = await queue.ReceiveAsync(3, TimeSpan.Zero, default);
        var second = await queue.ReceiveAsync(3, TimeSpan.Zero, default);

        Assert.Equal(jobs.Take(3).Select(j => j.Id), first.Select(l => l.Job.Id));
        Assert.Equal(jobs.Skip(3).Select(j => j.Id), second.Select(l => l.Job.Id));
        Assert.All(first, l => Assert.Equal(1, l.DeliveryCount));
        Assert.Equal(new QueueDepth(0, 5), await queue.GetDepthAsync(default));
    }

    [Fact]
    public async Task ReceiveAsync_EmptyQueue_WaitsThenReturnsEmpty()
    {
        var queue = Queue();
        var receive = queue.ReceiveAsync(4, TimeSpan.FromSeconds(1), default).AsTask();
        Assert.False(receive.IsCompleted);

        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.Empty(await receive.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task ReceiveAsync_JobArrivesWhileWaiting_WakesAtOnce()
    {
        var queue = Queue();
        var receive = queue.ReceiveAsync(4, TimeSpan.FromMinutes(1), default).AsTask();
        var job = TestJobs.Job("m", _time.GetUtcNow());

        await queue.EnqueueAsync(job, default);

        var leases = await receive.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(job.Id, Assert.Single(leases).Job.Id);
    }

    [Fact]
    public async Task ReceiveAsync_LeaseExpired_RedeliversWithHigherCountAndReason()
    {
        var queue = Queue();
        var job = TestJobs.Job("m", _time.GetUtcNow());
        await queue.EnqueueAsync(job, default);
        var stale = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        Assert.Empty(await queue.ReceiveAsync(1, TimeSpan.Zero, default));

        _time.Advance(TimeSpan.FromSeconds(31));
        var again = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));

        Assert.Equal(job.Id, again.Job.Id);
        Assert.Equal(2, again.DeliveryCount);
        Assert.Contains("lease expired", again.LastError);

        // The first worker's late completion must not remove the redelivered job.
        await stale.CompleteAsync(default);
        Assert.Equal(new QueueDepth(0, 1), await queue.GetDepthAsync(default));
        await again.CompleteAsync(default);
        Assert.Equal(new QueueDepth(0, 0), await queue.GetDepthAsync(default));
    }

    [Fact]
    public async Task RenewAsync_BeforeExpiry_KeepsTheJobInvisible()
    {
        var queue = Queue();
        await queue.EnqueueAsync(TestJobs.Job("m", _time.GetUtcNow()), default);
        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));

        _time.Advance(TimeSpan.FromSeconds(20));
        await lease.RenewAsync(default);
        _time.Advance(TimeSpan.FromSeconds(20));

        Assert.Empty(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        _time.Advance(TimeSpan.FromSeconds(11));
        Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
    }

    [Fact]
    public async Task AbandonAsync_MakesJobVisibleAtOnceWithTheError()
    {
        var queue = Queue();
        await queue.EnqueueAsync(TestJobs.Job("m", _time.GetUtcNow()), default);
        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));

        await lease.AbandonAsync("engine blew up", default);

        var again = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        Assert.Equal(2, again.DeliveryCount);
        Assert.Equal("engine blew up", again.LastError);
    }

    [Fact]
    public async Task EnqueueAsync_AtCapacity_ThrowsQueueFullWithRetryAfter()
    {
        var queue = Queue(capacity: 2);
        await queue.EnqueueAsync(TestJobs.Job("m", _time.GetUtcNow()), default);
        await queue.EnqueueAsync(TestJobs.Job("m", _time.GetUtcNow()), default);

        var ex = await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(TestJobs.Job("m", _time.GetUtcNow()), default).AsTask());

        Assert.Equal(InferenceError.QueueFull, ex.Error);
        Assert.Equal(2, ex.RetryAfterSeconds);
        Assert.Contains("full", ex.Message);
    }

    [Fact]
    public async Task DeadLetterAsync_RemovesJobAndKeepsReason()
    {
        var queue = Queue();
        var job = TestJobs.Job("m", _time.GetUtcNow());
        await queue.EnqueueAsync(job, default);
        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));

        await lease.DeadLetterAsync("poison", default);

        var dead = Assert.Single(queue.DeadLetters);
        Assert.Equal(job.Id, dead.Job.Id);
        Assert.Equal("poison", dead.Reason);
        Assert.Equal(new QueueDepth(0, 0), await queue.GetDepthAsync(default));
    }
}
