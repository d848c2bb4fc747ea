namespace ServerlessInference.Streaming;

/// <summary>An append a job stream refused; nothing of that batch was stored.</summary>
public sealed class JobStreamException(string jobId, JobStreamRejection rejection, long lastSequence, string message)
    : InvalidOperationException(message)
{
    public string JobId { get; } = jobId;

    public JobStreamRejection Rejection { get; } = rejection;

    /// <summary>The stream's last stored sequence when the append was refused (-1 when empty).</summary>
    public long LastSequence { get; } = lastSequence;

    public static JobStreamException Gap(string jobId, long last, long first) =>
        new(jobId, JobStreamRejection.Gap, last, $"job {jobId}'s stream ends at sequence {last}: appending from {first} would leave a gap");

    public static JobStreamException Ended(string jobId, long last) =>
        new(jobId, JobStreamRejection.Ended, last, $"job {jobId}'s stream has ended (final event at sequence {last}): nothing may follow it");

    public static JobStreamException Full(string jobId, long last, int maxEvents) =>
        new(jobId, JobStreamRejection.Full, last,
            $"job {jobId}'s stream is full: {JobStreamOptions.Section}:MaxEvents ({maxEvents}) events before the final one");
}

/// <summary>Why an append was refused.</summary>
public enum JobStreamRejection
{
    /// <summary>The first new event's sequence is past the stored last + 1.</summary>
    Gap,

    /// <summary>The stream's final event is stored; only already-stored sequences may be re-sent.</summary>
    Ended,

    /// <summary>A token event would pass <see cref="JobStreamOptions.MaxEvents"/>; only the final event fits.</summary>
    Full,
}
