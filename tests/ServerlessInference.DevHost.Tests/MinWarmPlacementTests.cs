using Microsoft.Extensions.DependencyInjection;
using ServerlessInference.Models;
using ServerlessInference.Scaling;
using ServerlessInference.Testing.Gateway;
using ServerlessInference.Workers;

namespace ServerlessInference.DevHost.Tests;

/// <summary>The DevHost's own composition places a <c>min_warm</c> model with no traffic at all: the scaler starts a
/// worker for it and the worker loads it from its heartbeat, as the published placement plan orders.</summary>
public sealed class MinWarmPlacementTests : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "si-devhost-tests", Guid.NewGuid().ToString("N"));
    private DevHostFactory _host = null!;
    private HttpClientGatewayDriver _gateway = null!;
    private HttpClient _client = null!;

    public Task InitializeAsync()
    {
        _host = new DevHostFactory(_root, new Dictionary<string, string?>
        {
            ["Inference:Scaling:MinReplicas"] = "0",
            ["Inference:Scaling:MaxReplicas"] = "2",
        });
        _client = _host.CreateClient();
        _gateway = new HttpClientGatewayDriver(_client);
        return Task.CompletedTask;
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

    [Fact]
    public async Task MinWarmModel_NoTraffic_AWorkerStartsAndHoldsItWarm()
    {
        await EventuallyAsync(async () => (await _gateway.SendAsync(GatewayRequest.Get("/v2/health/ready"))).Status == 200, "the DevHost to become ready");
        var registry = _host.Services.GetRequiredService<IWorkerRegistry>();
        Assert.Empty(await registry.ListAsync(default));

        // A copy of a demo model whose manifest asks for one warm copy.
        var store = _host.Services.GetRequiredService<IModelStore>();
        var mlp = (await store.GetManifestAsync("mlp-bench", null, default))!;
        var folder = Path.Combine(_root, "models", "always-warm", "1");
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(_root, "models", "mlp-bench", mlp.Version, mlp.File), Path.Combine(folder, mlp.File));
        await File.WriteAllBytesAsync(Path.Combine(folder, "manifest.json"),
            ModelManifestJson.Serialize(mlp with { Name = "always-warm", Version = "1", MinWarm = 1 }));

        // The model list refreshes within 10 s; then a tick starts a worker, the next orders the model onto it.
        await EventuallyAsync(
            async () => (await registry.ListAsync(default)).Any(w => w.WarmModels.Any(m => m.Model == "always-warm")),
            "a worker to hold the min_warm model warm");

        var decisions = await _host.Services.GetRequiredService<IScalingDecisionLog>().ReadRecentAsync(50, default);
        Assert.Contains(decisions, d => d.CurrentReplicas == 0 && d.DesiredReplicas == 1 && d.Reason.Contains("min_warm", StringComparison.Ordinal));
        Assert.DoesNotContain(await registry.ListAsync(default), w => w.JobsCompleted > 0);
    }

    private static async Task EventuallyAsync(Func<Task<bool>> condition, string what)
    {
        var giveUp = DateTime.UtcNow.AddSeconds(60);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < giveUp, $"waited 60 s for {what}");
            await Task.Delay(100);
        }
    }
}
