using ServerlessInference.Protocol;

namespace ServerlessInference.Jobs;

/// <summary>What travels on the queue: one validated request for one model version.</summary>
public sealed class InferenceJob
{
    public required string Id { get; init; }

    public required string Model { get; init; }

    public required string Version { get; init; }

    public required InferenceRequest Request { get; init; }

    public required DateTimeOffset SubmittedAt { get; init; }

    /// <summary>After this instant the job is not started; it ends as <see cref="JobStatus.Expired"/>.</summary>
    public required DateTimeOffset Deadline { get; init; }

    /// <summary>The tenant whose key submitted the job (null: the host runs open, one tenant). Kept with the job's record,
    /// where the gateway checks it; the queue does not carry it.</summary>
    public string? Tenant { get; init; }

    public static string NewId() => Guid.CreateVersion7().ToString("N");
}

/// <summary>The life of a job. Queued → Running → Succeeded | Failed; Queued → Cancelled | Expired.</summary>
public enum JobStatus
{
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Expired,
}

public static class JobStatusExtensions
{
    public static bool IsTerminal(this JobStatus status) => status >= JobStatus.Succeeded;
}

/// <summary>What is known about a job: its state and, once it has ended, its response or error.</summary>
public sealed record JobRecord
{
    public required string Id { get; init; }

    public required string Model { get; init; }

    public required string Version { get; init; }

    public required JobStatus Status { get; init; }

    public required DateTimeOffset SubmittedAt { get; init; }

    /// <summary>The tenant that submitted the job (<see cref="InferenceJob.Tenant"/>); only its keys may read, stream or
    /// cancel it. Stores keep the tracked tenant when a result is published.</summary>
    public string? Tenant { get; init; }

    public DateTimeOffset? StartedAt { get; init; }

    public DateTimeOffset? CompletedAt { get; init; }

    public InferenceResponse? Response { get; init; }

    public string? Error { get; init; }

    /// <summary>Whose fault a <see cref="JobStatus.Failed"/> job is: <see cref="InferenceError.BadRequest"/> when the
    /// engine rejected the request itself, <see cref="InferenceError.NotFound"/> when the model went away, otherwise
    /// the model's or the platform's (null reads as <see cref="InferenceError.ModelFailure"/>).</summary>
    public InferenceError? ErrorKind { get; init; }
}

/// <summary>Depth of a queue: jobs waiting for a worker and jobs a worker holds a lease on.</summary>
public readonly record struct QueueDepth(long Queued, long InFlight)
{
    public long Total => Queued + InFlight;
}
