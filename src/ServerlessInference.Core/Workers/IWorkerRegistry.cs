namespace ServerlessInference.Workers;

/// <summary>Who is working: each worker heartbeats its status; stale entries disappear after a TTL.</summary>
/// <remarks>Thread-safe. Used by the scaler (in-flight work) and <c>/status</c>.</remarks>
public interface IWorkerRegistry
{
    ValueTask HeartbeatAsync(WorkerStatus status, CancellationToken cancellationToken);

    ValueTask RemoveAsync(string workerId, CancellationToken cancellationToken);

    /// <summary>Workers whose last heartbeat is younger than the TTL.</summary>
    ValueTask<IReadOnlyList<WorkerStatus>> ListAsync(CancellationToken cancellationToken);

    /// <summary>Keeps <paramref name="coldStart"/> among the last <see cref="ColdStartsKept"/> cold starts, where every
    /// gateway's <c>/status</c> reads them. The default keeps nothing (registries that predate cold-start records).</summary>
    ValueTask RecordColdStartAsync(ColdStart coldStart, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>The last cold starts recorded, newest first.</summary>
    ValueTask<IReadOnlyList<ColdStart>> ListColdStartsAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyList<ColdStart>>([]);

    /// <summary>How many cold starts a registry keeps.</summary>
    public const int ColdStartsKept = 10;
}

/// <summary>One worker's heartbeat.</summary>
public sealed record WorkerStatus
{
    public required string Id { get; init; }

    public required string Host { get; init; }

    public required string ExecutionProvider { get; init; }

    public required WorkerState State { get; init; }

    /// <summary>Jobs the worker holds a lease on now.</summary>
    public required int InFlight { get; init; }

    /// <summary>Generation jobs this worker runs now (each a sequence in its model's continuous batch, or waiting to join).</summary>
    public int RunningSequences { get; init; }

    public required IReadOnlyList<WarmModelStatus> WarmModels { get; init; }

    /// <summary>Models this worker loaded or evicted in the last <see cref="ModelActivity.Window"/> (only those with a
    /// count). Optional: a status from a worker that predates it reads as none (source-generated JSON sets an absent
    /// init-only property to null, hence the coalescing).</summary>
    public IReadOnlyList<ModelActivity> RecentModelActivity
    {
        get => _recentModelActivity;
        init => _recentModelActivity = value ?? [];
    }

    private readonly IReadOnlyList<ModelActivity> _recentModelActivity = [];

    public required long MemoryUsedBytes { get; init; }

    public required long MemoryBudgetBytes { get; init; }

    public required long JobsCompleted { get; init; }

    public required DateTimeOffset StartedAt { get; init; }

    public required DateTimeOffset LastHeartbeat { get; init; }
}

public sealed record WarmModelStatus(string Model, string Version, long Bytes);

/// <summary>How many times a worker loaded and evicted one model in the last <see cref="Window"/>.</summary>
public sealed record ModelActivity(string Model, int Loads, int Evictions)
{
    /// <summary>The window the counts cover: the last 5 minutes, in one-minute steps (so between 4 and 5 minutes).</summary>
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(5);
}

public enum WorkerState
{
    Starting,
    Running,
    Draining,
}
