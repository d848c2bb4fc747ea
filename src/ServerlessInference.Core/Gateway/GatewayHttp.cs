using System.Buffers;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServerlessInference.Dashboard;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Security;
using ServerlessInference.Telemetry;
using ServerlessInference.Webhooks;

namespace ServerlessInference.Gateway;

/// <summary>The HTTP surface (the README's "HTTP surface" and docs/architecture.md) as handlers over <see cref="HttpContext"/>, so the DevHost's endpoints
/// and the Functions app's HTTP triggers run exactly the same code.</summary>
public static partial class GatewayHttp
{
    public const string JsonContentType = "application/json";
    public const string BinaryContentType = "application/octet-stream";

    /// <summary>Maps every gateway route except <c>/metrics</c> (each host exports metrics its own way).</summary>
    public static IEndpointRouteBuilder MapInferenceGateway(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPost("/v2/models/{model}/infer", (HttpContext c, string model) => InferAsync(c, model, null));
        endpoints.MapPost("/v2/models/{model}/versions/{version}/infer", (HttpContext c, string model, string version) => InferAsync(c, model, version));
        endpoints.MapGet("/jobs/{id}", (HttpContext c, string id) => GetJobAsync(c, id));
        endpoints.MapDelete("/jobs/{id}", (HttpContext c, string id) => CancelJobAsync(c, id));
        endpoints.MapGet("/v2/health/live", (HttpContext c) => LiveAsync(c));
        endpoints.MapGet("/v2/health/ready", (HttpContext c) => ReadyAsync(c));
        endpoints.MapGet("/v2", (HttpContext c) => ServerMetadataAsync(c));
        endpoints.MapGet("/v2/models/{model}", (HttpContext c, string model) => ModelMetadataAsync(c, model, null));
        endpoints.MapGet("/v2/models/{model}/versions/{version}", (HttpContext c, string model, string version) => ModelMetadataAsync(c, model, version));
        endpoints.MapGet("/v2/models/{model}/ready", (HttpContext c, string model) => ModelReadyAsync(c, model, null));
        endpoints.MapGet("/v2/models/{model}/versions/{version}/ready", (HttpContext c, string model, string version) => ModelReadyAsync(c, model, version));
        endpoints.MapGet("/status", (HttpContext c) => StatusAsync(c));
        endpoints.MapGenerationRoutes();
        endpoints.MapDashboard();
        return endpoints;
    }

    /// <summary><c>POST /v2/models/{model}[/versions/{version}]/infer</c>.</summary>
    public static Task InferAsync(HttpContext context, string model, string? version) => GuardAsync(context, async () =>
    {
        var caller = await GatewayAuth.AuthorizeAsync(context).ConfigureAwait(false);
        var gateway = context.RequestServices.GetRequiredService<InferenceGateway>();
        var options = gateway.Options;
        var body = await ReadBodyAsync(context.Request, options.MaxBodyBytes, context.RequestAborted).ConfigureAwait(false);
        var headerLength = ReadHeaderLength(context.Request);
        var prefer = PreferHeader.Parse(context.Request.Headers["Prefer"]);

        var (job, request) = await gateway.SubmitAsync(model, version, body, headerLength, context.RequestAborted, caller,
            context.Request.Headers[WebhookRequests.Header], RemoteParent(context)).ConfigureAwait(false);
        context.Response.Headers["X-Job-Id"] = job.Id;

        var wait = prefer.EffectiveWait(options);
        var record = wait > TimeSpan.Zero
            ? await gateway.Results.WaitAsync(job.Id, wait, context.RequestAborted).ConfigureAwait(false)
            : null;
        if (prefer.RespondAsync || prefer.Wait is not null)
        {
            context.Response.Headers["Preference-Applied"] = prefer.RespondAsync ? "respond-async" : $"wait={wait.TotalSeconds.ToString(CultureInfo.InvariantCulture)}";
        }

        if (record is null || !record.Status.IsTerminal())
        {
            await WriteAcceptedAsync(context, record ?? QueuedRecord(job)).ConfigureAwait(false);
            return;
        }

        await MarkAnsweredAsync(gateway.Results, job.Id).ConfigureAwait(false);
        await WriteOutcomeAsync(context, record, request).ConfigureAwait(false);
    });

    /// <summary>The result goes back in this response: the store keeps it only briefly
    /// (<see cref="ResultStoreOptions.AnsweredRetention"/>). Best effort: a store that is down keeps it for its TTL.</summary>
    internal static async ValueTask MarkAnsweredAsync(IResultStore results, string jobId)
    {
        try
        {
            await results.MarkAnsweredAsync(jobId, CancellationToken.None).ConfigureAwait(false);
        }
        catch (InferenceException ex) when (ex.Error == InferenceError.Unavailable)
        {
            // The answer still goes out; the record lives out its TTL.
        }
    }

