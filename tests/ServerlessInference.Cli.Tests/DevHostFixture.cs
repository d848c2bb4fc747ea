using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using ServerlessInference.Embedded;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Testing.Gateway;

namespace ServerlessInference.Cli.Tests;

/// <summary>A real DevHost (embedded providers, in-process workers) on a free loopback port over a temporary folder
/// model store that holds only <c>tiny-lm</c>; tests push their own tensor models with <c>si models push</c>.</summary>
public sealed class DevHostFixture : IAsyncLifetime
{
    private Host? _host;
    private Host? _keyed;

    public string Root { get; } = Path.Combine(Path.GetTempPath(), "si-cli-tests", Guid.NewGuid().ToString("N"));

    public string Store => Path.Combine(Root, "models");

    public string Url { get; private set; } = "";

    /// <summary>A second DevHost over the same store with API keys (<see cref="TestKeys"/>) whose workers never start,
    /// so jobs stay queued.</summary>
    public string KeyedUrl { get; private set; } = "";

    /// <summary>A small dynamic-batch MLP (4 → 8 → 3) as an .onnx file.</summary>
    public string MlpFile => Path.Combine(Root, "mlp.onnx");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Root);
        await File.WriteAllBytesAsync(MlpFile, MlpBenchModel.Build([4, 8, 3], seed: 7));
        var store = new FolderModelStore(Store);
        using (var weights = new MemoryStream(DecoderLmModel.Build(DecoderLmModel.TinyLm)))
        {
            await store.UploadAsync(DecoderLmModel.Manifest(DecoderLmModel.TinyLm), weights, default);
        }

        (_host, Url) = Start(new Dictionary<string, string?>());
        (_keyed, KeyedUrl) = Start(TestKeys.Settings);
    }

    private (Host Host, string Url) Start(IReadOnlyDictionary<string, string?> extra)
    {
        var settings = new Dictionary<string, string?>
        {
            ["urls"] = $"http://127.0.0.1:{FreePort()}",
            ["Inference:DemoModels:Seed"] = "false",
            ["Inference:ModelStore:Root"] = Store,
            ["Inference:WarmPool:CacheDirectory"] = Path.Combine(Root, "cache"),
            ["Inference:Onnx:IntraOpThreads"] = "1",
            // Warm models reach /status with the next heartbeat.
            ["Inference:Worker:HeartbeatInterval"] = "00:00:00.200",
        };
        foreach (var (key, value) in extra)
        {
            settings[key] = value;
        }

        var host = new Host(settings);
        host.UseKestrel();
        host.StartServer();
        var addresses = host.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        return (host, addresses.Single(a => a.StartsWith("http://127.0.0.1:", StringComparison.Ordinal)));
    }

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        if (_keyed is not null)
        {
            await _keyed.DisposeAsync();
        }

        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private sealed class Host(IReadOnlyDictionary<string, string?> settings) : WebApplicationFactory<global::Program>
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            foreach (var (key, value) in settings)
            {
                builder.UseSetting(key, value);
            }
        }
    }
}

[CollectionDefinition(Name)]
public sealed class DevHostCollection : ICollectionFixture<DevHostFixture>
{
    public const string Name = "devhost";
}
