using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Telemetry;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.TestDoubles;

/// <summary>Queue, results, warm pool and registry wired the way a host wires them, on a fake clock.</summary>
internal sealed class WorkerRig : IDisposable
{
    public WorkerRig(int maxDeliveries = 3, int maxBatchSize = 8)
    {
        Queue = new InMemoryJobQueue(
            Options.Create(new JobQueueOptions { LeaseDuration = TimeSpan.FromSeconds(30), MaxDeliveryCount = maxDeliveries }), Time);
        Results = new InMemoryResultStore(Options.Create(new ResultStoreOptions()), Time);
        Registry = new InMemoryWorkerRegistry(Time, TimeSpan.FromDays(1));
        Pool = new WarmPool(
            Engine,
            new WeightsCache(Models.Store, Models.CacheDirectory, NullLogger<WeightsCache>.Instance),
            Options.Create(new WarmPoolOptions { BudgetBytes = 1 << 20 }),
            Time,
            NullLogger<WarmPool>.Instance);
        Catalog = new ModelCatalog(Models.Store, Time);
        WorkerOptions = new WorkerOptions { MaxBatchSize = maxBatchSize, PollInterval = TimeSpan.FromSeconds(1), HeartbeatInterval = TimeSpan.FromSeconds(5) };
        Metrics = new InferenceMetrics(new TestMeterFactory());
    }

    public FakeTimeProvider Time { get; } = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    public TempModelStore Models { get; } = new();

    public FakeEngine Engine { get; } = new();

    public InMemoryJobQueue Queue { get; }

    public InMemoryResultStore Results { get; }

    public InMemoryWorkerRegistry Registry { get; }

    public WarmPool Pool { get; }

    public ModelCatalog Catalog { get; }

    public WorkerOptions WorkerOptions { get; }

    public InferenceMetrics Metrics { get; }

    private int _workers;

    public InferenceWorker Worker(string? id = null) => new(
        id ?? $"w{Interlocked.Increment(ref _workers)}", Queue, Results, Pool, Catalog, Registry, WorkerOptions, Time, Metrics, NullLogger.Instance);

    public async Task<InferenceJob> SubmitAsync(string model, float seed = 1)
    {
        var job = TestJobs.Job(model, Time.GetUtcNow(), seed);
        await Results.TrackAsync(job, default);
        await Queue.EnqueueAsync(job, default);
        return job;
    }

    /// <summary>Waits until every job is terminal.</summary>
    public async Task<JobRecord[]> AwaitAllAsync(IEnumerable<InferenceJob> jobs)
    {
        // The fake clock never runs out the wait; the real-time bound only stops a hung test.
        var records = await Task.WhenAll(jobs.Select(j => Results.WaitAsync(j.Id, TimeSpan.FromDays(1), default).AsTask()))
            .WaitAsync(TimeSpan.FromSeconds(30));
        return records.Select(r => r!).ToArray();
    }

    public void Dispose()
    {
        Pool.Dispose();
        Models.Dispose();
        Metrics.Dispose();
    }
}

internal sealed class TestMeterFactory : IMeterFactory
{
    private readonly List<Meter> _meters = [];

    public Meter Create(MeterOptions options)
    {
        var meter = new Meter(options);
        _meters.Add(meter);
        return meter;
    }

    public void Dispose() => _meters.ForEach(m => m.Dispose());
}
