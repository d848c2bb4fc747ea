using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Trace;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Telemetry;

namespace ServerlessInference.IntegrationTests;

/// <summary>One request is one trace across processes: the gateway (this process, spans kept by an in-memory exporter)
/// and a child-process worker (spans sent over OTLP/HTTP to a receiver in this test) share its trace id.</summary>
[Collection(PlatformCollection.Name)]
[Trait("Category", "Integration")]
public sealed class TraceTests(PlatformFixture fixture)
{
    [Fact]
    public async Task Infer_ServicesProfile_GatewayAndWorkerSpansShareOneTraceId()
    {
        await using var otlp = await OtlpReceiver.StartAsync();
        var gatewaySpans = new LockedList();
        await using var host = new PlatformHost(fixture.Redis.ConnectionString, fixture.Azurite.ConnectionString, replicas: 1,
            new Dictionary<string, string?>
            {
                ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp.Endpoint,
                ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
                ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
            },
            services => services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddInMemoryExporter(gatewaySpans)));
        await host.StartAsync(PlatformFixture.StartTimeout);
        using var client = host.CreateClient();
        client.Timeout = TimeSpan.FromSeconds(60);

        using (var response = await client.SendAsync(Oip.Infer(MlpBenchModel.Name, Oip.MlpRequest(PlatformFixture.MlpInput(5), "traced"))))
        {
            Oip.AssertClose(fixture.ExpectedMlp(5), (await Oip.ReadResponseAsync(response)).Outputs[0].AsSpan<float>());
        }

        // The gateway's request span and, under it, its enqueue span (the in-memory exporter gets them as they end).
        var enqueue = await EventuallyAsync(() => Snapshot(gatewaySpans).SingleOrDefault(s => s.OperationName == "inference.enqueue"), "the gateway's enqueue span");
        var request = Snapshot(gatewaySpans).Single(s => s.SpanId == enqueue.ParentSpanId);
        Assert.Equal(ActivityKind.Server, request.Kind);
        var traceId = enqueue.TraceId.ToHexString();

        // The worker process's spans in the same trace: its batch under the enqueue span, the job's run, the publish.
        // They end innermost first (publish, job, batch) and the worker's exporter may send them in separate requests.
        string[] expected = ["inference.batch", "inference.job", "inference.publish"];
        var worker = await EventuallyAsync(() =>
        {
            var spans = otlp.Spans.Where(s => s.TraceId == traceId && s.Service == "serverless-inference-worker").ToList();
            return expected.All(name => spans.Any(s => s.Name == name)) ? spans : null;
        }, $"worker spans of trace {traceId} over OTLP (got: {string.Join(", ", otlp.Spans.Select(s => $"{s.Service}/{s.Name}/{s.TraceId}"))})");
        var batch = Assert.Single(worker, s => s.Name == "inference.batch");
        Assert.Equal(enqueue.SpanId.ToHexString(), batch.ParentSpanId);
        var job = Assert.Single(worker, s => s.Name == "inference.job");
        Assert.Equal(enqueue.SpanId.ToHexString(), job.ParentSpanId);
        Assert.Equal(job.SpanId, Assert.Single(worker, s => s.Name == "inference.publish").ParentSpanId);
        Assert.Equal(InferenceTracing.SourceName, enqueue.Source.Name);
    }

    private static List<Activity> Snapshot(LockedList spans)
    {
        lock (spans.Lock)
        {
            return [.. spans];
        }
    }

    /// <summary>The exporter adds on the threads that end spans while the test reads.</summary>
    private sealed class LockedList : System.Collections.ObjectModel.Collection<Activity>
    {
        public Lock Lock { get; } = new();

        protected override void InsertItem(int index, Activity item)
        {
            lock (Lock)
            {
                base.InsertItem(index, item);
            }
        }
    }

    private static async Task<T> EventuallyAsync<T>(Func<T?> read, string what) where T : class
    {
        var giveUp = Stopwatch.StartNew();
        while (true)
        {
            if (read() is { } value)
            {
                return value;
            }

            Assert.True(giveUp.Elapsed < TimeSpan.FromSeconds(30), $"no {what} within 30 s");
            await Task.Delay(100);
        }
    }
}
