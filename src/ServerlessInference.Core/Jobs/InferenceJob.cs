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

    /// <summary>Roughly the memory the job holds: its tensors' bytes plus an allowance for ids, shapes and parameters.
    /// What the embedded queue counts against <see cref="JobQueueOptions.MaxQueuedBytes"/>.</summary>
    public long ApproximateBytes
    {
        get
        {
            long bytes = 512 + (Id.Length + Model.Length + Version.Length) * 2L;
            foreach (var input in Request.Inputs)
            {
                bytes += 128 + input.Name.Length * 2L + input.Shape.Length * 8L + input.Data.Length;
                if (input.BytesData is { } elements)
                {
                    foreach (var element in elements)
                    {
                        bytes += 32 + element.Length;
                    }
                }
            }

            if (Request.Parameters is { } parameters)
            {
                foreach (var (name, value) in parameters)
                {
                    bytes += 64 + name.Length * 2L + (value is string text ? text.Length * 2L : 0);
                }
            }

            return bytes;
        }
    }

    /// <summary>The tenant whose key submitted the job (null: the host runs open, one tenant). Kept with the job's record,
    /// where the gateway checks it; the queue does not carry it.</summary>
    public string? Tenant { get; init; }

    /// <summary>A hash of a generation prompt's leading tokens (null for tensor jobs and short prompts): jobs that share it
    /// prefer the worker holding that prefix's KV cache. Carried on the queue.</summary>
    public string? PrefixKey { get; init; }

    /// <summary>The queue partition and the key a worker's <see cref="JobPreference"/> names: the model, or
    /// <c>model#prefix</c> when <see cref="PrefixKey"/> is set.</summary>
    public string AffinityKey => PrefixKey is null ? Model : $"{Model}#{PrefixKey}";

    /// <summary>Most jobs of this model that may be queued or in flight at once (the manifest's <c>max_queued</c>); the
    /// queue refuses more with <c>QueueFull</c> for this model alone. Checked at enqueue, not carried on the queue.</summary>
    public int? ModelQueueCapacity { get; init; }

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

    /// <summary>True on an end the platform decided without the job's own outcome (dead-lettered after too many
    /// deliveries, expired): a worker still running an earlier delivery may yet finish it, and its
    /// <see cref="JobStatus.Succeeded"/> result then replaces this one (see <see cref="IResultStore.PublishAsync"/>).</summary>
    public bool ReplaceableBySuccess { get; init; }

    /// <summary>Roughly the memory the record holds: its response's tensors and its texts plus a fixed allowance.
    /// What the embedded result store counts against <see cref="ResultStoreOptions.MaxRetainedBytes"/>.</summary>
    public long ApproximateBytes
    {
        get
        {
            long bytes = 256 + (Id.Length + Model.Length + Version.Length + (Error?.Length ?? 0)) * 2L;
            foreach (var output in Response?.Outputs ?? [])
            {
                bytes += 128 + output.Name.Length * 2L + output.Shape.Length * 8L + output.Data.Length;
                foreach (var element in output.BytesData ?? [])
                {
                    bytes += 32 + element.Length;
                }
            }

            return bytes;
        }
    }
}

/// <summary>Depth of a queue: jobs waiting for a worker and jobs a worker holds a lease on.</summary>
/// <remarks>Equality compares <see cref="Queued"/> and <see cref="InFlight"/> only: <see cref="ByModel"/> is a breakdown
/// of the same counts (a dictionary, compared by reference it would make every depth unequal to every other).</remarks>
public readonly record struct QueueDepth(long Queued, long InFlight)
{
    /// <summary>The same per model, when the provider can count it (null otherwise).</summary>
    public IReadOnlyDictionary<string, ModelDepth>? ByModel { get; init; }

    public long Total => Queued + InFlight;

    public bool Equals(QueueDepth other) => Queued == other.Queued && InFlight == other.InFlight;

    public override int GetHashCode() => HashCode.Combine(Queued, InFlight);
}
