using System.Buffers;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServerlessInference.Generation;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Security;
using ServerlessInference.Streaming;

namespace ServerlessInference.Gateway;

/// <summary>The generation routes as handlers over <see cref="HttpContext"/>, shared by the DevHost and the Functions app:
/// OpenAI's <c>/v1/completions</c>, <c>/v1/chat/completions</c> and <c>/v1/models</c>; the KServe/Triton generate
/// extension (<c>/v2/models/{m}/generate</c> and <c>generate_stream</c>); and <c>GET /jobs/{id}/stream</c>, a job's
/// tokens as Server-Sent Events that <c>Last-Event-ID</c> resumes.</summary>
/// <remarks>A generation is a job like any other: validated, tracked and enqueued before anything is answered, so
/// <c>Prefer: respond-async</c> gives <c>202</c> and <c>/jobs/{id}</c> here too. Streams follow the job's token stream
/// (<see cref="IJobStreams"/>), which survives the worker: a job taken over after a crash continues the same stream.</remarks>
public static partial class GenerationHttp
{
    private static readonly JsonWriterOptions s_writerOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>How often an idle stream sends an SSE comment, so proxies keep it open while the job waits for a worker.</summary>
    private static readonly TimeSpan s_keepAliveInterval = TimeSpan.FromSeconds(15);

    public static IEndpointRouteBuilder MapGenerationRoutes(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPost("/v1/completions", (HttpContext c) => OpenAiAsync(c, chat: false));
        endpoints.MapPost("/v1/chat/completions", (HttpContext c) => OpenAiAsync(c, chat: true));
        endpoints.MapGet("/v1/models", (HttpContext c) => ListModelsAsync(c));
        endpoints.MapGet("/v1/models/{model}", (HttpContext c, string model) => GetModelAsync(c, model));
        endpoints.MapPost("/v2/models/{model}/generate", (HttpContext c, string model) => GenerateAsync(c, model, null, stream: false));
        endpoints.MapPost("/v2/models/{model}/versions/{version}/generate", (HttpContext c, string model, string version) => GenerateAsync(c, model, version, stream: false));
        endpoints.MapPost("/v2/models/{model}/generate_stream", (HttpContext c, string model) => GenerateAsync(c, model, null, stream: true));
        endpoints.MapPost("/v2/models/{model}/versions/{version}/generate_stream", (HttpContext c, string model, string version) => GenerateAsync(c, model, version, stream: true));
        endpoints.MapGet("/jobs/{id}/stream", (HttpContext c, string id) => JobStreamAsync(c, id));
        return endpoints;
    }

    /// <summary><c>POST /v1/completions</c> and <c>POST /v1/chat/completions</c>; errors in OpenAI's shape.</summary>
    public static async Task OpenAiAsync(HttpContext context, bool chat)
    {
        try
        {
            var caller = await GatewayAuth.AuthorizeAsync(context).ConfigureAwait(false);
            var gateway = context.RequestServices.GetRequiredService<InferenceGateway>();
            var body = await GatewayHttp.ReadBodyAsync(context.Request, gateway.Options.MaxBodyBytes, context.RequestAborted).ConfigureAwait(false);
            var request = OpenAiRequests.Parse(body, chat);
            var prefer = PreferHeader.Parse(context.Request.Headers["Prefer"]);
            var generation = request.Generation;
            if (chat)
            {
                var manifest = await gateway.Catalog.GetAsync(request.Model, null, context.RequestAborted).ConfigureAwait(false);
                var template = manifest.Generation?.ChatTemplate
                    ?? throw new OpenAiException(400, $"model '{manifest.Name}' has no chat template; use /v1/completions", "model");
                generation = generation with { Prompt = template.Render(request.Messages!) };
            }

            var (job, _) = await gateway.SubmitGenerationAsync(request.Model, null, generation, context.RequestAborted, caller, GatewayHttp.RemoteParent(context)).ConfigureAwait(false);
            var format = new OpenAiFormat(chat, chat ? "chatcmpl-" + job.Id : "cmpl-" + job.Id, job.Model, job.SubmittedAt.ToUnixTimeSeconds(), request.IncludeUsage);
            await AnswerAsync(context, gateway, job, prefer, request.Stream, format).ConfigureAwait(false);
        }
        catch (OpenAiException ex)
        {
            await WriteOpenAiErrorAsync(context, ex.Status, ex.Message, ex.Param, ex.Code, null).ConfigureAwait(false);
        }
        catch (InferenceException ex)
        {
            var status = GatewayHttp.StatusCodeOf(ex.Error);
            await WriteOpenAiErrorAsync(context, status, ex.Message, ex.Error == InferenceError.NotFound ? "model" : null,
                OpenAiCodeOf(ex.Error), ex.RetryAfterSeconds).ConfigureAwait(false);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            await WriteOpenAiErrorAsync(context, 413, "request body too large", null, null, null).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; the job runs on and can be polled or streamed.
        }
        catch (Exception ex)
        {
            Log.Unhandled(Logger(context), ex, context.Request.Path);
            await WriteOpenAiErrorAsync(context, 500, "internal error", null, null, null).ConfigureAwait(false);
        }
    }

