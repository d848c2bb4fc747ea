using ServerlessInference.Jobs;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Workers;

public sealed class InferenceWorkerTests : IDisposable
{
    private readonly WorkerRig _rig = new();

    public void Dispose() => _rig.Dispose();

    private static float[] Output(JobRecord record) => record.Response!.Outputs.Single().AsSpan<float>().ToArray();

    private static async Task StopAsync(ServerlessInference.Workers.InferenceWorker worker, Task run)
    {
        worker.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
    }

    /// <summary>Yields until <paramref name="condition"/> holds; the real-time bound only stops a hung test.</summary>
    private static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        var bound = System.Diagnostics.Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(bound.Elapsed < TimeSpan.FromSeconds(30), "the condition did not hold within 30 s");
            await Task.Yield();
        }
    }

    [Fact]
    public async Task RunAsync_ManyJobs_BatchesThemAndEachGetsItsOwnResult()
    {
        _rig.Models.Add("m");
        var jobs = new List<InferenceJob>();
        for (var i = 0; i < 20; i++)
        {
            jobs.Add(await _rig.SubmitAsync("m", seed: i * 10));
        }

        var worker = _rig.Worker();
        var run = worker.RunAsync(default);
        var records = await _rig.AwaitAllAsync(jobs);
        await StopAsync(worker, run);

        for (var i = 0; i < jobs.Count; i++)
        {
            Assert.Equal(JobStatus.Succeeded, records[i].Status);
            Assert.Equal([i * 20f, i * 20 + 2, i * 20 + 4, i * 20 + 6], Output(records[i]));
        }

        // 20 jobs, at most 8 per receive: three engine calls, not twenty.
        Assert.Equal(3, _rig.Engine.Models.Single().Batches);
        Assert.Equal(20, worker.JobsCompleted);
        Assert.Equal(new QueueDepth(0, 0), await _rig.Queue.GetDepthAsync(default));
    }

    [Fact]
    public async Task RunAsync_BackToBackBatches_ReportBusyOnceAndIdleOnlyWhenTheQueueIsEmpty()
    {
        _rig.Models.Add("m");
        var jobs = new List<InferenceJob>();
        for (var i = 0; i < 20; i++)
        {
            jobs.Add(await _rig.SubmitAsync("m", seed: i));
        }

        var registry = new RecordingRegistry(_rig.Registry);
        var worker = new ServerlessInference.Workers.InferenceWorker("w", _rig.Queue, _rig.Results, _rig.Pool, _rig.Catalog, registry,
            _rig.WorkerOptions, _rig.Time, _rig.Metrics, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        var run = worker.RunAsync(default);
        await _rig.AwaitAllAsync(jobs);
        var giveUp = DateTime.UtcNow.AddSeconds(30);
        while (registry.InFlightReported.Count < 3 && DateTime.UtcNow < giveUp)
        {
            await Task.Delay(5);
        }

        await StopAsync(worker, run);

        // Start (idle), the first batch (busy), the empty queue after the third batch (idle): not two per batch.
        Assert.Equal(3, _rig.Engine.Models.Single().Batches);
        Assert.Equal([0, 8, 0], registry.InFlightReported.Take(3));
        Assert.Equal(3, registry.InFlightReported.Count);
    }

    private sealed class RecordingRegistry(ServerlessInference.Workers.IWorkerRegistry inner) : ServerlessInference.Workers.IWorkerRegistry
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<int> _inFlight = new();

        public IReadOnlyCollection<int> InFlightReported => _inFlight;

        public ValueTask HeartbeatAsync(ServerlessInference.Workers.WorkerStatus status, CancellationToken cancellationToken)
        {
            _inFlight.Enqueue(status.InFlight);
            return inner.HeartbeatAsync(status, cancellationToken);
        }

        public ValueTask RemoveAsync(string workerId, CancellationToken cancellationToken) => inner.RemoveAsync(workerId, cancellationToken);

        public ValueTask<IReadOnlyList<ServerlessInference.Workers.WorkerStatus>> ListAsync(CancellationToken cancellationToken) => inner.ListAsync(cancellationToken);
    }

    [Fact]
    public async Task RunAsync_WorkerDiesMidBatch_LeasesExpireAndEveryJobSucceedsOnce()
    {
        _rig.Models.Add("m");
        var jobs = new List<InferenceJob>();
        for (var i = 0; i < 5; i++)
        {
            jobs.Add(await _rig.SubmitAsync("m", seed: i));
        }

        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _rig.Engine.BeforeRun = async (_, ct) =>
        {
            running.TrySetResult();
            await Task.Delay(Timeout.Infinite, ct); // hangs until the process "dies"
        };
        using var crash = new CancellationTokenSource();
        var doomed = _rig.Worker("doomed");
        var doomedRun = doomed.RunAsync(crash.Token);
        await running.Task.WaitAsync(TimeSpan.FromSeconds(30));

        await crash.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => doomedRun.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.All(jobs, j => Assert.Equal(JobStatus.Running, _rig.Results.GetAsync(j.Id, default).AsTask().Result!.Status));
        Assert.Equal(new QueueDepth(0, 5), await _rig.Queue.GetDepthAsync(default));

        _rig.Engine.BeforeRun = null;
        _rig.Time.Advance(TimeSpan.FromSeconds(31));
        var survivor = _rig.Worker("survivor");
        var survivorRun = survivor.RunAsync(default);
        var records = await _rig.AwaitAllAsync(jobs);
        await StopAsync(survivor, survivorRun);

        Assert.All(records, r => Assert.Equal(JobStatus.Succeeded, r.Status));
        Assert.Equal(5, survivor.JobsCompleted);
        Assert.Equal(0, doomed.JobsCompleted);
        Assert.Equal(new QueueDepth(0, 0), await _rig.Queue.GetDepthAsync(default));
        Assert.Empty(_rig.Queue.DeadLetters);
    }

    [Fact]
    public async Task RunAsync_PoisonJob_IsDeadLetteredWithTheReasonAndFails()
    {
        _rig.Models.Add("m");
        _rig.Engine.BeforeRun = (_, _) => throw new InvalidOperationException("kernel exploded");
        var job = await _rig.SubmitAsync("m");

        var worker = _rig.Worker();
        var run = worker.RunAsync(default);
        var record = (await _rig.AwaitAllAsync([job])).Single();
        await StopAsync(worker, run);

        Assert.Equal(JobStatus.Failed, record.Status);
        Assert.Contains("dead-lettered after 3 deliveries", record.Error);
        Assert.Contains("kernel exploded", record.Error);
        var dead = Assert.Single(_rig.Queue.DeadLetters);
        Assert.Equal(job.Id, dead.Job.Id);
        Assert.Equal(record.Error, dead.Reason);
        Assert.Equal(3, _rig.Engine.Models.Single().Batches);
    }

    [Fact]
    public async Task RunAsync_OneBadRequest_FailsAloneOthersSucceed()
    {
        _rig.Models.Add("m");
        var good1 = await _rig.SubmitAsync("m", 1);
        var bad = await _rig.SubmitAsync("m", float.NaN);
        var good2 = await _rig.SubmitAsync("m", 2);

        var worker = _rig.Worker();
        var run = worker.RunAsync(default);
        var records = await _rig.AwaitAllAsync([good1, bad, good2]);
        await StopAsync(worker, run);

        Assert.Equal([JobStatus.Succeeded, JobStatus.Failed, JobStatus.Succeeded], records.Select(r => r.Status));
        Assert.Equal("NaN input", records[1].Error);
        Assert.Equal(InferenceError.BadRequest, records[1].ErrorKind);
        Assert.All([records[0], records[2]], r => Assert.Null(r.ErrorKind));
        Assert.Equal(1, _rig.Engine.Models.Single().Batches);
    }

    [Fact]
    public async Task RunAsync_CancelledOrExpiredJobs_AreNotRun()
    {
        _rig.Models.Add("m");
        var cancelled = await _rig.SubmitAsync("m");
        await _rig.Results.TryCancelAsync(cancelled.Id, default);
        var late = TestJobs.Job("m", _rig.Time.GetUtcNow(), deadline: TimeSpan.FromSeconds(5));
        await _rig.Results.TrackAsync(late, default);
        await _rig.Queue.EnqueueAsync(late, default);
        _rig.Time.Advance(TimeSpan.FromSeconds(6));

        var worker = _rig.Worker();
        var run = worker.RunAsync(default);
        var records = await _rig.AwaitAllAsync([cancelled, late]);
        while ((await _rig.Queue.GetDepthAsync(default)).Total > 0)
        {
            await Task.Yield();
        }

        await StopAsync(worker, run);

        Assert.Equal(JobStatus.Cancelled, records[0].Status);
        Assert.Equal(JobStatus.Expired, records[1].Status);
        Assert.Contains("deadline", records[1].Error);
        Assert.Empty(_rig.Engine.Models);
    }

    [Fact]
    public async Task RunAsync_JobWithoutARecord_IsFailedWithTheReasonAndDeadLetteredNotSilentlyCompleted()
    {
        _rig.Models.Add("m");
        // Its record is gone (evicted, or lost in a restart of the store) while the queue kept the job.
        var orphan = TestJobs.Job("m", _rig.Time.GetUtcNow());
        await _rig.Queue.EnqueueAsync(orphan, default);

        var worker = _rig.Worker();
        var run = worker.RunAsync(default);
        // Settled either way (before the fix it was completed silently): then the record says what happened.
        await WaitUntilAsync(async () => (await _rig.Queue.GetDepthAsync(default)).Total == 0);
        await StopAsync(worker, run);
        var record = await _rig.Results.GetAsync(orphan.Id, default);

        Assert.NotNull(record);
        Assert.Equal(JobStatus.Failed, record.Status);
        Assert.Contains("record was missing from the result store", record.Error);
        var dead = Assert.Single(_rig.Queue.DeadLetters);
        Assert.Equal(orphan.Id, dead.Job.Id);
        Assert.Equal(record.Error, dead.Reason);
        Assert.Equal(new QueueDepth(0, 0), await _rig.Queue.GetDepthAsync(default));
        Assert.Empty(_rig.Engine.Models);
    }

    [Fact]
    public async Task RunAsync_CorruptWeights_JobFailsClearlyAndWorkerStaysHealthy()
    {
        _rig.Models.Add("broken");
        _rig.Models.Add("fine");
        var weights = Path.Combine(_rig.Models.Store.Root, "broken", "1", "model.onnx");
        var bytes = await File.ReadAllBytesAsync(weights);
        bytes[^1] ^= 0x55;
        await File.WriteAllBytesAsync(weights, bytes);
        var doomed = await _rig.SubmitAsync("broken");

        var worker = _rig.Worker();
        var run = worker.RunAsync(default);
        var failed = (await _rig.AwaitAllAsync([doomed])).Single();
        var ok = (await _rig.AwaitAllAsync([await _rig.SubmitAsync("fine")])).Single();
        await StopAsync(worker, run);

        Assert.Equal(JobStatus.Failed, failed.Status);
        Assert.Contains("sha256", failed.Error);
        Assert.Equal(JobStatus.Succeeded, ok.Status);
        Assert.Empty(_rig.Queue.DeadLetters);
    }

    [Fact]
    public async Task RequestStop_MidBatch_FinishesTheRunningGroupAndReleasesTheRest()
    {
        // Both models warm, so one receive takes both jobs (a receive loads at most one model that is not warm).
        foreach (var model in new[] { _rig.Models.Add("a"), _rig.Models.Add("b") })
        {
            using (await _rig.Pool.AcquireAsync(model, default))
            {
            }
        }

        var a = await _rig.SubmitAsync("a");
        var b = await _rig.SubmitAsync("b");
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _rig.Engine.BeforeRun = async (_, _) =>
        {
            running.TrySetResult();
            await gate.Task;
        };

        var worker = _rig.Worker();
        var run = worker.RunAsync(default);
        await running.Task.WaitAsync(TimeSpan.FromSeconds(30));
        worker.RequestStop();
        gate.SetResult();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(JobStatus.Succeeded, (await _rig.Results.GetAsync(a.Id, default))!.Status);
        Assert.Equal(JobStatus.Running, (await _rig.Results.GetAsync(b.Id, default))!.Status);
        Assert.Equal(new QueueDepth(1, 0), await _rig.Queue.GetDepthAsync(default));
        Assert.Empty(await _rig.Registry.ListAsync(default));
    }

    [Fact]
    public async Task RunAsync_BatchOutlastsTheLease_RenewsSoTheJobIsNotDeliveredTwice()
    {
        _rig.Models.Add("m");
        var job = await _rig.SubmitAsync("m");
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var running = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _rig.Engine.BeforeRun = async (_, _) =>
        {
            running.TrySetResult();
            await gate.Task;
        };
        var worker = _rig.Worker();
        var run = worker.RunAsync(default);
        await running.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // Two lease durations pass while the batch runs; renewals every 10 s keep the job invisible.
        for (var i = 0; i < 12; i++)
        {
            _rig.Time.Advance(TimeSpan.FromSeconds(5));
            await Task.Yield();
        }

        Assert.Empty(await _rig.Queue.ReceiveAsync(1, TimeSpan.Zero, default));
        gate.SetResult();
        var record = (await _rig.AwaitAllAsync([job])).Single();
        await StopAsync(worker, run);

        Assert.Equal(JobStatus.Succeeded, record.Status);
        Assert.Equal(1, _rig.Engine.Models.Single().Batches);
    }
}
