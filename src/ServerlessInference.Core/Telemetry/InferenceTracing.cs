using System.Diagnostics;
using ServerlessInference.Jobs;

namespace ServerlessInference.Telemetry;

/// <summary>The platform's spans (activity source <c>ServerlessInference</c>): the gateway's enqueue, the worker's batch,
/// each job's run and its publish. A job carries its W3C trace context (<see cref="InferenceJob.TraceParent"/>) through
/// every queue, so one request is one trace across processes.</summary>
/// <remarks>With no listener (tracing off) every method returns null and costs a check. Thread-safe.</remarks>
public static class InferenceTracing
{
    public const string SourceName = "ServerlessInference";

    public static readonly ActivitySource Source = new(SourceName);

    /// <summary>The W3C request headers of a trace context.</summary>
    public const string TraceParentHeader = "traceparent";

    public const string TraceStateHeader = "tracestate";

    /// <summary>The caller's context from its <c>traceparent</c>/<c>tracestate</c> headers when no activity is ambient,
    /// else default. ASP.NET Core hosts start a request activity from these headers themselves; the Functions isolated
    /// worker runs a function outside the ASP.NET Core request's execution context, so there the gateway reads them.</summary>
    public static ActivityContext RemoteParent(string? traceParent, string? traceState) =>
        Activity.Current is null && traceParent is not null && ActivityContext.TryParse(traceParent, traceState, isRemote: true, out var context)
            ? context
            : default;

    /// <summary>The span of the gateway putting a job on the queue, a child of the request's span, or of
    /// <paramref name="remoteParent"/> (see <see cref="RemoteParent"/>) when no activity is ambient. The job carries its
    /// context (<see cref="ContextToCarry"/>).</summary>
    public static Activity? StartEnqueue(string model, ActivityContext remoteParent = default)
    {
        var activity = Activity.Current is null && remoteParent != default
            ? Source.StartActivity("inference.enqueue", ActivityKind.Producer, remoteParent)
            : Source.StartActivity("inference.enqueue", ActivityKind.Producer);
        activity?.SetTag("inference.model", model);
        return activity;
    }

    /// <summary>The context to store on a job: the enqueue span's, else the current activity's, else
    /// <paramref name="remoteParent"/> (the caller's own, when nobody here listens); W3C ids only.</summary>
    public static (string? TraceParent, string? TraceState) ContextToCarry(Activity? enqueue, ActivityContext remoteParent = default)
    {
        var activity = enqueue ?? Activity.Current;
        if (activity is { IdFormat: ActivityIdFormat.W3C })
        {
            return (activity.Id, activity.TraceStateString);
        }

        if (activity is null && remoteParent != default)
        {
            var flags = (remoteParent.TraceFlags & ActivityTraceFlags.Recorded) != 0 ? "01" : "00";
            return ($"00-{remoteParent.TraceId.ToHexString()}-{remoteParent.SpanId.ToHexString()}-{flags}", remoteParent.TraceState);
        }

        return (null, null);
    }

    /// <summary>The job's parent context, or default when it carries none (or a malformed one: a bad header never fails a job).</summary>
    public static ActivityContext ParentOf(InferenceJob job) =>
        job.TraceParent is { } parent && ActivityContext.TryParse(parent, job.TraceState, isRemote: true, out var context) ? context : default;

    /// <summary>A worker's batch of one model: the child of its job when it holds one, else a new trace linked to each
    /// job's context. Does not become <see cref="Activity.Current"/> (the caller's is kept).</summary>
    public static Activity? StartBatch(string model, IReadOnlyList<InferenceJob> jobs, string workerId)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        ActivityContext parent = default;
        List<ActivityLink>? links = null;
        if (jobs.Count == 1)
        {
            parent = ParentOf(jobs[0]);
        }
        else
        {
            links = [];
            foreach (var job in jobs)
            {
                if (ParentOf(job) is { TraceId: var traceId } context && traceId != default)
                {
                    links.Add(new ActivityLink(context));
                }
            }
        }

        var previous = Activity.Current;
        var activity = Source.StartActivity("inference.batch", ActivityKind.Consumer, parent, links: links);
        Activity.Current = previous;
        activity?.SetTag("inference.model", model);
        activity?.SetTag("inference.batch_size", jobs.Count);
        activity?.SetTag("inference.worker", workerId);
        return activity;
    }

    /// <summary>One job's run within a batch: a child of the job's own context (so each request's trace shows its run),
    /// linked to the batch. Does not become <see cref="Activity.Current"/>.</summary>
    public static Activity? StartJob(InferenceJob job, Activity? batch)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var parent = ParentOf(job);
        var previous = Activity.Current;
        var links = batch is not null && batch.Context.TraceId != parent.TraceId ? new[] { new ActivityLink(batch.Context) } : null;
        var activity = Source.StartActivity("inference.job", ActivityKind.Internal, parent == default ? batch?.Context ?? default : parent, links: links);
        Activity.Current = previous;
        activity?.SetTag("inference.job_id", job.Id);
        activity?.SetTag("inference.model", job.Model);
        return activity;
    }

    /// <summary>Storing a job's result, a child of <paramref name="parent"/> (its job span).</summary>
    public static Activity? StartPublish(InferenceJob job, Activity? parent, JobStatus status)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var previous = Activity.Current;
        var context = parent?.Context ?? ParentOf(job);
        var activity = Source.StartActivity("inference.publish", ActivityKind.Producer, context);
        Activity.Current = previous;
        activity?.SetTag("inference.job_id", job.Id);
        activity?.SetTag("inference.status", status.ToString().ToLowerInvariant());
        return activity;
    }
}
