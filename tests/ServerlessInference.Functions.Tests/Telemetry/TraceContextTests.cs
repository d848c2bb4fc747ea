using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using ServerlessInference.Jobs;
using ServerlessInference.Testing.Gateway;

namespace ServerlessInference.Functions.Tests.Telemetry;

/// <summary>The Functions isolated worker runs a function outside the ASP.NET Core request's execution context, so no
/// request activity is ambient there: the job must still carry the caller's W3C trace context, read from its headers.</summary>
[Collection(FunctionsCollection.Name)]
public sealed class TraceContextTests(FunctionsFixture fixture)
{
    private const string TraceId = "4bf92f3577b34da6a3ce929d0e0e4736";

    private static GatewayContent Body() => Oip.Json(Oip.Request("input", [1, 512], Oip.Deterministic(512, seed: 11)));

    [Fact]
    public async Task Infer_ClientTraceParent_QueuedJobCarriesTheClientsTrace()
    {
        // No worker ever starts: the job stays on the queue for the test to read.
        await using var rig = await FunctionsRig.StartAsync(fixture.Root, new Dictionary<string, string?> { ["Inference:Scaling:ActivationThreshold"] = "1000" }, seed: false);
        Assert.Null(Activity.Current);

        var accepted = await rig.Gateway.SendAsync(GatewayRequest.Post("/v2/models/mlp-bench/infer", Body(),
            ("Prefer", "respond-async"), ("traceparent", $"00-{TraceId}-00f067aa0ba902b7-01"), ("tracestate", "vendor=opaque")));

        Assert.Equal(202, accepted.Status);
        var lease = Assert.Single(await rig.Services.GetRequiredService<IJobQueue>().ReceiveAsync(1, TimeSpan.FromSeconds(5), default));
        Assert.Equal(accepted.Headers["X-Job-Id"], lease.Job.Id);
        Assert.True(ActivityContext.TryParse(lease.Job.TraceParent, lease.Job.TraceState, out var carried), $"traceparent '{lease.Job.TraceParent}'");
        Assert.Equal(TraceId, carried.TraceId.ToHexString());
        Assert.True(carried.TraceFlags.HasFlag(ActivityTraceFlags.Recorded));
        Assert.Equal("vendor=opaque", lease.Job.TraceState);
        await lease.CompleteAsync(default);
    }

    [Fact]
    public async Task Infer_MalformedTraceParent_QueuesTheJobWithoutAContext()
    {
        await using var rig = await FunctionsRig.StartAsync(fixture.Root, new Dictionary<string, string?> { ["Inference:Scaling:ActivationThreshold"] = "1000" }, seed: false);

        var accepted = await rig.Gateway.SendAsync(GatewayRequest.Post("/v2/models/mlp-bench/infer", Body(),
            ("Prefer", "respond-async"), ("traceparent", "00-not-a-trace-01")));

        Assert.Equal(202, accepted.Status);
        var lease = Assert.Single(await rig.Services.GetRequiredService<IJobQueue>().ReceiveAsync(1, TimeSpan.FromSeconds(5), default));
        // A bad header never fails a request; nothing in this test process listens to the platform's spans, so there is
        // no enqueue span to carry either.
        Assert.Null(lease.Job.TraceParent);

        await lease.CompleteAsync(default);
    }
}
