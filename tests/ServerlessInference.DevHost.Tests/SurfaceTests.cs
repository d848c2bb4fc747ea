using ServerlessInference.Testing.Gateway;

namespace ServerlessInference.DevHost.Tests;

/// <summary>Routes only the DevHost serves (<c>/metrics</c>); the routes every host shares are in
/// <see cref="GatewayBehaviourTests"/>.</summary>
[Collection(DevHostCollection.Name)]
public sealed class SurfaceTests(DevHostFixture fixture)
{
    [Fact]
    public async Task Metrics_ExportsRequestsBatchesAndQueueTimeInPrometheusText()
    {
        await fixture.ServingGateway.SendAsync(GatewayRequest.Post("/v2/models/mlp-bench/infer", Oip.Json(Oip.Request("input", [1, 512], Oip.Deterministic(512, 2)))));

        var text = (await fixture.ServingGateway.SendAsync(GatewayRequest.Get("/metrics"))).Text;

        Assert.Contains("inference_requests_total{", text);
        Assert.Contains("model=\"mlp-bench\"", text);
        Assert.Contains("inference_batch_size_bucket{", text);
        Assert.Contains("inference_queue_time_seconds_bucket{", text);
        Assert.Contains("inference_compute_time_seconds_bucket{", text);
        Assert.Contains("inference_queue_depth", text);
    }

    [Fact]
    public async Task Metrics_ModelLoadsAndQueueTimeByModelUnderTheirPrometheusNames()
    {
        // Whichever test ran first, a served request means the worker's pool has loaded the model.
        var infer = await fixture.ServingGateway.SendAsync(GatewayRequest.Post("/v2/models/mlp-bench/infer", Oip.Json(Oip.Request("input", [1, 512], Oip.Deterministic(512, 3)))));
        Assert.Equal(200, infer.Status);

        var text = (await fixture.ServingGateway.SendAsync(GatewayRequest.Get("/metrics"))).Text;

        Assert.Contains(text.Split('\n'), line => line.StartsWith("inference_model_loads_total{", StringComparison.Ordinal) && line.Contains("model=\"mlp-bench\"", StringComparison.Ordinal));
        // Queue time per model: the histogram carries the model label.
        Assert.Contains(text.Split('\n'), line => line.StartsWith("inference_queue_time_seconds_bucket{", StringComparison.Ordinal) && line.Contains("model=\"mlp-bench\"", StringComparison.Ordinal));
    }
}
