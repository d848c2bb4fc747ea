using System.Collections.Immutable;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Scaling;
using ServerlessInference.Telemetry;

namespace ServerlessInference.Testing.Contracts;

/// <summary>What every <see cref="IScalingDecisionLog"/> must do. Derive once per provider.</summary>
public abstract class ScalingDecisionLogContract : ContractClock
{
    /// <summary>A fresh log no other test sees, keeping about <paramref name="capacity"/> decisions.</summary>
    protected abstract ValueTask<IScalingDecisionLog> CreateLogAsync(int capacity);

    private ScalingDecision Decision(int current, int desired, string reason = "load") =>
        new(Time.GetUtcNow(), current, desired, Queued: desired * 4, InFlight: current, reason);

    [Fact]
    public async Task ReadRecentAsync_NewestFirst_UpToCount()
    {
        var log = await CreateLogAsync(50);
        var decisions = new[] { Decision(0, 1), Decision(1, 3), Decision(3, 2), Decision(2, 0) };
        foreach (var decision in decisions)
        {
            await log.AppendAsync(decision, default);
        }

        Assert.Equal(decisions.Reverse(), await log.ReadRecentAsync(10, default));
        Assert.Equal(decisions.Reverse().Take(2), await log.ReadRecentAsync(2, default));
    }

    [Fact]
    public async Task AppendAsync_SteadyRepeat_KeepsOnlyTheLatest()
    {
        var log = await CreateLogAsync(50);
        await log.AppendAsync(Decision(0, 2), default);
        await log.AppendAsync(Decision(2, 2, "steady 1"), default);
        await log.AppendAsync(Decision(2, 2, "steady 2"), default);
        await log.AppendAsync(Decision(2, 2, "steady 3"), default);

        var recent = await log.ReadRecentAsync(10, default);

        Assert.Equal(["steady 3", "load"], recent.Select(d => d.Reason));
    }

    [Fact]
    public async Task ReadRecentAsync_Empty_ReturnsNothing()
    {
        var log = await CreateLogAsync(50);

        Assert.Empty(await log.ReadRecentAsync(10, default));
    }

    [Fact]
    public async Task ReadStateAsync_NothingWritten_ReturnsNull()
    {
        var log = await CreateLogAsync(50);

        Assert.Null(await log.ReadStateAsync(default));
    }

    [Fact]
    public async Task WriteStateAsync_ThenRead_ReturnsTheSameWindows()
    {
        var log = await CreateLogAsync(50);
        var at = new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero);
        var state = new ScalingState(ImmutableQueue.CreateRange([(at, 3), (at.AddSeconds(5), 1), (at.AddSeconds(10), 0)]), at.AddSeconds(5), at.AddSeconds(10));

        await log.WriteStateAsync(ScalingState.Initial, default);
        await log.WriteStateAsync(state, default);
        var read = await log.ReadStateAsync(default);

        Assert.NotNull(read);
        Assert.Equal(state.Recommendations, read.Recommendations);
        Assert.Equal(state.LastBusyAt, read.LastBusyAt);
        Assert.Equal(state.LowerSince, read.LowerSince);
    }

    /// <summary>Functions timer ticks land on any instance: two scalers sharing one log (and so one state), taking
    /// turns, must decide tick for tick what one scaler would, never lower and without flapping.</summary>
    [Fact]
    public async Task Scaler_TwoInstancesAlternatingTicks_DecideAsOneScalerWould()
    {
        var alone = await RunScalersAsync(await CreateLogAsync(50), instances: 1);
        var shared = await CreateLogAsync(50);
        var alternating = await RunScalersAsync(shared, instances: 2);

        Assert.Equal(alone, alternating);
        // The script's shape, so the comparison is not between two empty runs: up to 4, down through 2, then to 0.
        Assert.Equal([0, 4, 2, 1, 0], alone.Where((d, i) => i == 0 || d != alone[i - 1]));
        Assert.NotNull(await shared.ReadStateAsync(default));
    }

    /// <summary>Ticks every 5 s over a scripted load; tick i runs on instance i % <paramref name="instances"/>.</summary>
    private static async Task<int[]> RunScalersAsync(IScalingDecisionLog log, int instances)
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
        var queue = new DepthQueue();
        var orchestrator = new ReplicaCounter();
        var registry = new InMemoryWorkerRegistry(time, TimeSpan.FromMinutes(1));
        using var meters = new MeterFactory();
        using var metrics = new InferenceMetrics(meters);
        var options = Options.Create(new ScalingOptions
        {
            MaxReplicas = 4,
            TargetJobsPerWorker = 10,
            ScaleDownStabilization = TimeSpan.FromSeconds(30),
            IdleToZero = TimeSpan.FromSeconds(60),
        });
        var scalers = Enumerable.Range(0, instances)
            .Select(_ => new Scaler(queue, registry, orchestrator, log, options, time, metrics, NullLogger<Scaler>.Instance))
            .ToList();

        var desired = new List<int>();
        for (var tick = 0; tick <= 30; tick++)
        {
            var second = tick * 5;
            queue.Queued = second switch
            {
                >= 5 and <= 20 => 35,
                >= 25 and <= 40 => 12,
                _ => 0,
            };
            desired.Add((await scalers[tick % instances].TickAsync(default)).DesiredReplicas);
            time.Advance(TimeSpan.FromSeconds(5));
        }

        return [.. desired];
    }

    private sealed class DepthQueue : IJobQueue
    {
        public long Queued { get; set; }

        public int MaxDeliveryCount => 3;

        public ValueTask EnqueueAsync(InferenceJob job, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, JobPreference preference, CancellationToken cancellationToken) =>
            throw new NotSupportedException();

        public ValueTask<QueueDepth> GetDepthAsync(CancellationToken cancellationToken) => ValueTask.FromResult(new QueueDepth(Queued, 0));
    }

    /// <summary>A deployment's replica count, as a platform orchestrator keeps it.</summary>
    private sealed class ReplicaCounter : IWorkerOrchestrator
    {
        private int _replicas;

        public ValueTask<int> GetReplicasAsync(CancellationToken cancellationToken) => ValueTask.FromResult(_replicas);

        public ValueTask SetReplicasAsync(int replicas, CancellationToken cancellationToken)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(replicas);
            _replicas = replicas;
            return ValueTask.CompletedTask;
        }
    }

    private sealed class MeterFactory : IMeterFactory
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
}