    /// <summary><c>GET /jobs/{id}</c>: the job's status and, once done, its result (to its own tenant only).</summary>
    public static Task GetJobAsync(HttpContext context, string id) => GuardAsync(context, async () =>
    {
        var record = await GetOwnJobAsync(context, id).ConfigureAwait(false);
        if (!record.Status.IsTerminal())
        {
            context.Response.Headers.RetryAfter = "1";
        }

        await WriteJobAsync(context, StatusCodes.Status200OK, record).ConfigureAwait(false);
    });

    /// <summary><c>DELETE /jobs/{id}</c>: cancels a job that has not started, or a generation that is running (it stops at
    /// its next token and frees its KV cache).</summary>
    public static Task CancelJobAsync(HttpContext context, string id) => GuardAsync(context, async () =>
    {
        await GetOwnJobAsync(context, id).ConfigureAwait(false);
        var results = context.RequestServices.GetRequiredService<InferenceGateway>().Results;
        var (cancelled, record) = await results.TryCancelAsync(id, context.RequestAborted).ConfigureAwait(false);
        if (record is null)
        {
            throw UnknownJob(id);
        }

        if (!cancelled && record.Status == JobStatus.Running && await GenerationHttp.TryStopRunningAsync(context, record).ConfigureAwait(false) is { } stopped)
        {
            (cancelled, record) = (true, stopped);
        }

        if (!cancelled)
        {
            throw new InferenceException(InferenceError.Conflict, $"job '{id}' is {StatusName(record.Status)} and can no longer be cancelled");
        }

        await WriteJobAsync(context, StatusCodes.Status200OK, record).ConfigureAwait(false);
    });

    /// <summary>Job <paramref name="id"/>'s record if the caller's tenant submitted it. Another tenant's job answers
    /// exactly as an unknown one (404), so job ids reveal nothing across tenants.</summary>
    internal static async Task<JobRecord> GetOwnJobAsync(HttpContext context, string id)
    {
        var caller = await GatewayAuth.AuthorizeAsync(context).ConfigureAwait(false);
        var results = context.RequestServices.GetRequiredService<InferenceGateway>().Results;
        var record = await results.GetAsync(id, context.RequestAborted).ConfigureAwait(false);
        return record is not null && caller.Owns(record) ? record : throw UnknownJob(id);
    }

    internal static InferenceException UnknownJob(string id) =>
        new(InferenceError.NotFound, $"unknown job '{id}' (results expire after their TTL)");

    public static Task LiveAsync(HttpContext context) => WriteJsonAsync(context, StatusCodes.Status200OK, w => w.WriteBoolean("live", true));

    /// <summary><c>GET /v2/health/ready</c>: 200 once the host finished starting (demo models seeded) and the model store answers.</summary>
    public static Task ReadyAsync(HttpContext context) => GuardAsync(context, async () =>
    {
        var readiness = context.RequestServices.GetService<Readiness>();
        if (readiness is { IsReady: false })
        {
            throw new InferenceException(InferenceError.Unavailable, $"not ready: {readiness.Reason}") { RetryAfterSeconds = 1 };
        }

        var gateway = context.RequestServices.GetRequiredService<InferenceGateway>();
        await gateway.Catalog.ListAsync(context.RequestAborted).ConfigureAwait(false);
        await WriteJsonAsync(context, StatusCodes.Status200OK, w => w.WriteBoolean("ready", true)).ConfigureAwait(false);
    });

