using System.Text;
using Microsoft.Extensions.Logging;
using ServerlessInference.Generation;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Streaming;
using GenerationFinish = ServerlessInference.Generation.FinishReason;
using StreamFinish = ServerlessInference.Streaming.FinishReason;

namespace ServerlessInference.Workers;

/// <summary>Generation jobs: each runs as a task of its own beside the receive loop and joins its model's continuous
/// batch; its tokens go to the job's stream as they are made, and the stream is its checkpoint.</summary>
/// <remarks>
/// <para>Resume: a job delivered again after a crash reads its stream, prefills the prompt plus the tokens already
/// there, and appends from the next sequence; the sampler's random stream depends only on (seed, position), so the
/// text goes on as if nothing happened. Appends are idempotent by sequence: a zombie's tokens are dropped, and a
/// worker that finds its tokens already stored by another stops.</para>
/// <para>Cancel: <c>DELETE /jobs/{id}</c> of a running generation ends its stream with a <c>cancelled</c> event; the
/// worker's next append is refused, and it stops the sequence at once, which frees its KV cache.</para>
/// <para>The lease is renewed while the generation runs and completed only after the result is stored.</para>
/// </remarks>
public sealed partial class InferenceWorker
{
    private readonly Lock _generationsLock = new();
    private readonly HashSet<Task> _generations = [];
    private TaskCompletionSource _generationEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _generating;

    /// <summary>Generation jobs running now.</summary>
    public int Generating => Volatile.Read(ref _generating);

    private async ValueTask WaitForGenerationRoomAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task ended;
            lock (_generationsLock)
            {
                if (_generating < _options.MaxConcurrentGenerations)
                {
                    return;
                }

                ended = _generationEnded.Task;
            }

