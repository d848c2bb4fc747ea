using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Hosting;
using ServerlessInference.Jobs;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Jobs;

/// <summary>The reconciler's rule on listable doubles of the in-memory queue and store, its sweep on a fake clock, and
/// its settings. (The Redis pair is tested against a real Redis in the Redis tests.)</summary>
public sealed class JobReconcilerTests
{
    private static readonly TimeSpan s_grace = TimeSpan.FromMinutes(2);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
    private readonly ListableQueue _queue;
    private readonly ListableStore _results;

    public JobReconcilerTests()
    {
        _queue = new ListableQueue(new InMemoryJobQueue(Options.Create(new JobQueueOptions()), _time));
        _results = new ListableStore(new InMemoryResultStore(Options.Create(new ResultStoreOptions()), _time));
    }

    private JobReconciler Reconciler(IJobQueue? queue = null, IResultStore? results = null) =>
        new(queue ?? _queue, results ?? _results, Options.Create(new JobReconcilerOptions { Grace = s_grace, Interval = TimeSpan.FromSeconds(10) }), _time, NullLogger<JobReconciler>.Instance);

    private async Task<InferenceJob> TrackAsync(bool enqueue)
    {
        var job = TestJobs.Job("m", _time.GetUtcNow(), deadline: TimeSpan.FromHours(1));
        await _results.TrackAsync(job, default);
        if (enqueue)
        {
            await _queue.EnqueueAsync(job, default);
        }

        return job;
    }

    [Fact]
    public async Task ReconcileAsync_UnfinishedRecordInNoQueueAfterTheGrace_IsFailedWithTheReason()
    {
        var held = await TrackAsync(enqueue: true);
        var lost = await TrackAsync(enqueue: false);
        var lostRunning = await TrackAsync(enqueue: false);
        Assert.True(await _results.TryStartAsync(lostRunning.Id, default));
        var ended = await TrackAsync(enqueue: false);
        await _results.PublishAsync(new JobRecord { Id = ended.Id, Model = "m", Version = "1", Status = JobStatus.Succeeded, SubmittedAt = ended.SubmittedAt }, default);

        Assert.Empty(await Reconciler().ReconcileAsync(default));
        _time.Advance(s_grace + TimeSpan.FromSeconds(1));
        var failed = await Reconciler().ReconcileAsync(default);

        Assert.Equal(new[] { lost.Id, lostRunning.Id }.Order(), failed.Order());
        Assert.Equal(JobReconciler.LostWhileQueued, (await _results.GetAsync(lost.Id, default))!.Error);
        Assert.Equal(JobReconciler.LostWhileRunning, (await _results.GetAsync(lostRunning.Id, default))!.Error);
        Assert.Equal(JobStatus.Queued, (await _results.GetAsync(held.Id, default))!.Status);
        Assert.Equal(JobStatus.Succeeded, (await _results.GetAsync(ended.Id, default))!.Status);
    }