    // Bodies are application/json, never HTML: keep quotes and apostrophes in error messages readable.
    private static readonly JsonWriterOptions s_writerOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly OipJsonContext s_relaxed = new(new JsonSerializerOptions(OipJsonContext.Default.Options) { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    private static readonly byte[] s_serverMetadata = JsonSerializer.SerializeToUtf8Bytes(
        new ServerMetadata("serverless-inference", typeof(GatewayHttp).Assembly.GetName().Version?.ToString(3) ?? "0.1.0", ["binary_tensor_data", "async_jobs"]),
        OipJsonContext.Default.ServerMetadata);

    /// <summary><c>GET /v2</c>: needs a key like inference (as Triton's does when its auth is on); health does not.</summary>
    public static Task ServerMetadataAsync(HttpContext context) => GuardAsync(context, async () =>
    {
        await GatewayAuth.AuthorizeAsync(context).ConfigureAwait(false);
        await WriteBytesAsync(context, StatusCodes.Status200OK, JsonContentType, s_serverMetadata).ConfigureAwait(false);
    });

    public static Task ModelMetadataAsync(HttpContext context, string model, string? version) => GuardAsync(context, async () =>
    {
        await GatewayAuth.AuthorizeAsync(context).ConfigureAwait(false);
        var gateway = context.RequestServices.GetRequiredService<InferenceGateway>();
        var manifest = await gateway.Catalog.GetAsync(model, version, context.RequestAborted).ConfigureAwait(false);
        var all = await gateway.Catalog.ListAsync(context.RequestAborted).ConfigureAwait(false);
        var versions = ModelVersions.Order(all.Where(m => m.Name == manifest.Name).Select(m => m.Version).Append(manifest.Version));
        await WriteBytesAsync(context, StatusCodes.Status200OK, JsonContentType, ModelMetadata.Serialize(manifest, versions)).ConfigureAwait(false);
    });

    /// <summary>A model is ready when it can be served: it exists in the store (workers scale from zero on demand).</summary>
    public static Task ModelReadyAsync(HttpContext context, string model, string? version) => GuardAsync(context, async () =>
    {
        await GatewayAuth.AuthorizeAsync(context).ConfigureAwait(false);
        var gateway = context.RequestServices.GetRequiredService<InferenceGateway>();
        var manifest = await gateway.Catalog.GetAsync(model, version, context.RequestAborted).ConfigureAwait(false);
        await WriteJsonAsync(context, StatusCodes.Status200OK, w =>
        {
            w.WriteString("name", manifest.Name);
            w.WriteString("version", manifest.Version);
            w.WriteBoolean("ready", true);
        }).ConfigureAwait(false);
    });

    /// <summary><c>GET /status</c>: queue depth, workers, warm models, execution providers, recent scaling decisions. Admin
    /// keys only, or the management port.</summary>
    public static Task StatusAsync(HttpContext context) => GuardAsync(context, async () =>
    {
        await GatewayAuth.AuthorizeAdminAsync(context).ConfigureAwait(false);
        var report = await StatusReport.BuildAsync(context.RequestServices, context.RequestAborted).ConfigureAwait(false);
        await WriteBytesAsync(context, StatusCodes.Status200OK, JsonContentType, report).ConfigureAwait(false);
    });

    private static JobRecord QueuedRecord(InferenceJob job) => new()
    {
        Id = job.Id,
        Model = job.Model,
        Version = job.Version,
        Status = JobStatus.Queued,
        SubmittedAt = job.SubmittedAt,
    };

    private static Task WriteAcceptedAsync(HttpContext context, JobRecord record)
    {
        context.Response.Headers.Location = $"{context.Request.PathBase}/jobs/{record.Id}";
        context.Response.Headers.RetryAfter = "1";
        return WriteJobAsync(context, StatusCodes.Status202Accepted, record);
    }

    private static Task WriteOutcomeAsync(HttpContext context, JobRecord record, InferenceRequest request)
    {
        switch (record.Status)
        {
            case JobStatus.Succeeded when record.Response is not null:
                var buffer = new ArrayBufferWriter<byte>(4096);
                var headerLength = OipCodec.WriteResponse(buffer, record.Response, request.WantsBinaryOutput);
                if (headerLength is int length)
                {
                    context.Response.Headers[ParameterNames.InferenceHeaderContentLength] = length.ToString(CultureInfo.InvariantCulture);
                    return WriteBytesAsync(context, StatusCodes.Status200OK, BinaryContentType, buffer.WrittenMemory);
                }

                return WriteBytesAsync(context, StatusCodes.Status200OK, JsonContentType, buffer.WrittenMemory);
            case JobStatus.Cancelled:
                return WriteErrorAsync(context, StatusCodes.Status409Conflict, record.Error ?? "the job was cancelled", null);
            case JobStatus.Expired:
                return WriteErrorAsync(context, StatusCodes.Status503ServiceUnavailable, record.Error ?? "the job expired before a worker started it", 5);
            default:
                // A request the engine itself rejected is the client's fault (400), like one the validator rejects.
                return WriteErrorAsync(context, StatusCodeOf(record.ErrorKind ?? InferenceError.ModelFailure), record.Error ?? "the job failed", null);
        }
    }

    /// <summary>The caller's <c>traceparent</c> where no activity is ambient (<see cref="InferenceTracing.RemoteParent"/>).</summary>
    internal static System.Diagnostics.ActivityContext RemoteParent(HttpContext context) => InferenceTracing.RemoteParent(
        context.Request.Headers[InferenceTracing.TraceParentHeader], context.Request.Headers[InferenceTracing.TraceStateHeader]);

    private static Task WriteJobAsync(HttpContext context, int status, JobRecord record) =>
        WriteBytesAsync(context, status, JsonContentType, JobJson(record));

    /// <summary>The JSON of <c>GET /jobs/{id}</c> for <paramref name="record"/> (also a webhook's body).</summary>
    internal static ReadOnlyMemory<byte> JobJson(JobRecord record)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer, s_writerOptions))
        {
            writer.WriteStartObject();
            writer.WriteString("id", record.Id);
            writer.WriteString("model", record.Model);
            writer.WriteString("version", record.Version);
            writer.WriteString("status", StatusName(record.Status));
            writer.WriteString("submitted_at", record.SubmittedAt);
            if (record.StartedAt is { } started)
            {
                writer.WriteString("started_at", started);
            }

            if (record.CompletedAt is { } completed)
            {
                writer.WriteString("completed_at", completed);
            }

            if (record.Error is not null)
            {
                writer.WriteString("error", record.Error);
            }

            if (record.Response is not null)
            {
                var response = new ArrayBufferWriter<byte>(4096);
                OipCodec.WriteResponse(response, record.Response, null);
                writer.WritePropertyName("response");
                writer.WriteRawValue(response.WrittenSpan, skipInputValidation: true);
            }

            writer.WriteEndObject();
        }

