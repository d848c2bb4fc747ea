using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Hosting;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Tests.TestDoubles;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Workers;

/// <summary>How a worker builds its <see cref="JobPreference"/>: the pure rule over the registry's view, the cached
/// view itself, and the settings that turn it on and off.</summary>
public sealed class AffinityRuleTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 12, 4, 12, 0, 0, TimeSpan.Zero);
    private static readonly TimeSpan StaleAfter = TimeSpan.FromSeconds(10);

    private readonly WorkerRig _rig = new();

    public void Dispose() => _rig.Dispose();

    private static WorkerStatus Worker(string id, TimeSpan? age = null, WorkerState state = WorkerState.Running, params string[] warm) => new()
    {
        Id = id,
        Host = "h",
        ExecutionProvider = "CPU",
        State = state,
        InFlight = 0,
        WarmModels = [.. warm.Select(m => new WarmModelStatus(m, "1", 100))],
        MemoryUsedBytes = 0,
        MemoryBudgetBytes = 1000,
        JobsCompleted = 0,
        StartedAt = Now.AddMinutes(-10),
        LastHeartbeat = Now - (age ?? TimeSpan.FromSeconds(1)),
    };

    private static ModelManifest Manifest(string name, int? maxWorkers = null, string version = "1", double weight = 1) => new()
    {
        Name = name,
        Version = version,
        Sha256 = "",
        SizeBytes = 1,
        Inputs = [],
        Outputs = [],
        MaxWorkers = maxWorkers,
        Weight = weight,
    };

    private static JobPreference Build(IReadOnlyList<string> warm, IReadOnlyList<WorkerStatus> workers, params ModelManifest[] manifests) =>
        AffinityRule.Build("me", warm, workers, AffinityRule.LatestByName(manifests), Now, StaleAfter, TimeSpan.FromMilliseconds(250));

    [Fact]
    public void Build_WarmElsewhere_CountsLiveOtherWorkersOnly()
    {
        var preference = Build(["x", "y"],
        [
            Worker("me", warm: ["x", "y", "mine-only"]),
            Worker("live", warm: ["y", "z"]),
            Worker("stale", age: TimeSpan.FromSeconds(11), warm: ["dead"]),
            Worker("draining", state: WorkerState.Draining, warm: ["leaving"]),
        ]);

        Assert.Equal(["x", "y"], preference.Warm);
        Assert.Equal(new HashSet<string> { "y", "z" }, preference.WarmElsewhere);
        Assert.Empty(preference.Closed);
        Assert.Equal(TimeSpan.FromMilliseconds(250), preference.AffinityWait);
        Assert.False(preference.IsNone);
    }

    [Fact]
    public void Build_ModelOnItsMaxWorkersElsewhere_IsClosedUnlessWarmHere()
    {
        var workers = new[]
        {
            Worker("a", warm: ["full", "room", "mine"]),
            Worker("b", warm: ["full", "mine"]),
            Worker("c", age: TimeSpan.FromMinutes(1), warm: ["room"]),
        };

        var preference = Build(["mine"], workers,
            Manifest("full", maxWorkers: 2), Manifest("room", maxWorkers: 2), Manifest("mine", maxWorkers: 2), Manifest("free"));

        // "room" is on two workers, but one is stale: it still has room. "mine" is full, but this worker holds it.
        Assert.Equal(new HashSet<string> { "full" }, preference.Closed);
    }

    [Fact]
    public void LatestByName_SeveralVersions_TakesTheLatest()
    {
        var latest = AffinityRule.LatestByName([Manifest("m", version: "2", weight: 2), Manifest("m", version: "10", weight: 5), Manifest("n")]);

        Assert.Equal(5, latest["m"].Weight);
        Assert.Equal(["m", "n"], latest.Keys.Order());
    }

    [Fact]
    public async Task PreferenceAsync_AffinityOff_IsNone()
    {
        _rig.WorkerOptions.Affinity = false;
        var affinity = new WorkerAffinity("me", _rig.Pool, _rig.Catalog, _rig.Registry, _rig.WorkerOptions, _rig.Time, NullLogger.Instance);

        Assert.Same(JobPreference.None, await affinity.PreferenceAsync(default));
    }

    [Fact]
    public async Task PreferenceAsync_ReadsTheRegistryAtMostOncePerHeartbeatInterval()
    {
        var registry = new CountingRegistry(_rig.Registry);
        var affinity = new WorkerAffinity("me", _rig.Pool, _rig.Catalog, registry, _rig.WorkerOptions, _rig.Time, NullLogger.Instance);
        await _rig.Registry.HeartbeatAsync(Worker("other", warm: ["x"]) with { LastHeartbeat = _rig.Time.GetUtcNow() }, default);

        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(new HashSet<string> { "x" }, (await affinity.PreferenceAsync(default)).WarmElsewhere);
            _rig.Time.Advance(TimeSpan.FromMilliseconds(200));
        }

        Assert.Equal(1, registry.Lists);

        // The cached view is not re-read, so a worker that appears now is seen only after the interval.
        await _rig.Registry.HeartbeatAsync(Worker("newcomer", warm: ["y"]) with { LastHeartbeat = _rig.Time.GetUtcNow() }, default);
        Assert.DoesNotContain("y", (await affinity.PreferenceAsync(default)).WarmElsewhere);
        _rig.Time.Advance(_rig.WorkerOptions.HeartbeatInterval);
        Assert.Contains("y", (await affinity.PreferenceAsync(default)).WarmElsewhere);
        Assert.Equal(2, registry.Lists);
    }

    [Fact]
    public async Task PreferenceAsync_WarmIsThePoolsModelsInFairOrder()
    {
        var light = _rig.Models.Add("light");
        var heavy = _rig.Models.Add("heavy");
        // The catalog gives the weights: re-upload heavy with weight 4.
        await _rig.Models.Store.UploadAsync(heavy with { Version = "2", Weight = 4, Sha256 = "", SizeBytes = 0 }, new MemoryStream(new byte[100]), default);
        using (await _rig.Pool.AcquireAsync(light, default))
        using (await _rig.Pool.AcquireAsync(heavy, default))
        {
        }

        var affinity = new WorkerAffinity("me", _rig.Pool, _rig.Catalog, _rig.Registry, _rig.WorkerOptions, _rig.Time, NullLogger.Instance);
        var first = await affinity.PreferenceAsync(default);
        Assert.Equal(["heavy", "light"], first.Warm);

        // Four jobs of heavy advance its pass by one (weight 4), four of light by four: heavy is owed more again.
        affinity.Received(first, Lease("heavy", 4));
        var second = await affinity.PreferenceAsync(default);
        Assert.Equal(["light", "heavy"], second.Warm);
        affinity.Received(second, Lease("light", 4));
        Assert.Equal(["heavy", "light"], (await affinity.PreferenceAsync(default)).Warm);
        Assert.Equal(1, affinity.Fair.Passes["heavy"]);
        Assert.Equal(4, affinity.Fair.Passes["light"]);
    }

    private JobLease[] Lease(string model, int count) =>
        [.. Enumerable.Range(0, count).Select(_ => new FakeLease(TestJobs.Job(model, _rig.Time.GetUtcNow())))];

    [Fact]
    public void Options_AffinitySettings_BindAndValidateAtStartUp()
    {
        static WorkerOptions Bind(Dictionary<string, string?> settings)
        {
            var services = new ServiceCollection();
            services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(settings).Build());
            services.AddValidatedOptions<WorkerOptions, WorkerOptionsValidator>(WorkerOptions.Section);
            using var provider = services.BuildServiceProvider();
            return provider.GetRequiredService<IOptions<WorkerOptions>>().Value;
        }

        var defaults = Bind(new());
        Assert.True(defaults.Affinity);
        Assert.Equal(TimeSpan.FromMilliseconds(250), defaults.AffinityWait);

        var set = Bind(new() { ["Inference:Worker:Affinity"] = "false", ["Inference:Worker:AffinityWait"] = "00:00:01.5" });
        Assert.False(set.Affinity);
        Assert.Equal(TimeSpan.FromSeconds(1.5), set.AffinityWait);

        var error = Assert.Throws<OptionsValidationException>(() => Bind(new() { ["Inference:Worker:AffinityWait"] = "-00:00:01" }));
        Assert.Contains("Inference:Worker:AffinityWait must not be negative", error.Message, StringComparison.Ordinal);

        Assert.Equal(TimeSpan.FromMilliseconds(500), defaults.LoadWait);
        Assert.Equal(TimeSpan.FromSeconds(2), Bind(new() { ["Inference:Worker:LoadWait"] = "00:00:02" }).LoadWait);
        error = Assert.Throws<OptionsValidationException>(() => Bind(new() { ["Inference:Worker:LoadWait"] = "-00:00:00.1" }));
        Assert.Contains("Inference:Worker:LoadWait must not be negative", error.Message, StringComparison.Ordinal);
    }

    private sealed class FakeLease(InferenceJob job) : JobLease
    {
        public override InferenceJob Job => job;

        public override int DeliveryCount => 1;

        public override string? LastError => null;

        public override ValueTask CompleteAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public override ValueTask AbandonAsync(string? error, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public override ValueTask DeadLetterAsync(string reason, CancellationToken cancellationToken) => ValueTask.CompletedTask;

        public override ValueTask RenewAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;
    }

    private sealed class CountingRegistry(IWorkerRegistry inner) : IWorkerRegistry
    {
        public int Lists { get; private set; }

        public ValueTask HeartbeatAsync(WorkerStatus status, CancellationToken cancellationToken) => inner.HeartbeatAsync(status, cancellationToken);

        public ValueTask RemoveAsync(string workerId, CancellationToken cancellationToken) => inner.RemoveAsync(workerId, cancellationToken);

        public ValueTask<IReadOnlyList<WorkerStatus>> ListAsync(CancellationToken cancellationToken)
        {
            Lists++;
            return inner.ListAsync(cancellationToken);
        }
    }
}