    /// <summary><c>GET /v1/models</c>: the text-generation models, in OpenAI's list shape.</summary>
    public static Task ListModelsAsync(HttpContext context) => OpenAiGuardAsync(context, async () =>
    {
        await GatewayAuth.AuthorizeAsync(context).ConfigureAwait(false);
        var gateway = context.RequestServices.GetRequiredService<InferenceGateway>();
        var models = (await gateway.Catalog.ListAsync(context.RequestAborted).ConfigureAwait(false))
            .Where(m => m.IsTextGeneration)
            .Select(m => m.Name)
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)
            .ToList();
        await WriteJsonAsync(context, 200, w =>
        {
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            foreach (var name in models)
            {
                WriteModel(w, name);
            }

            w.WriteEndArray();
        }).ConfigureAwait(false);
    });

    /// <summary><c>GET /v1/models/{model}</c>.</summary>
    public static Task GetModelAsync(HttpContext context, string model) => OpenAiGuardAsync(context, async () =>
    {
        await GatewayAuth.AuthorizeAsync(context).ConfigureAwait(false);
        var gateway = context.RequestServices.GetRequiredService<InferenceGateway>();
        var manifest = await gateway.Catalog.GetAsync(model, null, context.RequestAborted).ConfigureAwait(false);
        if (!manifest.IsTextGeneration)
        {
            throw new OpenAiException(404, $"model '{model}' is not a text-generation model", "model", "model_not_found");
        }

        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, s_writerOptions))
        {
            WriteModel(writer, manifest.Name);
        }

        await GatewayHttp.WriteBytesAsync(context, 200, GatewayHttp.JsonContentType, buffer.WrittenMemory).ConfigureAwait(false);
    });

    /// <summary><c>POST /v2/models/{model}[/versions/{v}]/generate[_stream]</c>: KServe/Triton's generate extension,
    /// <c>{"text_input": "...", "parameters": {...}}</c> (parameters may also stand at the top level) →
    /// <c>{"model_name", "model_version", "text_output"}</c>. Errors in OIP's shape.</summary>
    public static async Task GenerateAsync(HttpContext context, string model, string? version, bool stream)
    {
        try
        {
            var caller = await GatewayAuth.AuthorizeAsync(context).ConfigureAwait(false);
            var gateway = context.RequestServices.GetRequiredService<InferenceGateway>();
            var body = await GatewayHttp.ReadBodyAsync(context.Request, gateway.Options.MaxBodyBytes, context.RequestAborted).ConfigureAwait(false);
            var generation = KServeGenerate.Parse(body);
            var prefer = PreferHeader.Parse(context.Request.Headers["Prefer"]);
            var (job, _) = await gateway.SubmitGenerationAsync(model, version, generation, context.RequestAborted, caller, GatewayHttp.RemoteParent(context)).ConfigureAwait(false);
            await AnswerAsync(context, gateway, job, prefer, stream, new KServeFormat(job.Model, job.Version, job.Id)).ConfigureAwait(false);
        }
        catch (InferenceException ex)
        {
            await GatewayHttp.WriteErrorAsync(context, GatewayHttp.StatusCodeOf(ex.Error), ex.Message, ex.RetryAfterSeconds).ConfigureAwait(false);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            await GatewayHttp.WriteErrorAsync(context, 413, "request body too large", null).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            Log.Unhandled(Logger(context), ex, context.Request.Path);
            await GatewayHttp.WriteErrorAsync(context, 500, "internal error", null).ConfigureAwait(false);
        }
    }

    /// <summary><c>GET /jobs/{id}/stream</c>: the job's tokens as SSE, <c>id:</c> = the token's sequence and
    /// <c>data:</c> = <c>{"seq", "token", "text"}</c>; the last event (<c>event: end</c>) carries <c>finish</c> (and
    /// <c>error</c>). A reconnect with <c>Last-Event-ID</c> continues after that event, with no gap and no duplicate.</summary>
    public static async Task JobStreamAsync(HttpContext context, string id)
    {
        try
        {
            if (!ServerSentEvents.TryParseLastEventId(context.Request.Headers[ServerSentEvents.LastEventIdHeader], out var after))
            {
                throw new InferenceException(InferenceError.BadRequest, $"{ServerSentEvents.LastEventIdHeader} must be the id of an event of this stream (a sequence number)");
            }

            var record = await GatewayHttp.GetOwnJobAsync(context, id).ConfigureAwait(false);
            await StreamAsync(context, record.Id, after, new RawFormat()).ConfigureAwait(false);
        }
        catch (InferenceException ex)
        {
            await GatewayHttp.WriteErrorAsync(context, GatewayHttp.StatusCodeOf(ex.Error), ex.Message, ex.RetryAfterSeconds).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
        }
    }

    /// <summary>Stops a running generation: ends its stream with a <c>cancelled</c> event, which the worker's next append
    /// runs into, and waits briefly for the worker to record the job as cancelled. Null when the job is not a generation
    /// or ended meanwhile.</summary>
    internal static async Task<JobRecord?> TryStopRunningAsync(HttpContext context, JobRecord record)
    {
        var gateway = context.RequestServices.GetRequiredService<InferenceGateway>();
        var streams = context.RequestServices.GetService<IJobStreams>();
        ModelManifest manifest;
        try
        {
            manifest = await gateway.Catalog.GetAsync(record.Model, record.Version, context.RequestAborted).ConfigureAwait(false);
        }
        catch (InferenceException ex) when (ex.Error == InferenceError.NotFound)
        {
            return null;
        }

        if (streams is null || !manifest.IsTextGeneration)
        {
            return null;
        }

        // The worker may append between our read and our write: the append then stores nothing, and we try again after it.
        for (var attempt = 0; attempt < 16; attempt++)
        {
            var stored = await streams.ReadAsync(record.Id, context.RequestAborted).ConfigureAwait(false);
            if (stored.Count > 0 && stored[^1].IsFinal)
            {
                if (stored[^1].Finish != Streaming.FinishReason.Cancelled)
                {
                    return null;
                }

                break;
            }

            try
            {
                var appended = await streams.AppendAsync(record.Id, [JobStreamEvent.Final(stored.Count, Streaming.FinishReason.Cancelled)], context.RequestAborted).ConfigureAwait(false);
                if (appended.Appended == 1)
                {
                    break;
                }
            }
            catch (JobStreamException ex) when (ex.Rejection is JobStreamRejection.Ended or JobStreamRejection.Gap)
            {
                // Ended or grew meanwhile: read again.
            }
        }

        var settled = await gateway.Results.WaitAsync(record.Id, TimeSpan.FromSeconds(5), context.RequestAborted).ConfigureAwait(false);
        return settled is { Status: JobStatus.Cancelled } ? settled : (settled ?? record) with { Status = JobStatus.Cancelled };
    }

    /// <param name="prefer">Parsed before the job was submitted, so a bad <c>Prefer</c> is refused before anything is queued.</param>
    private static async Task AnswerAsync(HttpContext context, InferenceGateway gateway, InferenceJob job, PreferHeader prefer, bool stream, IGenerationFormat format)
    {
        context.Response.Headers["X-Job-Id"] = job.Id;
        if (prefer.RespondAsync)
        {
            context.Response.Headers["Preference-Applied"] = "respond-async";
            context.Response.Headers.Location = $"{context.Request.PathBase}/jobs/{job.Id}";
            context.Response.Headers.RetryAfter = "1";
            await WriteJsonAsync(context, StatusCodes.Status202Accepted, w =>
            {
                w.WriteString("id", job.Id);
                w.WriteString("model", job.Model);
                w.WriteString("version", job.Version);
                w.WriteString("status", "queued");
                w.WriteString("stream", $"{context.Request.PathBase}/jobs/{job.Id}/stream");
            }).ConfigureAwait(false);
            return;
        }

        if (stream)
        {
            await StreamAsync(context, job.Id, -1, format).ConfigureAwait(false);
            return;
        }

        var record = await gateway.Results.WaitAsync(job.Id, prefer.EffectiveWait(gateway.Options), context.RequestAborted).ConfigureAwait(false);
        if (record is null || !record.Status.IsTerminal())
        {
            context.Response.Headers.Location = $"{context.Request.PathBase}/jobs/{job.Id}";
            context.Response.Headers.RetryAfter = "1";
            await WriteJsonAsync(context, StatusCodes.Status202Accepted, w =>
            {
                w.WriteString("id", job.Id);
                w.WriteString("status", GatewayHttp.StatusName(record?.Status ?? JobStatus.Queued));
            }).ConfigureAwait(false);
            return;
        }

        await GatewayHttp.MarkAnsweredAsync(gateway.Results, job.Id).ConfigureAwait(false);
        if (record is { Status: JobStatus.Succeeded, Response: { } response })
        {
            var result = GenerationJobs.ReadResponse(response);
            await WriteJsonAsync(context, 200, w => format.WriteResult(w, result)).ConfigureAwait(false);
            return;
        }

        throw record.Status switch
        {
            JobStatus.Cancelled => new InferenceException(InferenceError.Conflict, record.Error ?? "the job was cancelled"),
            JobStatus.Expired => new InferenceException(InferenceError.Unavailable, record.Error ?? "the job expired before a worker started it") { RetryAfterSeconds = 5 },
            _ => new InferenceException(record.ErrorKind ?? InferenceError.ModelFailure, record.Error ?? "the job failed"),
        };
    }

    /// <summary>Follows the job's stream as SSE until its final event, or until the job ends without one (failed before
    /// a worker wrote it, cancelled or expired while queued), which a watcher on the result store notices.</summary>
    private static async Task StreamAsync(HttpContext context, string jobId, long after, IGenerationFormat format)
    {
        var streams = context.RequestServices.GetRequiredService<IJobStreams>();
        var results = context.RequestServices.GetRequiredService<InferenceGateway>().Results;
        var response = context.Response;
        ServerSentEvents.Start(response);
        await response.StartAsync(context.RequestAborted).ConfigureAwait(false);
        await format.WriteStartAsync(response, context.RequestAborted).ConfigureAwait(false);

        using var follow = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var watcher = WatchForEndWithoutStreamAsync(results, jobId, follow);
        var tokens = 0;
        JobStreamEvent? final = null;
        var keepAlive = Task.Delay(s_keepAliveInterval, context.RequestAborted);
        await using (var events = streams.FollowAsync(jobId, after, follow.Token).GetAsyncEnumerator(follow.Token))
        {
            try
            {
                while (true)
                {
                    var next = events.MoveNextAsync().AsTask();

                    // One keep-alive timer at a time, not one per token: a new one only once the last has fired.
                    while (await Task.WhenAny(next, keepAlive).ConfigureAwait(false) != next)
                    {
                        await ServerSentEvents.WriteCommentAsync(response, "keep-alive", context.RequestAborted).ConfigureAwait(false);
                        keepAlive = Task.Delay(s_keepAliveInterval, context.RequestAborted);
                    }

                    if (!await next.ConfigureAwait(false))
                    {
                        break;
                    }

                    var e = events.Current;
                    if (e.TokenId is not null)
                    {
                        tokens++;
                    }

                    if (e.IsFinal)
                    {
                        final = e;
                        break;
                    }

                    await format.WriteTokenAsync(response, e, context.RequestAborted).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (follow.IsCancellationRequested && !context.RequestAborted.IsCancellationRequested)
            {
                // The watcher saw the job end without a final event.
            }
        }

        await follow.CancelAsync().ConfigureAwait(false);
        var record = await watcher.ConfigureAwait(false) ?? await results.GetAsync(jobId, context.RequestAborted).ConfigureAwait(false);
        var usage = record is { Status: JobStatus.Succeeded, Response: { } r } ? GenerationJobs.ReadResponse(r) : null;
        if (final is not null && final.Finish != Streaming.FinishReason.Error)
        {
            await format.WriteEndAsync(response, final, usage, context.RequestAborted).ConfigureAwait(false);
            return;
        }

        var error = final?.Error ?? record?.Error ?? (record is null ? "the job expired" : $"the job is {GatewayHttp.StatusName(record.Status)}");
        await format.WriteErrorAsync(response, final ?? JobStreamEvent.Final(Math.Max(after, tokens - 1) + 1, Streaming.FinishReason.Error, error), error, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Returns the job's record once it is terminal; cancels <paramref name="follow"/> when it ended without a
    /// stream of its own to finish (anything but success), after giving a final event a moment to arrive.</summary>
    private static async Task<JobRecord?> WatchForEndWithoutStreamAsync(IResultStore results, string jobId, CancellationTokenSource follow)
    {
        try
        {
            while (!follow.IsCancellationRequested)
            {
                var record = await results.WaitAsync(jobId, TimeSpan.FromSeconds(30), follow.Token).ConfigureAwait(false);
                if (record is null || record.Status.IsTerminal())
                {
                    if (record is not { Status: JobStatus.Succeeded })
                    {
                        await Task.Delay(TimeSpan.FromMilliseconds(200), follow.Token).ConfigureAwait(false);
                        await follow.CancelAsync().ConfigureAwait(false);
                    }

                    return record;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (InferenceException)
        {
            // The result store is down; the stream itself decides.
        }

        return null;
    }

    private static async Task OpenAiGuardAsync(HttpContext context, Func<Task> handler)
    {
        try
        {
            await handler().ConfigureAwait(false);
        }
        catch (OpenAiException ex)
        {
            await WriteOpenAiErrorAsync(context, ex.Status, ex.Message, ex.Param, ex.Code, null).ConfigureAwait(false);
        }
        catch (InferenceException ex)
        {
            await WriteOpenAiErrorAsync(context, GatewayHttp.StatusCodeOf(ex.Error), ex.Message, null, OpenAiCodeOf(ex.Error), ex.RetryAfterSeconds).ConfigureAwait(false);
        }
    }

    /// <summary>OpenAI's <c>code</c> for an error: <c>invalid_api_key</c> (401), <c>rate_limit_exceeded</c> (429),
    /// <c>model_not_found</c> (404).</summary>
    private static string? OpenAiCodeOf(InferenceError error) => error switch
    {
        InferenceError.NotFound => "model_not_found",
        InferenceError.Unauthorized => "invalid_api_key",
        InferenceError.RateLimited => "rate_limit_exceeded",
        _ => null,
    };

    /// <summary>OpenAI's error body: <c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
    public static Task WriteOpenAiErrorAsync(HttpContext context, int status, string message, string? param, string? code, int? retryAfterSeconds)
    {
        if (context.Response.HasStarted)
        {
            return Task.CompletedTask;
        }

        if (retryAfterSeconds is int seconds)
        {
            context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        }

        return WriteJsonAsync(context, status, w =>
        {
            w.WriteStartObject("error");
            w.WriteString("message", ClientErrorText.Scrub(message));
            w.WriteString("type", OpenAiException.TypeOf(status));
            WriteStringOrNull(w, "param", param);
            WriteStringOrNull(w, "code", code);
            w.WriteEndObject();
        });
    }

    private static void WriteModel(Utf8JsonWriter w, string name)
    {
        w.WriteStartObject();
        w.WriteString("id", name);
        w.WriteString("object", "model");
        w.WriteNumber("created", 0);
        w.WriteString("owned_by", "serverless-inference");
        w.WriteEndObject();
    }

    internal static void WriteStringOrNull(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null)
        {
            w.WriteNull(name);
        }
        else
        {
            w.WriteString(name, value);
        }
    }

    internal static string Json(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, s_writerOptions))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static Task WriteJsonAsync(HttpContext context, int status, Action<Utf8JsonWriter> write) =>
        GatewayHttp.WriteBytesAsync(context, status, GatewayHttp.JsonContentType, System.Text.Encoding.UTF8.GetBytes(Json(write)));

    private static ILogger Logger(HttpContext context) =>
        context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(GenerationHttp));

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "Unhandled error on {Path}")]
        public static partial void Unhandled(ILogger logger, Exception exception, string path);
    }
}
