using Microsoft.Extensions.DependencyInjection;
using ServerlessInference.Models;
using ServerlessInference.Testing.Gateway;

namespace ServerlessInference.DevHost.Tests;

/// <summary>A model store holding one malformed manifest and one manifest whose weights are gone, behind a DevHost of
/// its own (the shared fixture's store stays clean).</summary>
public sealed class ModelListTests : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "si-devhost-tests", Guid.NewGuid().ToString("N"));
    private DevHostFactory _host = null!;
    private HttpClientGatewayDriver _gateway = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        // Malformed from the start: the host seeds its demo models beside it and must still become ready.
        var broken = Path.Combine(_root, "models", "broken", "1");
        Directory.CreateDirectory(broken);
        await File.WriteAllTextAsync(Path.Combine(broken, "manifest.json"), "{ \"name\": \"broken\", \"version\": ");
        _host = new DevHostFactory(_root, GatewayBehaviourSuite.ServingSettings);
        _client = _host.CreateClient();
        _gateway = new HttpClientGatewayDriver(_client);
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

    private async Task BreakTheStoreAsync()
    {
        // Wait out the seeding (503 until ready): a store that fails its listing never gets there.
        var giveUp = DateTime.UtcNow.AddSeconds(60);
        while ((await _gateway.SendAsync(GatewayRequest.Get("/v2/health/ready"))).Status != 200)
        {
            Assert.True(DateTime.UtcNow < giveUp, "the DevHost did not become ready");
            await Task.Delay(50);
        }

        var models = Path.Combine(_root, "models");
        // A well-formed manifest whose weights file is missing: the store's error names the local path.
        var store = _host.Services.GetRequiredService<IModelStore>();
        var mlp = (await store.GetManifestAsync("mlp-bench", null, default))!;
        Directory.CreateDirectory(Path.Combine(models, "ghost", "1"));
        await File.WriteAllBytesAsync(Path.Combine(models, "ghost", "1", "manifest.json"), ModelManifestJson.Serialize(mlp with { Name = "ghost", Version = "1" }));
    }

    [Fact]
    public async Task MalformedManifest_IsReportedInStatusAndSkipped_OtherModelsServe()
    {
        await BreakTheStoreAsync();

        var ready = await _gateway.SendAsync(GatewayRequest.Get("/v2/health/ready"));
        var metadata = await _gateway.SendAsync(GatewayRequest.Get("/v2/models/mlp-bench"));
        var broken = await _gateway.SendAsync(GatewayRequest.Get("/v2/models/broken"));
        var status = await _gateway.SendAsync(GatewayRequest.Get("/status"));

        Assert.Equal(200, ready.Status);
        Assert.Equal(200, metadata.Status);
        Assert.Equal("mlp-bench", metadata.Json().GetProperty("name").GetString());
        Assert.Equal(500, broken.Status);
        Assert.Contains("manifest is invalid", broken.Error());
        Assert.DoesNotContain(_root, broken.Text);
        Assert.Equal(200, status.Status);
        var invalid = Assert.Single(status.Json().GetProperty("invalid_models").EnumerateArray());
        Assert.Equal("broken", invalid.GetProperty("model").GetString());
        Assert.Equal("1", invalid.GetProperty("version").GetString());
        Assert.StartsWith("invalid model manifest", invalid.GetProperty("error").GetString());
        Assert.DoesNotContain(_root, status.Text);
    }

    [Fact]
    public async Task Infer_WeightsMissingFromTheStore_TheErrorCarriesNoLocalPath()
    {
        await BreakTheStoreAsync();

        var response = await _gateway.SendAsync(GatewayRequest.Post("/v2/models/ghost/infer", Oip.Json(Oip.Request("input", [1, 512], Oip.Deterministic(512, 2)))));

        Assert.Equal(500, response.Status);
        Assert.Contains("missing from the model store", response.Error());
        Assert.DoesNotContain(_root, response.Text);
        Assert.DoesNotContain("/models/ghost/", response.Text);
    }
}