            await ended.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    private void StartGeneration(JobLease lease, ModelManifest manifest, CancellationToken crash)
    {
        Task task;
        lock (_generationsLock)
        {
            _generating++;
            task = Task.Run(() => RunGenerationAsync(lease, manifest, crash), CancellationToken.None);
            _generations.Add(task);
        }

        _ = task.ContinueWith(t =>
        {
            TaskCompletionSource ended;
            lock (_generationsLock)
            {
                _generations.Remove(t);
                _generating--;
                ended = _generationEnded;
                _generationEnded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            ended.TrySetResult();
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>Waits for the running generations: a drain finishes them; a crash abandons them with the loop.</summary>
    private async Task DrainGenerationsAsync(CancellationToken crash)
    {
        Task[] running;
        lock (_generationsLock)
        {
            running = [.. _generations];
        }

        if (running.Length > 0)
        {
            await Task.WhenAll(running).WaitAsync(crash).ConfigureAwait(false);
        }
    }

    private async Task RunGenerationAsync(JobLease lease, ModelManifest manifest, CancellationToken crash)
    {
        var job = lease.Job;
        if (_streams is null)
        {
            await FinishAsync(lease, JobStatus.Failed, null, "this worker has no job streams (IJobStreams) to run generations on", crash).ConfigureAwait(false);
            return;
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(crash);
        LeaseRenewal? renewal = null;
        try
        {
            GenerationRequest request;
            try
            {
                request = GenerationJobs.FromRequest(job.Request);
            }
            catch (InferenceException ex)
            {
                await FailGenerationAsync(lease, ex.Message, ex.Error, 0, crash).ConfigureAwait(false);
                return;
            }

            var stored = await _streams.ReadAsync(job.Id, crash).ConfigureAwait(false);
            var text = new StringBuilder();
            foreach (var e in stored)
            {
                text.Append(e.Text);
            }

            if (stored.Count > 0 && stored[^1].IsFinal)
            {
                // Streamed to its end by a worker that died before storing the result, or cancelled: settle it.
                await SettleEndedAsync(lease, manifest, request, stored, text.ToString(), crash).ConfigureAwait(false);
                return;
            }

            var resume = stored.Where(e => e.TokenId is not null).Select(e => e.TokenId!.Value).ToList();
            var sequence = (long)stored.Count;
            _metrics.QueueTime(job.Model, _timeProvider.GetUtcNow() - job.SubmittedAt);

            // Renewed from here on, the model's load included: a cold load longer than the lease must not free the job.
            renewal = LeaseRenewal.Start(this, [lease]);
            using var warm = await _pool.AcquireAsync(manifest, crash).ConfigureAwait(false);
            if (warm.Model is not ITextGenerationModel generator)
            {
                await FailGenerationAsync(lease, $"model '{manifest.Name}' did not load as a text-generation model", InferenceError.ModelFailure, sequence, crash).ConfigureAwait(false);
                return;
            }

            GenerationFinish? finish = null;
            long? lastToken = null;
            var batch = new List<JobStreamEvent>(2);
            try
            {
                await foreach (var token in generator.GenerateAsync(request, resume, stop.Token).ConfigureAwait(false))
                {
                    batch.Clear();
                    if (token.TokenId >= 0)
                    {
                        batch.Add(JobStreamEvent.Token(sequence, token.TokenId, token.Text));
                    }

                    if (token.FinishReason is { } reason)
                    {
                        // Text released only at the end (held back as a possible stop string) rides on the final event
                        // when no token carries it, so the stream's text is the result's text.
                        finish = reason;
                        batch.Add(new JobStreamEvent(sequence + batch.Count, null, token.TokenId >= 0 ? "" : token.Text, ToStream(reason)));
                    }

                    var appended = await _streams.AppendAsync(job.Id, batch, crash).ConfigureAwait(false);
                    if (appended.Appended < batch.Count && appended.Ended)
                    {
                        // Ended from outside at this very sequence (DELETE /jobs/{id}): stop and settle as the stream says.
                        throw JobStreamException.Ended(job.Id, appended.LastSequence);
                    }

                    if (appended.Appended < batch.Count)
                    {
                        // Another worker owns this job now (our lease expired and it was delivered again): step aside.
                        Log.GenerationTakenOver(_logger, job.Id, Id);
                        return;
                    }

                    sequence += batch.Count;
                    if (token.TokenId >= 0)
                    {
                        var now = _timeProvider.GetTimestamp();
                        if (lastToken is null && resume.Count == 0)
                        {
                            _metrics.FirstToken(job.Model, _timeProvider.GetUtcNow() - job.SubmittedAt);
                        }

                        _metrics.Token(job.Model, lastToken is { } previous ? _timeProvider.GetElapsedTime(previous, now) : null);
                        lastToken = now;
                    }

                    text.Append(token.Text);
                    if (finish is not null)
                    {
                        break;
                    }
                }
            }
            catch (JobStreamException ex) when (ex.Rejection == JobStreamRejection.Ended)
            {
                // The stream was ended from outside (DELETE /jobs/{id}): leaving the enumeration frees the sequence.
                await stop.CancelAsync().ConfigureAwait(false);
                var ended = await _streams.ReadAsync(job.Id, crash).ConfigureAwait(false);
                await SettleEndedAsync(lease, manifest, request, ended, string.Concat(ended.Select(e => e.Text)), crash).ConfigureAwait(false);
                return;
            }
            catch (JobStreamException ex)
            {
                await FailGenerationAsync(lease, ex.Message, InferenceError.BadRequest, sequence, crash).ConfigureAwait(false);
                return;
            }
            catch (InferenceException ex) when (ex.Error == InferenceError.BadRequest)
            {
                // The prompt does not fit the context, or the model refused the request: the client's fault, said once.
                await FailGenerationAsync(lease, ex.Message, ex.Error, sequence, crash).ConfigureAwait(false);
                return;
            }

            var completion = (int)Math.Max(0, sequence - 1);
            var promptTokens = generator.Tokenizer.Encode(request.Prompt ?? "").Count;
            var response = GenerationJobs.ToResponse(manifest.Name, manifest.Version, text.ToString(), promptTokens, completion, finish ?? GenerationFinish.Length);
            await FinishAsync(lease, JobStatus.Succeeded, response, null, crash, leaseLost: renewal.IsLost(lease)).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (crash.IsCancellationRequested)
        {
            // A crash: the lease expires and another worker resumes from the stream.
        }
        catch (InferenceException ex) when (ex.Error is InferenceError.NotFound or InferenceError.ModelFailure)
        {
            await FailGenerationAsync(lease, ex.Message, ex.Error, null, crash).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // A backing service or the engine failed: the job comes back and resumes from what its stream holds.
            Log.GenerationFailed(_logger, ex, Id, job.Id);
            try
            {
                await lease.AbandonAsync(ex.Message, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception abandon) when (abandon is not OperationCanceledException)
            {
                Log.SettleFailed(_logger, abandon, Id);
            }
        }
        finally
        {
            renewal?.Dispose();
        }
    }

    /// <summary>Settles a job whose stream already ended: succeeded with its text, or cancelled.</summary>
    private async Task SettleEndedAsync(JobLease lease, ModelManifest manifest, GenerationRequest request, IReadOnlyList<JobStreamEvent> stream, string text, CancellationToken cancellationToken)
    {
        var final = stream[^1];
        switch (final.Finish)
        {
            case StreamFinish.Cancelled:
                await FinishAsync(lease, JobStatus.Cancelled, null, "the generation was cancelled", cancellationToken).ConfigureAwait(false);
                return;
            case StreamFinish.Error:
                await FinishAsync(lease, JobStatus.Failed, null, final.Error ?? "the generation failed", cancellationToken, InferenceError.ModelFailure).ConfigureAwait(false);
                return;
        }

        var completion = stream.Count(e => e.TokenId is not null);
        var reason = final.Finish switch
        {
            StreamFinish.Length => GenerationFinish.Length,
            StreamFinish.Stop => GenerationFinish.Stop,
            _ => GenerationFinish.Eos,
        };
        var promptTokens = 0;
        using (var warm = await _pool.AcquireAsync(manifest, cancellationToken).ConfigureAwait(false))
        {
            if (warm.Model is ITextGenerationModel generator)
            {
                promptTokens = generator.Tokenizer.Encode(request.Prompt ?? "").Count;
            }
        }

        var response = GenerationJobs.ToResponse(manifest.Name, manifest.Version, text, promptTokens, completion, reason);
        await FinishAsync(lease, JobStatus.Succeeded, response, null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Ends the stream with an error (so followers stop) and fails the job.</summary>
    private async Task FailGenerationAsync(JobLease lease, string error, InferenceError kind, long? sequence, CancellationToken cancellationToken)
    {
        if (_streams is not null)
        {
            try
            {
                var at = sequence ?? (await _streams.ReadAsync(lease.Job.Id, cancellationToken).ConfigureAwait(false)).Count;
                await _streams.AppendAsync(lease.Job.Id, [JobStreamEvent.Final(at, StreamFinish.Error, ClientErrorText.Scrub(error))], cancellationToken).ConfigureAwait(false);
            }
            catch (JobStreamException)
            {
                // Already ended.
            }
        }

        await FinishAsync(lease, JobStatus.Failed, null, error, cancellationToken, kind).ConfigureAwait(false);
    }

    private static StreamFinish ToStream(GenerationFinish reason) => reason switch
    {
        GenerationFinish.Eos => StreamFinish.Eos,
        GenerationFinish.Length => StreamFinish.Length,
        GenerationFinish.Stop => StreamFinish.Stop,
        _ => StreamFinish.Cancelled,
    };

    private static partial class Log
    {
        [LoggerMessage(10, LogLevel.Warning, "Worker {WorkerId}: generation {JobId} failed; the job comes back and resumes from its stream")]
        public static partial void GenerationFailed(ILogger logger, Exception exception, string workerId, string jobId);

        [LoggerMessage(11, LogLevel.Information, "Job {JobId} was taken over by another worker; worker {WorkerId} stops generating it")]
        public static partial void GenerationTakenOver(ILogger logger, string jobId, string workerId);
    }
}
