using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Testing.Contracts;

namespace ServerlessInference.Tests.Embedded;

/// <summary>What the embedded queue keeps stays bounded: its byte count follows the jobs, and dead letters (which hold
/// whole jobs) are capped in number and bytes, oldest dropped first.</summary>
public sealed class InMemoryJobQueueBoundsTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));

    private InMemoryJobQueue Queue(long maxBytes = 1L << 30) =>
        new(Options.Create(new JobQueueOptions { Capacity = 100_000, MaxQueuedBytes = maxBytes }), _time);

    private async Task<InferenceJob> DeadLetterOneAsync(InMemoryJobQueue queue, int values = 4)
    {
        var job = new InferenceJob
        {
            Id = InferenceJob.NewId(),
            Model = "m",
            Version = "1",
            Request = ContractJobs.Request(new float[values]),
            SubmittedAt = _time.GetUtcNow(),
            Deadline = _time.GetUtcNow() + TimeSpan.FromMinutes(10),
        };
        await queue.EnqueueAsync(job, default);
        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        await lease.DeadLetterAsync("poison", default);
        return job;
    }

    [Fact]
    public async Task QueuedBytes_FollowsEnqueueAbandonAndComplete()
    {
        var queue = Queue();
        var job = ContractJobs.Job(_time.GetUtcNow());

        await queue.EnqueueAsync(job, default);
        Assert.Equal(job.ApproximateBytes, queue.QueuedBytes);
        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        await lease.AbandonAsync("again", default);
        Assert.Equal(job.ApproximateBytes, queue.QueuedBytes);
        await Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default)).CompleteAsync(default);

        Assert.Equal(0, queue.QueuedBytes);
    }

    [Fact]
    public async Task DeadLetters_BeyondMaxDeadLetters_DropTheOldest()
    {
        var queue = Queue();
        var first = await DeadLetterOneAsync(queue);
        InferenceJob last = first;
        for (var i = 0; i < InMemoryJobQueue.MaxDeadLetters; i++)
        {
            last = await DeadLetterOneAsync(queue);
        }

        var letters = queue.DeadLetters;
        Assert.Equal(InMemoryJobQueue.MaxDeadLetters, letters.Count);
        Assert.DoesNotContain(letters, l => l.Job.Id == first.Id);
        Assert.Equal(last.Id, letters[^1].Job.Id);
        Assert.Equal(0, queue.QueuedBytes);
    }

    [Fact]
    public async Task DeadLetters_BeyondTheByteBudget_DropTheOldest()
    {
        // Jobs of 16 KiB of floats: three fit in 60 KiB of dead letters, four do not.
        var queue = Queue(maxBytes: 60 * 1024);
        var jobs = new List<InferenceJob>();
        for (var i = 0; i < 4; i++)
        {
            jobs.Add(await DeadLetterOneAsync(queue, values: 4096));
        }

        Assert.Equal(jobs.Skip(1).Select(j => j.Id), queue.DeadLetters.Select(l => l.Job.Id));
    }
}
