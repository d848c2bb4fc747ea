using System.Net;

namespace ServerlessInference.DevHost.Tests;

[Collection(DevHostCollection.Name)]
public sealed class SurfaceTests(DevHostFixture fixture)
{
    [Fact]
    public async Task Health_LiveAndReady_Answer200()
    {
        using var client = fixture.Host.CreateClient();

        using var live = await client.GetAsync("/v2/health/live");
        using var ready = await client.GetAsync("/v2/health/ready");

        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.True((await Oip.ReadJsonAsync(ready)).GetProperty("ready").GetBoolean());
    }

    [Fact]
    public async Task ServerMetadata_ListsTheBinaryExtension()
    {
        using var client = fixture.Host.CreateClient();

        var json = await Oip.ReadJsonAsync(await client.GetAsync("/v2"));

        Assert.Equal("serverless-inference", json.GetProperty("name").GetString());
        Assert.Contains("binary_tensor_data", json.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public async Task ModelMetadata_DescribesTheDemoModels()
    {
        using var client = fixture.Host.CreateClient();

        var resnet = await Oip.ReadJsonAsync(await client.GetAsync("/v2/models/resnet18"));
        var mlp = await Oip.ReadJsonAsync(await client.GetAsync("/v2/models/mlp-bench/versions/1"));
        using var ready = await client.GetAsync("/v2/models/mlp-bench/ready");
        using var missing = await client.GetAsync("/v2/models/nope");

        Assert.Equal("Input247", resnet.GetProperty("inputs")[0].GetProperty("name").GetString());
        Assert.Equal([1L, 3, 224, 224], resnet.GetProperty("inputs")[0].GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal("FP32", mlp.GetProperty("inputs")[0].GetProperty("datatype").GetString());
        Assert.Equal([-1L, 512], mlp.GetProperty("inputs")[0].GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal(["1"], mlp.GetProperty("versions").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
    }

    [Fact]
    public async Task Status_ShowsQueueWorkersProviderAndScaling()
    {
        using var client = fixture.Host.CreateClient();
        using (await client.PostAsync("/v2/models/mlp-bench/infer", Oip.Json(Oip.Request("input", [1, 512], Oip.Deterministic(512, 1)))))
        {
        }

        var status = await Oip.ReadJsonAsync(await client.GetAsync("/status"));

        Assert.True(status.GetProperty("queue").TryGetProperty("queued", out _));
        Assert.Contains("CPU", status.GetProperty("execution_providers").EnumerateArray().Select(e => e.GetString()));
        Assert.NotEqual(0, status.GetProperty("workers").GetArrayLength());
        Assert.Contains("mlp-bench", status.GetProperty("warm_pool").GetProperty("models").EnumerateArray().Select(m => m.GetProperty("model").GetString()));
        Assert.NotEqual(0, status.GetProperty("scaling_decisions").GetArrayLength());
    }

    [Fact]
    public async Task Metrics_ExportsRequestsBatchesAndQueueTimeInPrometheusText()
    {
        using var client = fixture.Host.CreateClient();
        using (await client.PostAsync("/v2/models/mlp-bench/infer", Oip.Json(Oip.Request("input", [1, 512], Oip.Deterministic(512, 2)))))
        {
        }

        var text = await client.GetStringAsync("/metrics");

        Assert.Contains("inference_requests_total{", text);
        Assert.Contains("model=\"mlp-bench\"", text);
        Assert.Contains("inference_batch_size_bucket{", text);
        Assert.Contains("inference_queue_time_seconds_bucket{", text);
        Assert.Contains("inference_compute_time_seconds_bucket{", text);
        Assert.Contains("inference_queue_depth", text);
    }
}
