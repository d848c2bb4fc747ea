using System.Collections.Concurrent;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Testing.Services;

namespace ServerlessInference.IntegrationTests;

/// <summary>What the suite shares: Azurite, a redis-server, and a platform on them (gateway + scaler here, two worker
/// processes) with the demo models seeded; plus reference outputs from direct ONNX Runtime runs.</summary>
/// <remarks>Tests that disturb Redis itself start a Redis and a platform of their own (see <see cref="RedisOutageTests"/>);
/// tests that kill a worker leave the platform to replace it, and every test waits for its workers first.</remarks>
public sealed class PlatformFixture : IAsyncLifetime
{
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(90);

    private readonly ConcurrentDictionary<(string Model, int Seed), float[]> _expected = new();
    private readonly Lazy<InferenceSession> _mlp = new(() => new InferenceSession(MlpBenchModel.Build(), ReferenceOptions()));
    private readonly Lazy<InferenceSession> _resnet = new(() => new InferenceSession(ResNet18Model.FindFile(), ReferenceOptions()));
    private RedisServer? _redis;

    public AzuriteServer Azurite { get; } = new();

    public RedisServer Redis => _redis ?? throw new InvalidOperationException("not started");

    /// <summary>Gateway + scaler in this process, MinReplicas = MaxReplicas = 2 worker processes.</summary>
    public PlatformHost Host { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var redis = RedisServer.StartAsync();
        var azurite = Azurite.InitializeAsync();
        try
        {
            await Task.WhenAll(redis, azurite);
        }
        finally
        {
            // Kept even when Azurite failed, so DisposeAsync stops it.
            _redis = redis.IsCompletedSuccessfully ? redis.Result : null;
        }

        Host = new PlatformHost(Redis.ConnectionString, Azurite.ConnectionString, replicas: 2);
        await Host.StartAsync(StartTimeout);
    }

    public async Task DisposeAsync()
    {
        try
        {
            if (Host is not null)
            {
                await Host.DisposeAsync();
            }
        }
        finally
        {
            if (_mlp.IsValueCreated)
            {
                _mlp.Value.Dispose();
            }

            if (_resnet.IsValueCreated)
            {
                _resnet.Value.Dispose();
            }

            if (_redis is not null)
            {
                await _redis.DisposeAsync();
            }

            await Azurite.DisposeAsync();
        }
    }

    public static float[] MlpInput(int seed) => Oip.Deterministic(512, seed);

    public static float[] ResNetInput(int seed) => Oip.Deterministic(3 * 224 * 224, seed);

    /// <summary>mlp-bench's output [1,16] for <see cref="MlpInput"/>(seed), run directly with ONNX Runtime.</summary>
    public float[] ExpectedMlp(int seed) =>
        _expected.GetOrAdd((MlpBenchModel.Name, seed), _ => Oip.RunDirect(_mlp.Value, Oip.MlpInput, [1, 512], MlpInput(seed)));

    /// <summary>resnet18's output [1,512,1,1] for <see cref="ResNetInput"/>(seed), run directly with ONNX Runtime.</summary>
    public float[] ExpectedResNet(int seed) =>
        _expected.GetOrAdd((ResNet18Model.Name, seed), _ => Oip.RunDirect(_resnet.Value, Oip.ResNetInput, [1, 3, 224, 224], ResNetInput(seed)));

    private static SessionOptions ReferenceOptions() => new() { IntraOpNumThreads = 1 };
}

[CollectionDefinition(Name)]
public sealed class PlatformCollection : ICollectionFixture<PlatformFixture>
{
    public const string Name = "platform";
}
