using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Generation;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Scaling;
using ServerlessInference.Security;
using ServerlessInference.Telemetry;
using ServerlessInference.Webhooks;

namespace ServerlessInference.Gateway;

/// <summary>The gateway's work without HTTP: resolve the model, parse and validate, track and enqueue the job.</summary>
/// <remarks>Bad input throws <see cref="InferenceException"/> before anything is enqueued. Thread-safe.</remarks>
public sealed partial class InferenceGateway(
    ModelCatalog catalog,
    IJobQueue queue,
    IResultStore results,
    IOptions<GatewayOptions> options,
    TimeProvider timeProvider,
    InferenceMetrics metrics,
    ILogger<InferenceGateway> logger,
    IScaleTrigger? scaleTrigger = null,
    IPromptTokenCounter? promptTokens = null,
    JobSlots? slots = null,
    IWebhookOutbox? webhookOutbox = null,
    IOptions<WebhookOptions>? webhookOptions = null)
{
    private readonly WebhookOptions? _webhooks = webhookOptions?.Value;

    private readonly IResultStore _reads = slots is null ? results : new SlotReleasingResultStore(results, slots);
    private readonly VariantSelector _variants = new(catalog, queue, timeProvider, metrics);

    public GatewayOptions Options => options.Value;

    public ModelCatalog Catalog => catalog;

    /// <summary>Which version (original or quantized variant) requests run on; its switches are shown in <c>/status</c>.</summary>
    public VariantSelector Variants => _variants;

    /// <summary>The result store as handlers read it: a job read as ended frees its caller's concurrent-jobs slot.</summary>
    public IResultStore Results => _reads;

    /// <summary>Validates <paramref name="body"/> against the model and enqueues it as a job.</summary>
    /// <remarks>With <paramref name="caller"/>, the job belongs to its tenant and takes one of its concurrent-jobs slots.</remarks>
    public async ValueTask<(InferenceJob Job, InferenceRequest Request)> SubmitAsync(
        string model, string? version, ReadOnlyMemory<byte> body, int? inferenceHeaderLength, CancellationToken cancellationToken, Caller? caller = null,
        Microsoft.Extensions.Primitives.StringValues webhookHeader = default, System.Diagnostics.ActivityContext remoteParent = default)
    {
        string? webhook;
        ModelManifest? manifest = null;
        InferenceRequest request;
        try
        {
            manifest = await catalog.GetAsync(model, version, cancellationToken).ConfigureAwait(false);
            request = OipCodec.ParseRequest(body, inferenceHeaderLength);
            webhook = WebhookRequests.Take(request, webhookHeader, _webhooks);
            manifest = await _variants.SelectAsync(manifest, version is not null, VariantOf(request.Parameters), cancellationToken).ConfigureAwait(false);
            RequestValidator.Validate(request, manifest);
        }
        catch (InferenceException ex)
        {
            // A model named in a URL is a label only once the catalog knows it: unknown names must not grow the series.
            metrics.Request(manifest?.Name ?? InferenceMetrics.UnknownModel, ex.Error == InferenceError.NotFound ? "not_found" : "rejected");
            throw;
        }

        var job = await EnqueueAsync(manifest, request, caller, cancellationToken, webhook, remoteParent).ConfigureAwait(false);
        return (job, request);
    }

    /// <summary>Validates a generation against the model and enqueues it as a job (<see cref="GenerationJobs"/> says how
    /// it travels). An unseeded sampled generation gets a seed here, so a redelivered job resumes the same stream.</summary>
    /// <exception cref="InferenceException">Unknown model (404), a model that does not generate text, or bad values (400).</exception>
    public async ValueTask<(InferenceJob Job, ModelManifest Manifest)> SubmitGenerationAsync(
        string model, string? version, GenerationRequest request, CancellationToken cancellationToken, Caller? caller = null,
        System.Diagnostics.ActivityContext remoteParent = default)
    {
        ModelManifest? manifest = null;
        try
        {
            manifest = await catalog.GetAsync(model, version, cancellationToken).ConfigureAwait(false);
            manifest = await _variants.SelectAsync(manifest, version is not null, request.Variant, cancellationToken).ConfigureAwait(false);
            if (!manifest.IsTextGeneration)
            {
                throw new InferenceException(InferenceError.BadRequest, $"model '{manifest.Name}' is not a text-generation model (its manifest has no \"task\": \"text-generation\")");
            }

            if (request.Validate() is { } problem)
            {
                throw new InferenceException(InferenceError.BadRequest, problem);
            }

            if (manifest.Generation is { } spec && request.MaxTokens >= spec.ContextLength)
            {
                throw new InferenceException(InferenceError.BadRequest, $"max_tokens is {request.MaxTokens}, but the context of '{manifest.Name}' holds {spec.ContextLength} tokens in all");
            }

            // With the model's tokenizer at hand, a prompt that leaves no room to generate never reaches the queue.
            if (promptTokens is not null && options.Value.CountPromptTokens && manifest.Generation is { } context && request.Prompt is { } prompt)
            {
                var count = await promptTokens.CountAsync(manifest, prompt, cancellationToken).ConfigureAwait(false);
                if (count >= context.ContextLength)
                {
                    throw new InferenceException(InferenceError.BadRequest,
                        $"the prompt is {count} tokens, but the context of '{manifest.Name}' holds {context.ContextLength} tokens (prompt and completion together)");
                }
            }
        }
        catch (InferenceException ex)
        {
            metrics.Request(manifest?.Name ?? InferenceMetrics.UnknownModel, ex.Error == InferenceError.NotFound ? "not_found" : "rejected");
            throw;
        }

        if (request.Sampling is { Temperature: > 0, Seed: null })
        {
            request = request with { Sampling = request.Sampling with { Seed = (ulong)Random.Shared.NextInt64(long.MaxValue) } };
        }

        var job = await EnqueueAsync(manifest, GenerationJobs.ToRequest(request), caller, cancellationToken, remoteParent: remoteParent).ConfigureAwait(false);
        return (job, manifest);
    }

    private async ValueTask<InferenceJob> EnqueueAsync(
        ModelManifest manifest, InferenceRequest request, Caller? caller, CancellationToken cancellationToken, string? webhook = null,
        System.Diagnostics.ActivityContext remoteParent = default)
    {
        var model = manifest.Name;
        var now = timeProvider.GetUtcNow();
        using var span = InferenceTracing.StartEnqueue(model, remoteParent);
        var (traceParent, traceState) = InferenceTracing.ContextToCarry(span, remoteParent);
        var job = new InferenceJob
        {
            Id = InferenceJob.NewId(),
            Model = manifest.Name,
            Version = manifest.Version,
            Request = request,
            SubmittedAt = now,
            Deadline = now + options.Value.JobDeadline,
            Tenant = caller?.Tenant,
            // Every generation comes through here, with its rendered prompt as text_input.
            PrefixKey = manifest.IsTextGeneration ? PromptPrefix.Key(request) : null,
            TraceParent = traceParent,
            TraceState = traceState,
            Webhook = webhook,
            // Every route enqueues here (OIP infer, generate, the OpenAI routes, the Functions app's): the queue refuses
            // this model's jobs beyond its manifest's max_queued with QueueFull (429), other models unaffected.
            ModelQueueCapacity = manifest.MaxQueued,
        };
        span?.SetTag("inference.job_id", job.Id);

        var limited = slots is not null && caller is { KeyId: not null, MaxConcurrentJobs: > 0 } ? caller : null;
        if (limited is not null && !slots!.TryAcquire(limited.KeyId!, limited.MaxConcurrentJobs, job.Id))
        {
            metrics.Request(model, "rate_limited");
            throw new InferenceException(InferenceError.RateLimited,
                $"this key has {limited.MaxConcurrentJobs} jobs that have not ended, its limit; retry once one has")
            {
                RetryAfterSeconds = 1,
            };
        }

        try
        {
            await results.TrackAsync(job, cancellationToken).ConfigureAwait(false);
            await queue.EnqueueAsync(job, cancellationToken).ConfigureAwait(false);
        }
        catch (InferenceException ex)
        {
            metrics.Request(model, ex.Error == InferenceError.QueueFull ? "queue_full" : "unavailable");
            slots?.Release(job.Id);
            await ForgetAsync(job, ex.Message).ConfigureAwait(false);
            throw;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.BackingServiceDown(logger, ex);
            metrics.Request(model, "unavailable");
            slots?.Release(job.Id);
            await ForgetAsync(job, "the job queue is unavailable").ConfigureAwait(false);
            throw new InferenceException(InferenceError.Unavailable, "the job queue is unavailable; retry later", ex)
            {
                RetryAfterSeconds = options.Value.UnavailableRetryAfterSeconds,
            };
        }

        if (limited is not null)
        {
            slots!.Watch(job);
        }

        if (webhook is not null && webhookOutbox is not null)
        {
            await AddWebhookAsync(job, webhook).ConfigureAwait(false);
        }

        scaleTrigger?.Nudge();
        return job;
    }

    /// <summary>Records the job's webhook for the dispatchers. The job is queued already: a failure here is logged, not
    /// turned into an error for a job that will run.</summary>
    private async ValueTask AddWebhookAsync(InferenceJob job, string webhook)
    {
        try
        {
            await webhookOutbox!.AddAsync(new WebhookDelivery(job.Id, webhook), job.SubmittedAt, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.WebhookNotRecorded(logger, ex, job.Id);
        }
    }

    private static string? VariantOf(IReadOnlyDictionary<string, object>? parameters)
    {
        if (parameters is null || !parameters.TryGetValue(ModelVariants.Parameter, out var value))
        {
            return null;
        }

        return value as string ?? throw new InferenceException(InferenceError.BadRequest,
            $"parameter '{ModelVariants.Parameter}' must be a string: one of {string.Join(", ", ModelVariants.Known)} or '{ModelVariants.None}'");
    }

    /// <summary>Marks a job that never made it onto the queue as failed, so a poll does not show it queued forever.</summary>
    private async ValueTask ForgetAsync(InferenceJob job, string reason)
    {
        try
        {
            await results.PublishAsync(new JobRecord
            {
                Id = job.Id,
                Model = job.Model,
                Version = job.Version,
                Status = JobStatus.Failed,
                SubmittedAt = job.SubmittedAt,
                CompletedAt = timeProvider.GetUtcNow(),
                Error = "not accepted: " + reason,
            }, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The store is down too; the client got an error status and the record expires.
            Log.BackingServiceDown(logger, ex);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "A backing service failed while accepting a job")]
        public static partial void BackingServiceDown(ILogger logger, Exception exception);

        [LoggerMessage(2, LogLevel.Error, "The webhook of job {JobId} could not be recorded; it will not be delivered")]
        public static partial void WebhookNotRecorded(ILogger logger, Exception exception, string jobId);
    }
}
