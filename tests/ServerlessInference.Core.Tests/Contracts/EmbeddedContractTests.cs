using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Scaling;
using ServerlessInference.Streaming;
using ServerlessInference.Testing.Contracts;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Contracts;

// The embedded providers run every contract suite on a fake clock.

public sealed class InMemoryJobQueueContractTests : JobQueueContract
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    protected override TimeProvider Time => _time;

    protected override ValueTask AdvanceAsync(TimeSpan duration)
    {
        _time.Advance(duration);
        return ValueTask.CompletedTask;
    }

    protected override ValueTask<IJobQueue> CreateQueueAsync(JobQueueOptions options)
    {
        var queue = new InMemoryJobQueue(Options.Create(options), _time);
        return ValueTask.FromResult<IJobQueue>(queue);
    }

    protected override ValueTask<IReadOnlyList<DeadLetter>> ReadDeadLettersAsync(IJobQueue queue) =>
        ValueTask.FromResult(((InMemoryJobQueue)queue).DeadLetters);
}

public sealed class InMemoryResultStoreContractTests : ResultStoreContract
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    protected override TimeProvider Time => _time;

    protected override ValueTask AdvanceAsync(TimeSpan duration)
    {
        _time.Advance(duration);
        return ValueTask.CompletedTask;
    }

    protected override ValueTask<IResultStore> CreateStoreAsync(TimeSpan ttl) =>
        ValueTask.FromResult<IResultStore>(new InMemoryResultStore(Options.Create(new ResultStoreOptions { Ttl = ttl }), _time));

    protected override ValueTask<IResultStore> CreateStoreAsync(ResultStoreOptions options) =>
        ValueTask.FromResult<IResultStore>(new InMemoryResultStore(Options.Create(options), _time));
}

public sealed class InMemoryWorkerRegistryContractTests : WorkerRegistryContract
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    protected override TimeProvider Time => _time;

    protected override ValueTask AdvanceAsync(TimeSpan duration)
    {
        _time.Advance(duration);
        return ValueTask.CompletedTask;
    }

    protected override ValueTask<IWorkerRegistry> CreateRegistryAsync(TimeSpan ttl) =>
        ValueTask.FromResult<IWorkerRegistry>(new InMemoryWorkerRegistry(_time, ttl));
}

public sealed class InMemoryScalingDecisionLogContractTests : ScalingDecisionLogContract
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    protected override TimeProvider Time => _time;

    protected override ValueTask AdvanceAsync(TimeSpan duration)
    {
        _time.Advance(duration);
        return ValueTask.CompletedTask;
    }

    protected override ValueTask<IScalingDecisionLog> CreateLogAsync(int capacity) =>
        ValueTask.FromResult<IScalingDecisionLog>(new InMemoryScalingDecisionLog(capacity));
}

public sealed class InMemoryPlacementBoardContractTests : PlacementBoardContract
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));

    protected override TimeProvider Time => _time;

    protected override ValueTask AdvanceAsync(TimeSpan duration)
    {
        _time.Advance(duration);
        return ValueTask.CompletedTask;
    }

    protected override ValueTask<IPlacementBoard> CreateBoardAsync() => ValueTask.FromResult<IPlacementBoard>(new InMemoryPlacementBoard());
}

public sealed class InMemoryJobStreamsContractTests : JobStreamsContract
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));

    protected override TimeProvider Time => _time;

    protected override ValueTask AdvanceAsync(TimeSpan duration)
    {
        _time.Advance(duration);
        return ValueTask.CompletedTask;
    }

    protected override ValueTask<IJobStreams> CreateStreamsAsync(JobStreamOptions options) =>
        ValueTask.FromResult<IJobStreams>(new InMemoryJobStreams(Options.Create(options), _time));
}
