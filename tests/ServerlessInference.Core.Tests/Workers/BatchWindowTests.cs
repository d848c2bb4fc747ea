using System.Threading.Channels;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessInference.Jobs;
using ServerlessInference.Tests.TestDoubles;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Workers;

/// <summary>A positive <see cref="WorkerOptions.MaxBatchDelay"/>: the worker holds a short batch open for the window,
/// jobs arriving inside it join, and the window's end (on the fake clock) releases the batch.</summary>
public sealed class BatchWindowTests : IDisposable
{
    private static readonly TimeSpan Window = TimeSpan.FromMilliseconds(50);

    private readonly WorkerRig _rig = new();

    public void Dispose() => _rig.Dispose();

    [Fact]
    public async Task RunAsync_PositiveMaxBatchDelay_HoldsTheBatchUntilTheWindowClosesAndLateArrivalsJoin()
    {
        _rig.Models.Add("m");
        _rig.WorkerOptions.MaxBatchDelay = Window;
        var queue = new WatchedQueue(_rig.Queue);
        var worker = new InferenceWorker("w", queue, _rig.Results, _rig.Pool, _rig.Catalog, _rig.Registry,
            _rig.WorkerOptions, _rig.Time, _rig.Metrics, NullLogger.Instance);
        var first = await _rig.SubmitAsync("m", seed: 1);
        var run = worker.RunAsync(default);

        // The first job is in hand (7 more would fit), and the worker waits the whole window for more.
        Assert.Equal(Window, await queue.NextWaitForAsync(maxCount: 7));

        _rig.Time.Advance(TimeSpan.FromMilliseconds(20));
        var late = new[] { await _rig.SubmitAsync("m", seed: 2), await _rig.SubmitAsync("m", seed: 3) };

        // Both late jobs were taken into the batch, and the worker waits out what is left of the window.
        Assert.Equal(TimeSpan.FromMilliseconds(30), await queue.NextWaitForAsync(maxCount: 5));
        Assert.Equal(0, _rig.Engine.Models.Sum(m => m.Batches));
        Assert.Equal(JobStatus.Queued, (await _rig.Results.GetAsync(first.Id, default))!.Status);

        _rig.Time.Advance(TimeSpan.FromMilliseconds(30));
        var records = await _rig.AwaitAllAsync([first, .. late]);
        worker.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.All(records, r => Assert.Equal(JobStatus.Succeeded, r.Status));
        // One engine call for the three jobs: the window, not the arrival times, decided the batch.
        Assert.Equal(1, _rig.Engine.Models.Single().Batches);
    }

    /// <summary>Passes every call through and tells the test each receive's (maxCount, maxWait).</summary>
    private sealed class WatchedQueue(IJobQueue inner) : IJobQueue
    {
        private readonly Channel<(int MaxCount, TimeSpan MaxWait)> _receives = Channel.CreateUnbounded<(int, TimeSpan)>();

        public int MaxDeliveryCount => inner.MaxDeliveryCount;

        public ValueTask EnqueueAsync(InferenceJob job, CancellationToken cancellationToken) => inner.EnqueueAsync(job, cancellationToken);

        public ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, JobPreference preference, CancellationToken cancellationToken)
        {
            // Call first, then tell: the in-memory queue starts its timer before its first await, so the test's next
            // Advance cannot come before the timer exists (telling first let the Advance win the race and the wait
            // never end).
            var receive = inner.ReceiveAsync(maxCount, maxWait, preference, cancellationToken);
            _receives.Writer.TryWrite((maxCount, maxWait));
            return receive;
        }

        public ValueTask<QueueDepth> GetDepthAsync(CancellationToken cancellationToken) => inner.GetDepthAsync(cancellationToken);

        /// <summary>The wait of the next receive asking for <paramref name="maxCount"/> jobs (earlier ones are skipped).
        /// The receive has been called and has started its wait, so the worker is in it when this returns.</summary>
        public async Task<TimeSpan> NextWaitForAsync(int maxCount)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            while (true)
            {
                var (count, wait) = await _receives.Reader.ReadAsync(timeout.Token);
                if (count == maxCount)
                {
                    return wait;
                }
            }
        }
    }
}
