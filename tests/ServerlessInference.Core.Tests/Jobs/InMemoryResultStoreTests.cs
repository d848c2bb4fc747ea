using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Jobs;

public sealed class InMemoryResultStoreTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    private InMemoryResultStore Store() => new(Options.Create(new ResultStoreOptions { Ttl = TimeSpan.FromMinutes(5) }), _time);

    private JobRecord Done(InferenceJob job, JobStatus status = JobStatus.Succeeded, string? error = null) => new()
    {
        Id = job.Id,
        Model = job.Model,
        Version = job.Version,
        Status = status,
        SubmittedAt = job.SubmittedAt,
        CompletedAt = _time.GetUtcNow(),
        Error = error,
    };

    [Fact]
    public async Task WaitAsync_ResultPublished_ReturnsIt()
    {
        var store = Store();
        var job = TestJobs.Job("m", _time.GetUtcNow());
        await store.TrackAsync(job, default);
        var wait = store.WaitAsync(job.Id, TimeSpan.FromSeconds(60), default).AsTask();

        Assert.True(await store.TryStartAsync(job.Id, default));
        Assert.Equal(JobStatus.Running, (await store.GetAsync(job.Id, default))!.Status);
        await store.PublishAsync(Done(job), default);

        var record = await wait.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(JobStatus.Succeeded, record!.Status);
        Assert.NotNull(record.StartedAt);
    }

    [Fact]
    public async Task WaitAsync_Timeout_ReturnsTheLatestNonTerminalRecord()
    {
        var store = Store();
        var job = TestJobs.Job("m", _time.GetUtcNow());
        await store.TrackAsync(job, default);
        var wait = store.WaitAsync(job.Id, TimeSpan.FromSeconds(2), default).AsTask();

        _time.Advance(TimeSpan.FromSeconds(2));

        Assert.Equal(JobStatus.Queued, (await wait.WaitAsync(TimeSpan.FromSeconds(10)))!.Status);
    }

    [Fact]
    public async Task TryCancelAsync_Queued_CancelsAndNeverStarts()
    {
        var store = Store();
        var job = TestJobs.Job("m", _time.GetUtcNow());
        await store.TrackAsync(job, default);

        var (cancelled, record) = await store.TryCancelAsync(job.Id, default);

        Assert.True(cancelled);
        Assert.Equal(JobStatus.Cancelled, record!.Status);
        Assert.False(await store.TryStartAsync(job.Id, default));
        Assert.False((await store.TryCancelAsync(job.Id, default)).Cancelled);
    }

    [Fact]
    public async Task TryCancelAsync_Running_LeavesItRunning()
    {
        var store = Store();
        var job = TestJobs.Job("m", _time.GetUtcNow());
        await store.TrackAsync(job, default);
        await store.TryStartAsync(job.Id, default);

        var (cancelled, record) = await store.TryCancelAsync(job.Id, default);

        Assert.False(cancelled);
        Assert.Equal(JobStatus.Running, record!.Status);
        Assert.Null((await store.TryCancelAsync("nope", default)).Record);
    }

    [Fact]
    public async Task PublishAsync_Twice_KeepsTheFirstResult()
    {
        var store = Store();
        var job = TestJobs.Job("m", _time.GetUtcNow());
        await store.TrackAsync(job, default);

        await store.PublishAsync(Done(job, JobStatus.Succeeded), default);
        await store.PublishAsync(Done(job, JobStatus.Failed, "late duplicate"), default);

        Assert.Equal(JobStatus.Succeeded, (await store.GetAsync(job.Id, default))!.Status);
    }

    [Fact]
    public async Task GetAsync_AfterTtl_ReturnsNull()
    {
        var store = Store();
        var job = TestJobs.Job("m", _time.GetUtcNow(), deadline: TimeSpan.FromMinutes(1));
        await store.TrackAsync(job, default);
        await store.PublishAsync(Done(job), default);

        _time.Advance(TimeSpan.FromMinutes(5) + TimeSpan.FromSeconds(1));

        Assert.Null(await store.GetAsync(job.Id, default));
    }
}
