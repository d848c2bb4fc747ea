using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Generation;
using ServerlessInference.Models;
using ServerlessInference.Tests.TestDoubles;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Models;

/// <summary>The worker's view of the prompt prefixes its loaded models hold, as affinity keys.</summary>
public sealed class WarmPoolPrefixKeysTests : IDisposable
{
    private readonly TempModelStore _models = new();

    [Fact]
    public async Task HeldPrefixAffinityKeys_NamesEachHeldPrefixAsModelHashPrefix()
    {
        var lm = _models.Add("lm");
        var tensors = _models.Add("tensors");
        var engine = new PrefixEngine { Keys = { ["lm"] = ["0123456789abcdef", "fedcba9876543210"] } };
        using var pool = new WarmPool(
            engine,
            new WeightsCache(_models.Store, _models.CacheDirectory, NullLogger<WeightsCache>.Instance),
            Options.Create(new WarmPoolOptions { BudgetBytes = 1 << 20, CacheDirectory = _models.CacheDirectory }),
            new FakeTimeProvider(),
            NullLogger<WarmPool>.Instance);
        Assert.Empty(pool.HeldPrefixAffinityKeys());

        (await pool.AcquireAsync(lm, default)).Dispose();
        (await pool.AcquireAsync(tensors, default)).Dispose();

        Assert.Equal(["lm#0123456789abcdef", "lm#fedcba9876543210"], pool.HeldPrefixAffinityKeys().Order());
    }

    [Fact]
    public async Task WorkerPreference_ListsTheHeldPrefixesBesideTheModels()
    {
        // A worker's preference names the model#prefix keys its prefix cache holds, so jobs sharing that prompt prefix
        // come to it first (prefix routing).
        var lm = _models.Add("lm");
        var time = new FakeTimeProvider();
        var engine = new PrefixEngine { Keys = { ["lm"] = ["0123456789abcdef"] } };
        using var pool = new WarmPool(
            engine,
            new WeightsCache(_models.Store, _models.CacheDirectory, NullLogger<WeightsCache>.Instance),
            Options.Create(new WarmPoolOptions { BudgetBytes = 1 << 20, CacheDirectory = _models.CacheDirectory }),
            time,
            NullLogger<WarmPool>.Instance);
        (await pool.AcquireAsync(lm, default)).Dispose();
        var affinity = new WorkerAffinity(
            "me", pool, new ModelCatalog(_models.Store, time), new InMemoryWorkerRegistry(time, TimeSpan.FromDays(1)),
            new WorkerOptions(), time, NullLogger.Instance);

        var preference = await affinity.PreferenceAsync(default);

        Assert.Equal(["lm", "lm#0123456789abcdef"], preference.Warm.Order());
    }

    public void Dispose() => _models.Dispose();

    private sealed class PrefixEngine : IInferenceEngine
    {
        public Dictionary<string, string[]> Keys { get; } = [];

        public string ExecutionProvider => "FAKE";

        public ValueTask<ILoadedModel> LoadAsync(ModelManifest manifest, string weightsPath, CancellationToken cancellationToken) =>
            ValueTask.FromResult<ILoadedModel>(Keys.TryGetValue(manifest.Name, out var keys) ? new CachingModel(manifest, keys) : new PlainModel(manifest));
    }

    private class PlainModel(ModelManifest manifest) : ILoadedModel
    {
        public ModelManifest Manifest => manifest;

        public long SizeBytes => 1;

        public ValueTask<IReadOnlyList<BatchItemResult>> RunBatchAsync(IReadOnlyList<InferenceRequest> requests, CancellationToken cancellationToken) =>
            throw new NotSupportedException();

        public void Dispose()
        {
        }
    }

    private sealed class CachingModel(ModelManifest manifest, string[] keys) : PlainModel(manifest), IPrefixCacheView
    {
        public IReadOnlyCollection<string> HeldPrefixKeys => keys;
    }
}
