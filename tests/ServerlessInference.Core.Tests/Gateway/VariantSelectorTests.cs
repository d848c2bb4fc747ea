using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Gateway;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Telemetry;
using ServerlessInference.Testing.Contracts;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Gateway;

/// <summary>The version a request runs on: the rule with its hysteresis (on at N queued, off at N / 2 or fewer), the
/// once-a-second depth read, and explicit variants.</summary>
public sealed class VariantSelectorTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("si-variant-selector-").FullName;
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-12-04T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
    private readonly DepthQueue _queue = new();
    private readonly TestMeterFactory _meters = new();
    private readonly FolderModelStore _store;
    private readonly VariantSelector _selector;

    public VariantSelectorTests()
    {
        _store = new FolderModelStore(_root);
        _selector = new VariantSelector(new ModelCatalog(_store, _time), _queue, _time, new InferenceMetrics(_meters));
    }

    public void Dispose()
    {
        _meters.Dispose();
        Directory.Delete(_root, recursive: true);
    }

    [Fact]
    public async Task SelectAsync_QueueRisesAndFalls_SwitchesOnAtThresholdAndOffAtHalfOfIt()
    {
        var source = await UploadAsync(threshold: 6);
        var seen = new List<string>();

        // Up to 6 (on), down to 4 (still on: above half), to 3 = 6 / 2 (off), up to 5 (still off), to 6 (on again).
        foreach (var queued in new long[] { 0, 5, 6, 7, 4, 3, 5, 6 })
        {
            _queue.Depth = new QueueDepth(queued, 0);
            seen.Add((await _selector.SelectAsync(source, versionNamed: false, variant: null, default)).Version);
            _time.Advance(VariantSelector.DepthRefresh);
        }

        Assert.Equal(["1", "1", "1-int8", "1-int8", "1-int8", "1", "1", "1-int8"], seen);
        var state = Assert.Single(_selector.Snapshot());
        Assert.Equal((3L, 6L, true), (state.Switches, state.QueuedSeen, state.Active));
        Assert.Equal(4, state.Served["1"]);
        Assert.Equal(4, state.Served["1-int8"]);
    }

    [Fact]
    public async Task SelectAsync_WithinTheRefreshWindow_ReusesTheLastDepthRead()
    {
        var source = await UploadAsync(threshold: 2);
        _queue.Depth = new QueueDepth(0, 0);
        await _selector.SelectAsync(source, false, null, default);

        _queue.Depth = new QueueDepth(10, 0);
        _time.Advance(VariantSelector.DepthRefresh - TimeSpan.FromMilliseconds(1));
        var within = await _selector.SelectAsync(source, false, null, default);
        _time.Advance(TimeSpan.FromMilliseconds(1));
        var after = await _selector.SelectAsync(source, false, null, default);

        Assert.Equal(("1", "1-int8"), (within.Version, after.Version));
        Assert.Equal(2, _queue.Reads);
    }

    [Fact]
    public async Task SelectAsync_QueueCountsPerModel_ReadsOnlyThisModelsJobs()
    {
        var source = await UploadAsync(threshold: 2);
        _queue.Depth = new QueueDepth(50, 0)
        {
            ByModel = new Dictionary<string, ModelDepth> { ["other"] = new(49, 0), ["m"] = new(1, 0) },
        };

        var chosen = await _selector.SelectAsync(source, false, null, default);

        Assert.Equal("1", chosen.Version);
        Assert.Equal(1, Assert.Single(_selector.Snapshot()).QueuedSeen);
    }

    [Fact]
    public async Task SelectAsync_VersionNamedOrPinned_IgnoresTheRule()
    {
        var source = await UploadAsync(threshold: 1);
        _queue.Depth = new QueueDepth(100, 0);

        var named = await _selector.SelectAsync(source, versionNamed: true, variant: null, default);
        var pinned = await _selector.SelectAsync(source, versionNamed: false, variant: ModelVariants.None, default);

        Assert.Equal(("1", "1"), (named.Version, pinned.Version));
        Assert.Equal(0, _queue.Reads);
    }

    [Fact]
    public async Task SelectAsync_RuleButNoVariantStored_ServesTheOriginal()
    {
        var source = await UploadAsync(threshold: 1, withVariant: false);
        _queue.Depth = new QueueDepth(100, 0);

        var chosen = await _selector.SelectAsync(source, false, null, default);

        Assert.Equal("1", chosen.Version);
    }

    [Fact]
    public async Task SelectAsync_ExplicitVariant_RunsItOrSaysWhyNot()
    {
        var source = await UploadAsync(threshold: null);
        var plain = await UploadAsync(threshold: null, withVariant: false, name: "plain");
        var variant = (await _store.GetManifestAsync("m", "1-int8", default))!;

        var chosen = await _selector.SelectAsync(source, versionNamed: true, variant: ModelVariants.Int8, default);
        var itself = await _selector.SelectAsync(variant, versionNamed: true, variant: ModelVariants.Int8, default);
        var unknown = await Assert.ThrowsAsync<InferenceException>(() => _selector.SelectAsync(source, false, "fp8", default).AsTask());
        var missing = await Assert.ThrowsAsync<InferenceException>(() => _selector.SelectAsync(plain, false, ModelVariants.Int8, default).AsTask());

        Assert.Equal(("1-int8", "1-int8"), (chosen.Version, itself.Version));
        Assert.Equal(InferenceError.BadRequest, unknown.Error);
        Assert.Equal(InferenceError.NotFound, missing.Error);
        Assert.Contains("models quantize plain --version 1", missing.Message);
        Assert.Empty(_selector.Snapshot()); // no queue-depth rule, so no switch to show
        Assert.Equal(0, _queue.Reads);
    }

    private async Task<ModelManifest> UploadAsync(int? threshold, bool withVariant = true, string name = "m")
    {
        var manifest = ModelStoreContract.Manifest(name) with
        {
            Variants = new Dictionary<string, VariantRule> { [ModelVariants.Int8] = new VariantRule(threshold) },
        };
        var source = await _store.UploadAsync(manifest, new MemoryStream(ModelStoreContract.Weights(64, seed: 1)), default);
        if (withVariant)
        {
            var variant = ModelStoreContract.Manifest(name, "1-int8") with { Variant = ModelVariants.Int8, SourceVersion = "1" };
            await _store.UploadAsync(variant, new MemoryStream(ModelStoreContract.Weights(16, seed: 2)), default);
        }

        return source;
    }

    /// <summary>A queue that only answers its depth, as set by the test, and counts the reads.</summary>
    private sealed class DepthQueue : IJobQueue
    {
        public QueueDepth Depth { get; set; }

        public int Reads { get; private set; }

        public int MaxDeliveryCount => 5;

        public ValueTask EnqueueAsync(InferenceJob job, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, JobPreference preference, CancellationToken cancellationToken) =>
            throw new NotSupportedException();

        public ValueTask<QueueDepth> GetDepthAsync(CancellationToken cancellationToken)
        {
            Reads++;
            return ValueTask.FromResult(Depth);
        }
    }
}
