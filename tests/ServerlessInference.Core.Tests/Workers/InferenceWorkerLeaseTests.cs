using Microsoft.Extensions.Logging.Abstractions;
using ServerlessInference.Jobs;
using ServerlessInference.Tests.TestDoubles;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Workers;

/// <summary>Slow deliveries, redeliveries and lost leases: no job is mislabelled, no success is hidden.</summary>
public sealed class InferenceWorkerLeaseTests : IDisposable
{
    private readonly WorkerRig _rig;

    public InferenceWorkerLeaseTests() => _rig = new WorkerRig(maxDeliveries: 1);

    public void Dispose() => _rig.Dispose();

    private static async Task StopAsync(InferenceWorker worker, Task run)
    {
        worker.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>The first engine call waits at the gate (a slow first delivery); later calls run at once.</summary>
    private (TaskCompletionSource Running, TaskCompletionSource Gate) HoldFirstRun()
    {
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = 0;
        _rig.Engine.BeforeRun = (_, _) => Interlocked.Exchange(ref first, 1) == 0 ? HoldAsync() : Task.CompletedTask;
        return (running, gate);

        async Task HoldAsync()
        {
            running.TrySetResult();
            await gate.Task;
        }
    }

    private async Task<JobRecord> EventuallyAsync(string jobId, Func<JobRecord, bool> done)
    {
        var giveUp = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var record = await _rig.Results.GetAsync(jobId, default);
            if (record is not null && done(record))
            {
                return record;
            }

            Assert.True(DateTime.UtcNow < giveUp, $"job {jobId} stayed {record?.Status}");
            await Task.Delay(5);
        }
    }

    [Fact]
    public async Task RunAsync_RedeliveryPastTheDeadlineWhileTheFirstDeliveryRuns_IsNotExpired()
    {
        using var rig = new WorkerRig(maxDeliveries: 3);
        rig.Models.Add("m");
        rig.WorkerOptions.LeaseRenewInterval = TimeSpan.FromDays(1); // the slow worker's lease runs out
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var first = 0;
        rig.Engine.BeforeRun = async (_, _) =>
        {
            if (Interlocked.Exchange(ref first, 1) == 0)
            {
                running.TrySetResult();
                await gate.Task;
            }
        };
        var job = TestJobs.Job("m", rig.Time.GetUtcNow(), deadline: TimeSpan.FromSeconds(20));
        await rig.Results.TrackAsync(job, default);
        await rig.Queue.EnqueueAsync(job, default);
        var slow = rig.Worker("slow");
        var slowRun = slow.RunAsync(default);
        await running.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // The 30 s lease ends past the 20 s deadline: the job comes back while the first delivery still runs.
        rig.Time.Advance(TimeSpan.FromSeconds(31));
        var second = rig.Worker("second");
        var secondRun = second.RunAsync(default);
        var record = (await rig.AwaitAllAsync([job])).Single();
        gate.SetResult();
        await StopAsync(second, secondRun);
        await StopAsync(slow, slowRun);

        // It was started in time (by the first delivery), so it is not "not started before its deadline".
        Assert.Equal(JobStatus.Succeeded, record.Status);
        Assert.Equal(JobStatus.Succeeded, (await rig.Results.GetAsync(job.Id, default))!.Status);
        Assert.Equal(1, second.JobsCompleted);
    }

    [Fact]
    public async Task RunAsync_DeadLetteredWhileASlowWorkerRunsIt_TheSlowWorkersSuccessShows()
    {
        _rig.Models.Add("m");
        _rig.WorkerOptions.LeaseRenewInterval = TimeSpan.FromDays(1);
        var (running, gate) = HoldFirstRun();
        var job = await _rig.SubmitAsync("m", seed: 3);
        var slow = _rig.Worker("slow");
        var slowRun = slow.RunAsync(default);
        await running.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // Redelivered once past the max of 1: the second worker dead-letters it.
        _rig.Time.Advance(TimeSpan.FromSeconds(31));
        var second = _rig.Worker("second");
        var secondRun = second.RunAsync(default);
        var deadLettered = (await _rig.AwaitAllAsync([job])).Single();
        Assert.Equal(JobStatus.Failed, deadLettered.Status);
        Assert.Contains("dead-lettered", deadLettered.Error);
        Assert.Single(_rig.Queue.DeadLetters);

        gate.SetResult();
        var record = await EventuallyAsync(job.Id, r => r.Status != JobStatus.Failed);
        await StopAsync(second, secondRun);
        await StopAsync(slow, slowRun);

        Assert.Equal(JobStatus.Succeeded, record.Status);
        Assert.Null(record.Error);
        Assert.Equal([6f, 8, 10, 12], record.Response!.Outputs.Single().AsSpan<float>().ToArray());
    }