        return buffer.WrittenMemory;
    }

    public static string StatusName(JobStatus status) => status switch
    {
        JobStatus.Queued => "queued",
        JobStatus.Running => "running",
        JobStatus.Succeeded => "succeeded",
        JobStatus.Failed => "failed",
        JobStatus.Cancelled => "cancelled",
        JobStatus.Expired => "expired",
        _ => status.ToString().ToLowerInvariant(),
    };

    private static async Task GuardAsync(HttpContext context, Func<Task> handler)
    {
        try
        {
            await handler().ConfigureAwait(false);
        }
        catch (InferenceException ex)
        {
            await WriteErrorAsync(context, StatusCodeOf(ex.Error), ex.Message, ex.RetryAfterSeconds).ConfigureAwait(false);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            await WriteErrorAsync(context, StatusCodes.Status413PayloadTooLarge, "request body too large", null).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; its job (if any) still runs and can be polled.
        }
        catch (Exception ex)
        {
            var logger = context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(GatewayHttp));
            Log.Unhandled(logger, ex, context.Request.Path);
            await WriteErrorAsync(context, StatusCodes.Status500InternalServerError, "internal error", null).ConfigureAwait(false);
        }
    }

    public static int StatusCodeOf(InferenceError error) => error switch
    {
        InferenceError.BadRequest => StatusCodes.Status400BadRequest,
        InferenceError.NotFound => StatusCodes.Status404NotFound,
        InferenceError.PayloadTooLarge => StatusCodes.Status413PayloadTooLarge,
        InferenceError.QueueFull => StatusCodes.Status429TooManyRequests,
        InferenceError.Unavailable => StatusCodes.Status503ServiceUnavailable,
        InferenceError.Conflict => StatusCodes.Status409Conflict,
        InferenceError.Unauthorized => StatusCodes.Status401Unauthorized,
        InferenceError.Forbidden => StatusCodes.Status403Forbidden,
        InferenceError.RateLimited => StatusCodes.Status429TooManyRequests,
        _ => StatusCodes.Status500InternalServerError,
    };

    /// <summary>Writes an OIP error body <c>{"error": "..."}</c>.</summary>
    public static Task WriteErrorAsync(HttpContext context, int status, string message, int? retryAfterSeconds)
    {
        if (context.Response.HasStarted)
        {
            return Task.CompletedTask;
        }

        if (retryAfterSeconds is int seconds)
        {
            context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        }

        return WriteBytesAsync(context, status, JsonContentType, JsonSerializer.SerializeToUtf8Bytes(new ErrorBody(ClientErrorText.Scrub(message)), s_relaxed.ErrorBody));
    }

    private static Task WriteJsonAsync(HttpContext context, int status, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer, s_writerOptions))
        {
            writer.WriteStartObject();
            write(writer);
            writer.WriteEndObject();
        }

        return WriteBytesAsync(context, status, JsonContentType, buffer.WrittenMemory);
    }

    internal static async Task WriteBytesAsync(HttpContext context, int status, string contentType, ReadOnlyMemory<byte> body)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = contentType;
        context.Response.ContentLength = body.Length;
        await context.Response.Body.WriteAsync(body, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>Bodies up to this size are read straight into an array of their declared length.</summary>
    private const int SmallBodyBytes = 64 * 1024;

    /// <summary>Largest chunk a big body is gathered in (chunks double from 16 KiB).</summary>
    private const int MaxBodyChunkBytes = 1024 * 1024;

    /// <summary>Reads the whole body, refusing more than <paramref name="limit"/> bytes with 413.</summary>
    /// <remarks>Memory follows the bytes that arrive, never the <c>Content-Length</c> a client claims: a body over
    /// <see cref="SmallBodyBytes"/> is gathered in pooled chunks and copied once into an array of its real length, so a
    /// client that declares 16 MiB and sends a trickle holds only what it sent (and Kestrel's minimum data rate ends it).
    /// A body that ends before its <c>Content-Length</c> is a 400.</remarks>
    public static async ValueTask<ReadOnlyMemory<byte>> ReadBodyAsync(HttpRequest request, long limit, CancellationToken cancellationToken)
    {
        var tooLarge = new InferenceException(InferenceError.PayloadTooLarge, $"request body exceeds the limit of {limit} bytes (Inference:Gateway:MaxBodyBytes)");
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
        {
            // Our own limit decides; the server's default (30 MB) must not cut in first.
            sizeFeature.MaxRequestBodySize = limit + 1;
        }

        var declared = request.ContentLength;
        if (declared > limit)
        {
            throw tooLarge;
        }

        try
        {
            if (declared is long small && small <= SmallBodyBytes)
            {
                var exact = new byte[small];
                await request.Body.ReadExactlyAsync(exact, cancellationToken).ConfigureAwait(false);
                return exact;
            }

            var body = await GatherAsync(request.Body, limit, tooLarge, cancellationToken).ConfigureAwait(false);
            if (declared is long length && body.Length != length)
            {
                throw new EndOfStreamException();
            }

            return body;
        }
        catch (EndOfStreamException)
        {
            throw new InferenceException(InferenceError.BadRequest, "request body is shorter than its Content-Length");
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode != StatusCodes.Status413PayloadTooLarge)
        {
            // The server's own complaint about the body (it ended early, it came too slowly): the client's fault.
            throw new InferenceException(InferenceError.BadRequest, $"request body could not be read: {ex.Message}", ex);
        }
    }

    private static async ValueTask<byte[]> GatherAsync(Stream stream, long limit, InferenceException tooLarge, CancellationToken cancellationToken)
    {
        var chunks = new List<(byte[] Array, int Filled)>();
        long length = 0;
        try
        {
            var size = 16 * 1024;
            var ended = false;
            while (!ended)
            {
                var chunk = ArrayPool<byte>.Shared.Rent(size);
                size = Math.Min(size * 2, MaxBodyChunkBytes);
                var filled = 0;
                try
                {
                    while (filled < chunk.Length)
                    {
                        var read = await stream.ReadAsync(chunk.AsMemory(filled), cancellationToken).ConfigureAwait(false);
                        if (read == 0)
                        {
                            ended = true;
                            break;
                        }

                        filled += read;
                        length += read;
                        if (length > limit)
                        {
                            throw tooLarge;
                        }
                    }
                }
                finally
                {
                    chunks.Add((chunk, filled));
                }
            }

            var body = GC.AllocateUninitializedArray<byte>((int)length);
            var offset = 0;
            foreach (var (array, filled) in chunks)
            {
                array.AsSpan(0, filled).CopyTo(body.AsSpan(offset));
                offset += filled;
            }

            return body;
        }
        finally
        {
            foreach (var (array, _) in chunks)
            {
                ArrayPool<byte>.Shared.Return(array);
            }
        }
    }

    private static int? ReadHeaderLength(HttpRequest request)
    {
        if (!request.Headers.TryGetValue(ParameterNames.InferenceHeaderContentLength, out var values))
        {
            return null;
        }

        return int.TryParse(values.ToString(), NumberStyles.None, CultureInfo.InvariantCulture, out var length)
            ? length
            : throw new InferenceException(InferenceError.BadRequest, $"{ParameterNames.InferenceHeaderContentLength} must be a non-negative integer, got '{values}'");
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "Unhandled error serving {Path}")]
        public static partial void Unhandled(ILogger logger, Exception exception, string path);
    }
}

/// <summary>Whether the host has finished starting; <c>/v2/health/ready</c> answers 503 until it has.</summary>
public sealed class Readiness
{
    private volatile string? _reason = "starting";

    public bool IsReady => _reason is null;

    public string Reason => _reason ?? "ready";

    public void MarkReady() => _reason = null;

    public void MarkNotReady(string reason) => _reason = reason;
}
