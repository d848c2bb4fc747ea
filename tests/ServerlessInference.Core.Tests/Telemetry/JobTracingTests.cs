using System.Collections.Concurrent;
using System.Diagnostics;
using ServerlessInference.Jobs;
using ServerlessInference.Telemetry;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Telemetry;

/// <summary>A job's W3C trace context travels with it, and the worker's spans join each job's trace.</summary>
public sealed class JobTracingTests : IDisposable
{
    private readonly WorkerRig _rig = new();
    private readonly ConcurrentBag<Activity> _spans = [];
    private readonly ActivityListener _listener;

    public JobTracingTests()
    {
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == InferenceTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = _spans.Add,
        };
        ActivitySource.AddActivityListener(_listener);
    }

    public void Dispose()
    {
        _listener.Dispose();
        _rig.Dispose();
    }

    private static (InferenceJob Job, ActivityContext Context) Traced(InferenceJob job)
    {
        var context = new ActivityContext(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded);
        var traceParent = $"00-{context.TraceId}-{context.SpanId}-01";
        return (new InferenceJob
        {
            Id = job.Id,
            Model = job.Model,
            Version = job.Version,
            Request = job.Request,
            SubmittedAt = job.SubmittedAt,
            Deadline = job.Deadline,
            TraceParent = traceParent,
            TraceState = "si=1",
        }, context);
    }

    private async Task<List<(InferenceJob Job, ActivityContext Context)>> RunAsync(int count)
    {
        _rig.Models.Add("m");
        var jobs = new List<(InferenceJob, ActivityContext)>();
        for (var i = 0; i < count; i++)
        {
            var traced = Traced(TestJobs.Job("m", _rig.Time.GetUtcNow(), i));
            await _rig.Results.TrackAsync(traced.Job, default);
            await _rig.Queue.EnqueueAsync(traced.Job, default);
            jobs.Add(traced);
        }

        var worker = _rig.Worker();
        var run = worker.RunAsync(default);
        await _rig.AwaitAllAsync(jobs.Select(j => j.Item1));
        worker.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));
        return jobs;
    }

    private List<Activity> Spans(string name, ActivityTraceId? trace = null) =>
        _spans.Where(s => s.OperationName == name && (trace is null || s.TraceId == trace)).ToList();

    [Fact]
    public async Task RunAsync_OneJob_BatchJobAndPublishSpansAreInTheJobsTrace()
    {
        var (job, context) = (await RunAsync(1)).Single();

        var batch = Assert.Single(Spans("inference.batch", context.TraceId));
        Assert.Equal(context.SpanId, batch.ParentSpanId);
        Assert.Equal(ActivityKind.Consumer, batch.Kind);
        var run = Assert.Single(Spans("inference.job", context.TraceId));
        Assert.Equal(context.SpanId, run.ParentSpanId);
        Assert.Equal(job.Id, run.GetTagItem("inference.job_id"));
        Assert.Equal("si=1", run.TraceStateString);
        var publish = Assert.Single(Spans("inference.publish", context.TraceId));
        Assert.Equal(run.SpanId, publish.ParentSpanId);
        Assert.Equal("succeeded", publish.GetTagItem("inference.status"));
    }

    [Fact]
    public async Task RunAsync_BatchOfSeveralJobs_LinksEachJobAndGivesEachItsOwnChildSpan()
    {
        var jobs = await RunAsync(3);

        // One engine call for the three: its span links to every job's context.
        Assert.Equal(1, _rig.Engine.Models.Single().Batches);
        var traces = jobs.Select(j => j.Context.TraceId).ToHashSet();
        var batch = Assert.Single(_spans, s => s.OperationName == "inference.batch" && s.Links.Any(l => traces.Contains(l.Context.TraceId)));
        Assert.Equal(3, batch.GetTagItem("inference.batch_size"));
        Assert.Equal(traces.Select(t => t.ToHexString()).Order(), batch.Links.Select(l => l.Context.TraceId.ToHexString()).Order());
        foreach (var (job, context) in jobs)
        {
            Assert.Contains(batch.Links, l => l.Context.SpanId == context.SpanId);
            var run = Assert.Single(Spans("inference.job", context.TraceId));
            Assert.Equal(context.SpanId, run.ParentSpanId);
            Assert.Equal(job.Id, run.GetTagItem("inference.job_id"));
            Assert.Contains(run.Links, l => l.Context.SpanId == batch.SpanId);
            Assert.Equal(run.SpanId, Assert.Single(Spans("inference.publish", context.TraceId)).ParentSpanId);
        }
    }

    [Fact]
    public void Codec_TraceContext_RoundTripsAndAMalformedOneIsDropped()
    {
        var (job, context) = Traced(TestJobs.Job("m", _rig.Time.GetUtcNow()));

        var decoded = InferenceJobCodec.Decode(InferenceJobCodec.Encode(job));
        Assert.Equal(job.TraceParent, decoded.TraceParent);
        Assert.Equal("si=1", decoded.TraceState);
        Assert.Equal(context.TraceId, InferenceTracing.ParentOf(decoded).TraceId);

        var malformed = InferenceJobCodec.Encode(job) with { TraceParent = "00-not-a-trace-01" };
        var dropped = InferenceJobCodec.Decode(malformed);
        Assert.Null(dropped.TraceParent);
        Assert.Null(dropped.TraceState);
        Assert.Equal(default, InferenceTracing.ParentOf(dropped));
    }
}
