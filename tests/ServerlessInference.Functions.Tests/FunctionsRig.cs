using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ServerlessInference.Hosting.Providers;
using ServerlessInference.Azure;
using ServerlessInference.Functions.Hosting;
using ServerlessInference.Functions.Scaling;
using ServerlessInference.Hosting;
using ServerlessInference.Models;
using ServerlessInference.Onnx;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Redis;
using ServerlessInference.Testing.Gateway;

namespace ServerlessInference.Functions.Tests;

/// <summary>The Functions app's services, wired as Program.cs wires them, on embedded providers and a temporary model
/// store, plus in-process ONNX workers (in Azure they run in the worker image) so requests get real answers. The
/// scaler has no background timer here either: <see cref="TickAsync"/> invokes the timer function.</summary>
public sealed class FunctionsRig : IAsyncDisposable
{
    private readonly IHost _host;

    private FunctionsRig(IHost host)
    {
        _host = host;
        Gateway = new FunctionsGatewayDriver(host.Services);
    }

    public IServiceProvider Services => _host.Services;

    public IGatewayDriver Gateway { get; }

    /// <summary>Builds and starts the rig; with <paramref name="seed"/> puts the demo models into the store first.</summary>
    public static async Task<FunctionsRig> StartAsync(string root, IReadOnlyDictionary<string, string?> settings, bool seed)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Inference:ModelStore:Root"] = Path.Combine(root, "models"),
            ["Inference:WarmPool:CacheDirectory"] = Path.Combine(root, "cache-" + Guid.NewGuid().ToString("N")),
            ["Inference:Onnx:IntraOpThreads"] = "2",
        });
        builder.Configuration.AddInMemoryCollection(settings);

        // As Program.cs composes it, but with the providers these settings name and workers in this process (which the
        // app refuses), ticked only by the timer function.
        builder.Services.AddServerlessInference().AddProviders(ProviderChoice.Read(builder.Configuration));
        builder.Services.AddOrchestrator(ProviderSettings.InProcess, ScalerTicks.External);
        builder.Services.AddHostedService<ReadyOnStart>();

        var host = builder.Build();
        if (seed)
        {
            await DemoModels.SeedAsync(host.Services.GetRequiredService<IModelStore>(), default);
        }

        await host.StartAsync();
        var rig = new FunctionsRig(host);
        await rig.TickAsync();
        return rig;
    }

    /// <summary>One invocation of the scaler's timer function.</summary>
    public Task TickAsync() =>
        ActivatorUtilities.CreateInstance<ScalerFunction>(_host.Services).RunAsync(new TimerInfo(), default);

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync();
        if (_host is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync();
        }
        else
        {
            _host.Dispose();
        }
    }
}

/// <summary>One temporary root (demo models seeded once) and two rigs over it, configured as the gateway behaviour
/// suite expects.</summary>
public sealed class FunctionsFixture : IAsyncLifetime
{
    public string Root { get; } = Path.Combine(Path.GetTempPath(), "si-functions-tests", Guid.NewGuid().ToString("N"));

    public FunctionsRig Serving { get; private set; } = null!;

    public FunctionsRig Stalled { get; private set; } = null!;

    /// <summary>Keys required (<see cref="TestKeys.Settings"/>), no worker starting.</summary>
    public FunctionsRig Keyed { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Serving = await FunctionsRig.StartAsync(Root, GatewayBehaviourSuite.ServingSettings, seed: true);
        Stalled = await FunctionsRig.StartAsync(Root, GatewayBehaviourSuite.StalledSettings, seed: false);
        Keyed = await FunctionsRig.StartAsync(Root, TestKeys.Settings, seed: false);
    }

    public async Task DisposeAsync()
    {
        await Serving.DisposeAsync();
        await Stalled.DisposeAsync();
        await Keyed.DisposeAsync();
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

[CollectionDefinition(Name)]
public sealed class FunctionsCollection : ICollectionFixture<FunctionsFixture>
{
    public const string Name = "functions";
}
