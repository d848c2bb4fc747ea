using System.Globalization;

namespace ServerlessInference.Workers;

/// <summary>One job that waited for a model load (and, on a worker's first job, for the worker itself), stage by stage.</summary>
/// <remarks>Each stage is the time from the previous mark to its own. Marks earlier than the job's submission are left
/// out (a worker process that was already running when the job came is not part of its wait), so a model cold start on
/// a running worker starts at <see cref="ColdStartStage.Received"/>.</remarks>
public sealed record ColdStart
{
    public required string WorkerId { get; init; }

    public required string JobId { get; init; }

    public required string Model { get; init; }

    public required string Version { get; init; }

    /// <summary>When the job was submitted (the gateway's clock).</summary>
    public required DateTimeOffset QueuedAt { get; init; }

    /// <summary>When the answer was stored.</summary>
    public required DateTimeOffset AnsweredAt { get; init; }

    /// <summary>The stages in order, each with its milliseconds; they add up to <see cref="TotalMilliseconds"/>.</summary>
    public required IReadOnlyList<ColdStartStageTime> Stages { get; init; }

    public double TotalMilliseconds => (AnsweredAt - QueuedAt).TotalMilliseconds;

    /// <summary>Builds the stages from the marks given in order. A null mark, or one earlier than
    /// <paramref name="queuedAt"/> (it happened before the job existed), is left out; one earlier than the mark before it
    /// counts 0 ms (two clocks that disagree a little: the OS's process start time is coarse).</summary>
    public static IReadOnlyList<ColdStartStageTime> Stage(DateTimeOffset queuedAt, IEnumerable<(string Stage, DateTimeOffset? At)> marks)
    {
        var stages = new List<ColdStartStageTime>();
        var previous = queuedAt;
        foreach (var (stage, at) in marks)
        {
            if (at is not { } mark || mark < queuedAt)
            {
                continue;
            }

            if (mark < previous)
            {
                mark = previous;
            }

            stages.Add(new ColdStartStageTime(stage, (mark - previous).TotalMilliseconds));
            previous = mark;
        }

        return stages;
    }

    /// <summary>The stages as <c>name=ms</c> pairs, for one log line.</summary>
    public string Describe() =>
        string.Join(' ', Stages.Select(s => s.Stage + "=" + s.Milliseconds.ToString("F1", CultureInfo.InvariantCulture)));
}

public sealed record ColdStartStageTime(string Stage, double Milliseconds);

/// <summary>The names of the cold-start stages (each names the mark that ends it), in order.</summary>
public static class ColdStartStage
{
    /// <summary>The scaler decided to add the worker and the orchestrator started it.</summary>
    public const string ScalerNoticed = "scaler_noticed";

    /// <summary>The operating system started the worker process.</summary>
    public const string ProcessStarted = "process_started";

    /// <summary>The worker host (runtime, configuration, services) is ready to run the worker loop.</summary>
    public const string RuntimeReady = "runtime_ready";

    /// <summary>The worker's first heartbeat is in the registry.</summary>
    public const string Registered = "registered";

    /// <summary>The worker received the job from the queue.</summary>
    public const string Received = "received";

    /// <summary>The weights are on local disk and their sha256 checked (one pass: the cache hashes while it copies).</summary>
    public const string ModelFetchedVerified = "model_fetched_verified";

    /// <summary>The engine created the session.</summary>
    public const string SessionCreated = "session_created";

    /// <summary>The first batch ran.</summary>
    public const string FirstBatchRun = "first_batch_run";

    /// <summary>The answer was stored for the client.</summary>
    public const string Answered = "answered";

    public static IReadOnlyList<string> All { get; } =
        [ScalerNoticed, ProcessStarted, RuntimeReady, Registered, Received, ModelFetchedVerified, SessionCreated, FirstBatchRun, Answered];
}

/// <summary>The moments a worker process went through before its loop ran, for its first cold start's stages.</summary>
/// <remarks>Set by the worker host; an in-process worker leaves them null (it has no process of its own).</remarks>
public sealed class WorkerStartup
{
    /// <summary>The environment variable in which an orchestrator passes the moment it started the worker
    /// (ISO 8601, <c>O</c> format).</summary>
    public const string OrderedAtVariable = "SERVERLESS_INFERENCE_WORKER_ORDERED_AT";

    public DateTimeOffset? ScalerNoticedAt { get; set; }

    public DateTimeOffset? ProcessStartedAt { get; set; }

    public DateTimeOffset? RuntimeReadyAt { get; set; }

    /// <summary>When the OS started this process, on <paramref name="timeProvider"/>'s clock. On Linux it is the
    /// process's age (<c>/proc/uptime</c> minus the start tick in <c>/proc/self/stat</c>, 10 ms ticks) taken from now:
    /// <see cref="System.Diagnostics.Process.StartTime"/> adds the boot time in whole seconds and can be off by up to
    /// one. Elsewhere that property.</summary>
    public static DateTimeOffset ReadProcessStartedAt(TimeProvider timeProvider)
    {
        try
        {
            var stat = File.ReadAllText("/proc/self/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var startTicks = long.Parse(fields[19], CultureInfo.InvariantCulture);
            var uptime = double.Parse(File.ReadAllText("/proc/uptime").Split(' ')[0], CultureInfo.InvariantCulture);
            return timeProvider.GetUtcNow() - TimeSpan.FromSeconds(uptime - startTicks / 100.0);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentException)
        {
            return new DateTimeOffset(System.Diagnostics.Process.GetCurrentProcess().StartTime.ToUniversalTime(), TimeSpan.Zero);
        }
    }

    /// <summary>Reads <see cref="OrderedAtVariable"/>'s value; null when absent or unreadable.</summary>
    public static DateTimeOffset? ParseOrderedAt(string? value) =>
        DateTimeOffset.TryParseExact(value, "O", CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var at) ? at : null;
}