    [Fact]
    public async Task RunAsync_LeaseRenewalFails_TheLeaseIsLostAndTheResultStillSettles()
    {
        _rig.Models.Add("m");
        var (running, gate) = HoldFirstRun();
        var queue = new LeaseLosingQueue(_rig.Queue);
        var job = await _rig.SubmitAsync("m", seed: 1);
        var worker = new InferenceWorker("w", queue, _rig.Results, _rig.Pool, _rig.Catalog, _rig.Registry, _rig.WorkerOptions, _rig.Time, _rig.Metrics, NullLogger.Instance);
        var run = worker.RunAsync(default);
        await running.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // Two renewal periods (10 s each) within the 30 s lease: the first renewal fails; a lost lease is not renewed again.
        for (var i = 0; i < 5; i++)
        {
            _rig.Time.Advance(TimeSpan.FromSeconds(5));
            await Task.Yield();
        }

        var giveUp = DateTime.UtcNow.AddSeconds(30);
        while (queue.Renewals == 0 && DateTime.UtcNow < giveUp)
        {
            await Task.Delay(5);
        }

        gate.SetResult();
        var record = (await _rig.AwaitAllAsync([job])).Single();
        var later = await _rig.SubmitAsync("m", seed: 2);
        // A lost lease's failed completion is no settle failure: the worker takes the next job without a retry pause.
        var next = (await _rig.AwaitAllAsync([later])).Single();
        await StopAsync(worker, run);

        Assert.Equal(JobStatus.Succeeded, record.Status);
        Assert.Equal(JobStatus.Succeeded, next.Status);
        Assert.Equal(1, queue.Renewals);
        Assert.Equal(2, worker.JobsCompleted);
    }

    /// <summary>A queue whose lease renewals fail (the backing service lost the lease); completing a lease whose
    /// renewal failed fails too, as it would once another delivery holds the job.</summary>
    private sealed class LeaseLosingQueue(IJobQueue inner) : IJobQueue
    {
        private int _renewals;

        public int Renewals => Volatile.Read(ref _renewals);

        public int MaxDeliveryCount => inner.MaxDeliveryCount;

        public ValueTask EnqueueAsync(InferenceJob job, CancellationToken cancellationToken) => inner.EnqueueAsync(job, cancellationToken);

        public async ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, JobPreference preference, CancellationToken cancellationToken) =>
            (await inner.ReceiveAsync(maxCount, maxWait, preference, cancellationToken)).Select(l => (JobLease)new Lease(this, l)).ToList();

        public ValueTask<QueueDepth> GetDepthAsync(CancellationToken cancellationToken) => inner.GetDepthAsync(cancellationToken);

        private sealed class Lease(LeaseLosingQueue queue, JobLease inner) : JobLease
        {
            private volatile bool _lost;

            public override InferenceJob Job => inner.Job;

            public override int DeliveryCount => inner.DeliveryCount;

            public override string? LastError => inner.LastError;

            public override ValueTask CompleteAsync(CancellationToken cancellationToken) =>
                _lost ? throw new InvalidOperationException("the lease is no longer held") : inner.CompleteAsync(cancellationToken);

            public override ValueTask AbandonAsync(string? error, CancellationToken cancellationToken) => inner.AbandonAsync(error, cancellationToken);

            public override ValueTask DeadLetterAsync(string reason, CancellationToken cancellationToken) => inner.DeadLetterAsync(reason, cancellationToken);

            public override ValueTask RenewAsync(CancellationToken cancellationToken)
            {
                Interlocked.Increment(ref queue._renewals);
                _lost = true;
                throw new InvalidOperationException("renewal refused: the lease was lost");
            }
        }
    }
}

public sealed class InferenceWorkerErrorTextTests : IDisposable
{
    private readonly WorkerRig _rig = new();

    public void Dispose() => _rig.Dispose();

    [Fact]
    public async Task RunAsync_LoadFailureNamingALocalPath_TheJobsErrorCarriesNoPath()
    {
        _rig.Models.Add("m");
        string? weightsPath = null;
        _rig.Engine.LoadFailure = path =>
        {
            weightsPath = path;
            return new InvalidOperationException($"Load model from {path} failed:Protobuf parsing failed.");
        };
        var job = await _rig.SubmitAsync("m");

        var worker = _rig.Worker();
        var run = worker.RunAsync(default);
        var record = (await _rig.AwaitAllAsync([job])).Single();
        worker.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(JobStatus.Failed, record.Status);
        Assert.NotNull(weightsPath);
        Assert.Contains("failed to load", record.Error);
        Assert.Contains("Protobuf parsing failed", record.Error);
        Assert.DoesNotContain(_rig.Models.Root, record.Error);
        Assert.DoesNotContain(Path.GetDirectoryName(weightsPath)!, record.Error);
    }
}
