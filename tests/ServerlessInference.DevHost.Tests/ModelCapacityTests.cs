using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ServerlessInference.Models;
using ServerlessInference.Testing.Gateway;

namespace ServerlessInference.DevHost.Tests;

/// <summary>A manifest's <c>max_queued</c> through the whole gateway: a model at its bound answers 429 for itself alone,
/// on the OIP and the OpenAI routes, while other models still accept; <c>/status</c> shows the per-model settings. A
/// DevHost of its own whose workers never start, so jobs stay queued.</summary>
public sealed class ModelCapacityTests : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "si-devhost-tests", Guid.NewGuid().ToString("N"));
    private DevHostFactory _host = null!;
    private HttpClient _client = null!;
    private HttpClientGatewayDriver _gateway = null!;

    public async Task InitializeAsync()
    {
        _host = new DevHostFactory(_root, new Dictionary<string, string?>
        {
            ["Inference:Scaling:ActivationThreshold"] = "1000",
            ["Inference:Queue:RetryAfterSeconds"] = "4",
        });
        _client = _host.CreateClient();
        _gateway = new HttpClientGatewayDriver(_client);

        // Wait out the seeding of the demo models (503 until ready), then add capped copies of two of them.
        var giveUp = DateTime.UtcNow.AddSeconds(60);
        while ((await _gateway.SendAsync(GatewayRequest.Get("/v2/health/ready"))).Status != 200)
        {
            Assert.True(DateTime.UtcNow < giveUp, "the DevHost did not become ready");
            await Task.Delay(50);
        }

        var store = _host.Services.GetRequiredService<IModelStore>();
        await CopyAsync(store, "mlp-bench", m => m with { Name = "capped", Version = "1", MaxQueued = 2, Weight = 3, MinWarm = 1, MaxWorkers = 2 });
        await CopyAsync(store, "tiny-lm", m => m with { Name = "capped-lm", Version = "1", MaxQueued = 1 });
    }

    private async Task CopyAsync(IModelStore store, string model, Func<ModelManifest, ModelManifest> change)
    {
        var manifest = (await store.GetManifestAsync(model, null, default))!;
        var from = Path.Combine(_root, "models", model, manifest.Version);
        var copy = change(manifest);
        var to = Path.Combine(_root, "models", copy.Name, copy.Version);
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from))
        {
            if (Path.GetFileName(file) != "manifest.json")
            {
                File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
            }
        }

        foreach (var dir in Directory.EnumerateDirectories(from))
        {
            CopyTree(dir, Path.Combine(to, Path.GetFileName(dir)));
        }

        await File.WriteAllBytesAsync(Path.Combine(to, "manifest.json"), ModelManifestJson.Serialize(copy));
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }

        foreach (var dir in Directory.EnumerateDirectories(from))
        {
            CopyTree(dir, Path.Combine(to, Path.GetFileName(dir)));
        }
    }

    public async Task DisposeAsync()
    {
        _client.Dispose();
        await _host.DisposeAsync();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private Task<GatewayResponse> InferAsync(string model, int seed) => _gateway.SendAsync(GatewayRequest.Post(
        $"/v2/models/{model}/infer", Oip.Json(Oip.Request("input", [1, 512], Oip.Deterministic(512, seed))), ("Prefer", "respond-async")));

    private Task<GatewayResponse> CompleteAsync(string model) => _gateway.SendAsync(GatewayRequest.Post(
        "/v1/completions",
        new GatewayContent(JsonSerializer.SerializeToUtf8Bytes(new { model, prompt = "the cat", max_tokens = 4, temperature = 0 }), "application/json"),
        ("Prefer", "respond-async")));

    [Fact]
    public async Task Infer_ModelAtItsMaxQueued_Answers429ForThatModelAlone()
    {
        Assert.Equal(202, (await InferAsync("capped", 1)).Status);
        Assert.Equal(202, (await InferAsync("capped", 2)).Status);

        var refused = await InferAsync("capped", 3);
        var other = await InferAsync("mlp-bench", 4);

        Assert.Equal(429, refused.Status);
        Assert.Equal("4", refused.Header("Retry-After"));
        Assert.Contains("'capped'", refused.Error());
        Assert.Contains("max_queued", refused.Error());
        Assert.Equal(202, other.Status);
    }

    [Fact]
    public async Task Completions_ModelAtItsMaxQueued_Answers429InOpenAiShapeForThatModelAlone()
    {
        Assert.Equal(202, (await CompleteAsync("capped-lm")).Status);

        var refused = await CompleteAsync("capped-lm");
        var other = await CompleteAsync("tiny-lm");

        Assert.Equal(429, refused.Status);
        Assert.Equal("4", refused.Header("Retry-After"));
        var error = refused.Json().GetProperty("error");
        Assert.Contains("'capped-lm'", error.GetProperty("message").GetString());
        Assert.Equal("rate_limit_error", error.GetProperty("type").GetString());
        Assert.Equal(202, other.Status);
    }

    [Fact]
    public async Task Status_Models_ShowEachModelsManifestSettings()
    {
        // A lookup of a model the cached list lacks refreshes the list (ModelCatalog), as a first request would.
        Assert.Equal(200, (await _gateway.SendAsync(GatewayRequest.Get("/v2/models/capped"))).Status);
        var status = await _gateway.SendAsync(GatewayRequest.Get("/status"));

        Assert.Equal(200, status.Status);
        var models = status.Json().GetProperty("models");
        var capped = models.EnumerateArray().Single(m => m.GetProperty("model").GetString() == "capped");
        Assert.Equal(3, capped.GetProperty("weight").GetDouble());
        Assert.Equal(2, capped.GetProperty("max_queued").GetInt32());
        Assert.Equal(1, capped.GetProperty("min_warm").GetInt32());
        Assert.Equal(2, capped.GetProperty("max_workers").GetInt32());
        var plain = models.EnumerateArray().Single(m => m.GetProperty("model").GetString() == "mlp-bench");
        Assert.Equal(1, plain.GetProperty("weight").GetDouble());
        Assert.Equal(JsonValueKind.Null, plain.GetProperty("max_queued").ValueKind);
        Assert.Equal(0, plain.GetProperty("min_warm").GetInt32());
        Assert.Equal(JsonValueKind.Null, plain.GetProperty("max_workers").ValueKind);
        Assert.Empty(plain.GetProperty("warm_workers").EnumerateArray());
    }
}
