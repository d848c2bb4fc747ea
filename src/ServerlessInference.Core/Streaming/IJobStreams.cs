namespace ServerlessInference.Streaming;

/// <summary>Every job's token stream: written by the worker that runs the job as tokens are made, followed by the
/// gateway (SSE), and read back as the job's checkpoint by a worker that takes the job over after a crash.</summary>
/// <remarks>
/// <para>A stream is a list of <see cref="JobStreamEvent"/>s with sequences 0, 1, 2, ... and at most one final event,
/// which is its last. Appending is idempotent by sequence: an event whose sequence is already stored is ignored
/// whatever it holds (the first writer wins), so a zombie worker or a redelivered job never duplicates a token. A
/// stream lives <see cref="JobStreamOptions.Ttl"/> after its last append and holds at most
/// <see cref="JobStreamOptions.MaxEvents"/> events before its final one; an expired stream reads as empty.</para>
/// <para>Lifetime and threading: one instance per process (a singleton), thread-safe; any number of writers and
/// followers of the same job may run at once, in any processes sharing the backing service.</para>
/// <para>Failures: a refused append throws <see cref="JobStreamException"/> and stores nothing of its batch; a
/// malformed batch throws <see cref="ArgumentException"/>; a backing service that cannot be reached throws
/// <see cref="InferenceException"/> with <see cref="InferenceError.Unavailable"/> (503), from a follower too.</para>
/// </remarks>
public interface IJobStreams
{
    /// <summary>Appends <paramref name="events"/> to <paramref name="jobId"/>'s stream, atomically: the events already
    /// stored (sequence ≤ the last stored one) are ignored, the rest are stored in order, and followers wake.</summary>
    /// <param name="jobId">The job.</param>
    /// <param name="events">Consecutive sequences; a final event may only come last. Empty is allowed (reads the state).</param>
    /// <param name="cancellationToken">Cancels the call; the batch is then stored entirely or not at all.</param>
    /// <returns>How many were stored and the stream's state after the call. Fewer stored than given means another
    /// writer got there first: a worker in that position should stop writing, as the job is no longer its own.</returns>
    /// <exception cref="ArgumentException">Sequences not consecutive or negative, or a final event before the last.</exception>
    /// <exception cref="JobStreamException">A gap after the stored last sequence, new events after the final event,
    /// or a token event past <see cref="JobStreamOptions.MaxEvents"/>.</exception>
    ValueTask<JobStreamAppend> AppendAsync(string jobId, IReadOnlyList<JobStreamEvent> events, CancellationToken cancellationToken);

    /// <summary>Everything stored for <paramref name="jobId"/>, in order; empty for an unknown or expired stream.
    /// The resume path: a worker that takes a job over continues after the last of these.</summary>
    ValueTask<IReadOnlyList<JobStreamEvent>> ReadAsync(string jobId, CancellationToken cancellationToken);

    /// <summary>The events after <paramref name="afterSequence"/> (-1 for all; an SSE <c>Last-Event-ID</c> as is),
    /// then the live ones as they are appended, each once and in order, until the final event, which is yielded last.</summary>
    /// <remarks>A follower that starts after the end replays what follows <paramref name="afterSequence"/> and
    /// completes; one that starts before anything was appended waits. A stream nobody ends (the job failed before its
    /// worker wrote a final event, or it expired) is followed until <paramref name="cancellationToken"/> fires, which
    /// throws <see cref="OperationCanceledException"/>: race it with the result store's wait.</remarks>
    IAsyncEnumerable<JobStreamEvent> FollowAsync(string jobId, long afterSequence, CancellationToken cancellationToken);
}

/// <summary>The rules every <see cref="IJobStreams"/> provider applies the same way.</summary>
public static class JobStreamRules
{
    /// <summary>Checks a batch's own shape: sequences ≥ 0 and consecutive, text present, a final event only last, an
    /// error only on a final event.</summary>
    /// <exception cref="ArgumentException">The batch breaks one of these, named in the message.</exception>
    public static void ValidateBatch(string jobId, IReadOnlyList<JobStreamEvent> events)
    {
        ArgumentException.ThrowIfNullOrEmpty(jobId);
        ArgumentNullException.ThrowIfNull(events);
        for (var i = 0; i < events.Count; i++)
        {
            var e = events[i] ?? throw new ArgumentException($"event {i} is null", nameof(events));
            if (e.Sequence < 0)
            {
                throw new ArgumentException($"event {i} has a negative sequence ({e.Sequence})", nameof(events));
            }

            if (i > 0 && e.Sequence != events[i - 1].Sequence + 1)
            {
                throw new ArgumentException($"sequences must be consecutive: {events[i - 1].Sequence} is followed by {e.Sequence}", nameof(events));
            }

            if (e.Text is null)
            {
                throw new ArgumentException($"event {e.Sequence} has no text (use an empty string)", nameof(events));
            }

            if (e.IsFinal && i != events.Count - 1)
            {
                throw new ArgumentException($"the final event ({e.Sequence}) must be the last of its batch", nameof(events));
            }

            if (e.Error is not null && e.Finish != FinishReason.Error)
            {
                throw new ArgumentException($"event {e.Sequence} has an error but its finish reason is {e.Finish?.ToString() ?? "none"}", nameof(events));
            }

            if (e.Finish is { } finish && !Enum.IsDefined(finish))
            {
                throw new ArgumentException($"event {e.Sequence} has an unknown finish reason ({(int)finish})", nameof(events));
            }
        }
    }
}