    [Fact]
    public async Task ReconcileAsync_QueueOrStoreCannotBeListed_RefusesAndSaysWhy()
    {
        var plainQueue = new InMemoryJobQueue(Options.Create(new JobQueueOptions()), _time);
        var plainStore = new InMemoryResultStore(Options.Create(new ResultStoreOptions()), _time);

        Assert.False(Reconciler(queue: plainQueue).CanRun);
        Assert.False(Reconciler(results: plainStore).CanRun);
        Assert.True(Reconciler().CanRun);
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => Reconciler(queue: plainQueue).ReconcileAsync(default).AsTask());
        Assert.Contains("cannot be listed", ex.Message);
    }

    [Fact]
    public async Task JobReconcilerService_EveryInterval_SweepsAndFailsTheStrandedJob()
    {
        var lost = await TrackAsync(enqueue: false);
        _time.Advance(s_grace + TimeSpan.FromSeconds(1));
        var options = Options.Create(new JobReconcilerOptions { Grace = s_grace, Interval = TimeSpan.FromSeconds(10) });
        using var service = new JobReconcilerService(Reconciler(), options, _time, NullLogger<JobReconcilerService>.Instance);
        await service.StartAsync(default);

        // .NET 10 starts ExecuteAsync on the thread pool, so its timer may not exist yet: step the clock one interval at
        // a time until the sweep has run (the real-time bound only stops a hung test).
        var bound = System.Diagnostics.Stopwatch.StartNew();
        while ((await _results.GetAsync(lost.Id, default))!.Status == JobStatus.Queued)
        {
            Assert.True(bound.Elapsed < TimeSpan.FromSeconds(30), "no sweep ran within 30 s");
            if (_time.GetUtcNow() < _time.Start.AddHours(1))
            {
                _time.Advance(TimeSpan.FromSeconds(10));
            }

            await Task.Yield();
        }

        await service.StopAsync(default);
        var record = await _results.GetAsync(lost.Id, default);

        Assert.Equal(JobStatus.Failed, record!.Status);
        Assert.Equal(JobReconciler.LostWhileQueued, record.Error);
    }

    [Fact]
    public void Validate_GraceUnderASecondOrNoInterval_FailsNamingTheSetting()
    {
        var validator = new JobReconcilerOptionsValidator();

        Assert.Contains("Inference:Reconciler:Grace must be at least one second", validator.Validate(null, new JobReconcilerOptions { Grace = TimeSpan.Zero }).FailureMessage);
        Assert.Contains("Inference:Reconciler:Interval must be positive", validator.Validate(null, new JobReconcilerOptions { Interval = TimeSpan.Zero }).FailureMessage);
        Assert.True(validator.Validate(null, new JobReconcilerOptions()).Succeeded);
    }

    /// <summary>The in-memory queue, listable: the ids enqueued and not yet settled (depth stands in for the rest).</summary>
    private sealed class ListableQueue(InMemoryJobQueue inner) : IJobQueue, IJobQueueInventory
    {
        private readonly HashSet<string> _ids = [];

        public int MaxDeliveryCount => inner.MaxDeliveryCount;

        public async ValueTask EnqueueAsync(InferenceJob job, CancellationToken cancellationToken)
        {
            await inner.EnqueueAsync(job, cancellationToken);
            _ids.Add(job.Id);
        }

        public ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, JobPreference preference, CancellationToken cancellationToken) =>
            inner.ReceiveAsync(maxCount, maxWait, preference, cancellationToken);

        public ValueTask<QueueDepth> GetDepthAsync(CancellationToken cancellationToken) => inner.GetDepthAsync(cancellationToken);

        public ValueTask<IReadOnlySet<string>> ListJobIdsAsync(CancellationToken cancellationToken) => ValueTask.FromResult<IReadOnlySet<string>>(_ids.ToHashSet());
    }

    /// <summary>The in-memory store, listable through the ids it was asked to track.</summary>
    private sealed class ListableStore(InMemoryResultStore inner) : IResultStore, IUnfinishedJobScan
    {
        private readonly List<string> _tracked = [];

        public async ValueTask TrackAsync(InferenceJob job, CancellationToken cancellationToken)
        {
            await inner.TrackAsync(job, cancellationToken);
            _tracked.Add(job.Id);
        }

        public ValueTask<bool> TryStartAsync(string jobId, CancellationToken cancellationToken) => inner.TryStartAsync(jobId, cancellationToken);

        public ValueTask<(bool Cancelled, JobRecord? Record)> TryCancelAsync(string jobId, CancellationToken cancellationToken) => inner.TryCancelAsync(jobId, cancellationToken);

        public ValueTask PublishAsync(JobRecord result, CancellationToken cancellationToken) => inner.PublishAsync(result, cancellationToken);

        public ValueTask<JobRecord?> GetAsync(string jobId, CancellationToken cancellationToken) => inner.GetAsync(jobId, cancellationToken);

        public ValueTask<JobRecord?> WaitAsync(string jobId, TimeSpan timeout, CancellationToken cancellationToken) => inner.WaitAsync(jobId, timeout, cancellationToken);

        public ValueTask MarkAnsweredAsync(string jobId, CancellationToken cancellationToken) => inner.MarkAnsweredAsync(jobId, cancellationToken);

        public async IAsyncEnumerable<JobRecord> ListUnfinishedAsync([EnumeratorCancellation] CancellationToken cancellationToken)
        {
            foreach (var id in _tracked.ToList())
            {
                if (await inner.GetAsync(id, cancellationToken) is { Status: JobStatus.Queued or JobStatus.Running } record)
                {
                    yield return record;
                }
            }
        }
    }
}
