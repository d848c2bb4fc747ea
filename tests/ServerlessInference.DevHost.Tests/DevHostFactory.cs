using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using ServerlessInference.Models;
using ServerlessInference.Testing.Gateway;

namespace ServerlessInference.DevHost.Tests;

/// <summary>The DevHost in process on a temporary model store and weights cache.</summary>
public sealed class DevHostFactory(string root, IReadOnlyDictionary<string, string?> settings, ILoggerProvider? logs = null) : WebApplicationFactory<Program>
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        if (logs is not null)
        {
            builder.ConfigureLogging(l => l.AddProvider(logs));
        }

        builder.UseSetting("Inference:ModelStore:Root", Path.Combine(root, "models"));
        builder.UseSetting("Inference:WarmPool:CacheDirectory", Path.Combine(root, "cache-" + Guid.NewGuid().ToString("N")));
        builder.UseSetting("Inference:Onnx:IntraOpThreads", "2");
        foreach (var (key, value) in settings)
        {
            builder.UseSetting(key, value);
        }

        builder.ConfigureTestServices(services =>
        {
            // Fault injection: a request whose first input element is -999 makes the engine throw (a poison job).
            // A host whose workers run elsewhere (services profile) has no engine to wrap.
            var engine = services.SingleOrDefault(d => d.ServiceType == typeof(IInferenceEngine));
            if (engine is null)
            {
                return;
            }

            services.Remove(engine);
            services.AddSingleton(sp => new PoisonEngine((IInferenceEngine)(engine.ImplementationFactory?.Invoke(sp)
                ?? ActivatorUtilities.CreateInstance(sp, engine.ImplementationType!))));
            services.AddSingleton<IInferenceEngine>(sp => sp.GetRequiredService<PoisonEngine>());
        });
    }
}

/// <summary>Wraps the real engine: batches holding a request whose first element is <see cref="Poison"/> throw; a request
/// whose first element is <see cref="Rejected"/> fails alone as the engine's rejection of the request.</summary>
public sealed class PoisonEngine(IInferenceEngine inner) : IInferenceEngine
{
    public const float Poison = -999f;

    public const float Rejected = -998f;

    public string ExecutionProvider => inner.ExecutionProvider;

    public async ValueTask<ILoadedModel> LoadAsync(ModelManifest manifest, string weightsPath, CancellationToken cancellationToken)
    {
        var loaded = await inner.LoadAsync(manifest, weightsPath, cancellationToken);

        // Generation models keep their own type: the worker runs them through ITextGenerationModel.
        return loaded is Generation.ITextGenerationModel ? loaded : new PoisonModel(loaded);
    }

    private sealed class PoisonModel(ILoadedModel inner) : ILoadedModel
    {
        public ModelManifest Manifest => inner.Manifest;

        public long SizeBytes => inner.SizeBytes;

        public async ValueTask<IReadOnlyList<BatchItemResult>> RunBatchAsync(IReadOnlyList<InferenceRequest> requests, CancellationToken cancellationToken)
        {
            if (requests.Any(r => First(r) == Poison))
            {
                throw new InvalidOperationException("injected engine fault");
            }

            var results = (await inner.RunBatchAsync(requests, cancellationToken)).ToArray();
            for (var i = 0; i < requests.Count; i++)
            {
                if (First(requests[i]) == Rejected)
                {
                    results[i] = BatchItemResult.Failure("injected rejection: the engine cannot take this input", InferenceError.BadRequest);
                }
            }

            return results;
        }

        private static float? First(InferenceRequest request) =>
            request.Inputs[0].Datatype == TensorDatatype.Fp32 && request.Inputs[0].Data.Length >= sizeof(float) ? request.Inputs[0].AsSpan<float>()[0] : null;

        public void Dispose() => inner.Dispose();
    }
}

/// <summary>One temporary root (demo models seeded once) and two hosts over it, configured as the gateway behaviour
/// suite expects: a serving one, and one whose workers never start (jobs stay queued) for queue-full and cancel cases.</summary>
public sealed class DevHostFixture : IAsyncLifetime
{
    private HttpClient _servingClient = null!;
    private HttpClient _stalledClient = null!;
    private HttpClient _keyedClient = null!;

    public string Root { get; } = Path.Combine(Path.GetTempPath(), "si-devhost-tests", Guid.NewGuid().ToString("N"));

    public DevHostFactory Host { get; private set; } = null!;

    public DevHostFactory Stalled { get; private set; } = null!;

    /// <summary><see cref="Host"/> over HTTP.</summary>
    public IGatewayDriver ServingGateway { get; private set; } = null!;

    /// <summary><see cref="Stalled"/> over HTTP.</summary>
    public IGatewayDriver StalledGateway { get; private set; } = null!;

    /// <summary>A host with keys (<see cref="TestKeys.Settings"/>), no worker starting, over HTTP.</summary>
    public DevHostFactory Keyed { get; private set; } = null!;

    public IGatewayDriver KeyedGateway { get; private set; } = null!;

    public Task InitializeAsync()
    {
        Host = new DevHostFactory(Root, GatewayBehaviourSuite.ServingSettings);
        _ = Host.Server; // start: seeds the demo models
        Stalled = new DevHostFactory(Root, GatewayBehaviourSuite.StalledSettings);
        _ = Stalled.Server;
        Keyed = new DevHostFactory(Root, TestKeys.Settings);
        _ = Keyed.Server;
        _servingClient = Host.CreateClient();
        _stalledClient = Stalled.CreateClient();
        _keyedClient = Keyed.CreateClient();
        ServingGateway = new HttpClientGatewayDriver(_servingClient);
        StalledGateway = new HttpClientGatewayDriver(_stalledClient);
        KeyedGateway = new HttpClientGatewayDriver(_keyedClient);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _servingClient.Dispose();
        _stalledClient.Dispose();
        _keyedClient.Dispose();
        await Host.DisposeAsync();
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
public sealed class DevHostCollection : ICollectionFixture<DevHostFixture>
{
    public const string Name = "devhost";
}
