using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Embedded;
using ServerlessInference.Models;
using ServerlessInference.Scaling;
using ServerlessInference.Tests.TestDoubles;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Workers;

public sealed class WarmPlacementTests : IDisposable
{
    private readonly WorkerRig _rig = new();
    private readonly InMemoryPlacementBoard _board = new();

    public void Dispose() => _rig.Dispose();

    [Fact]
    public async Task HeartbeatAsync_PlanOrdersAModelForThisWorker_LoadsItAndTheNextHeartbeatReportsIt()
    {
        _rig.Models.Add("wanted");
        await PublishAsync(new PlacementOrder("w1", "wanted"));
        var worker = new InferenceWorker("w1", _rig.Queue, _rig.Results, _rig.Pool, _rig.Catalog, _rig.Registry, _rig.WorkerOptions, _rig.Time,
            _rig.Metrics, NullLogger.Instance) { Placement = Placement(_rig.Pool) };

        await worker.HeartbeatAsync(default);

        // The load runs beside the heartbeat; the real-time bound only stops a hung test.
        var giveUp = DateTime.UtcNow.AddSeconds(10);
        while (!_rig.Pool.Snapshot().Any(m => m is { Name: "wanted", State: "ready" }))
        {
            Assert.True(DateTime.UtcNow < giveUp, "the wanted model was not loaded in 10 s");
            await Task.Delay(5);
        }

        Assert.Equal(1, _rig.Engine.Loads);
        await worker.HeartbeatAsync(default);
        var status = Assert.Single(await _rig.Registry.ListAsync(default));
        Assert.Contains(status.WarmModels, m => m.Model == "wanted");
    }

    [Fact]
    public async Task ApplyAsync_OrdersForAnotherWorkerOrAnExpiredPlan_LoadNothing()
    {
        _rig.Models.Add("wanted");
        var placement = Placement(_rig.Pool);

        await PublishAsync(new PlacementOrder("w2", "wanted"));
        await placement.ApplyAsync("w1", default);
        await PublishAsync(new PlacementOrder("w1", "wanted"));
        _rig.Time.Advance(PlacementPlan.Lifetime);
        await placement.ApplyAsync("w1", default);

        Assert.Equal(0, _rig.Engine.Loads);
        Assert.Empty(_rig.Pool.Snapshot());
    }

    [Fact]
    public async Task ApplyAsync_PoolFull_EvictsOnlyAnIdleModelThePlanDoesNotKeep()
    {
        using var pool = Pool(budget: 250);
        await WarmAsync(pool, _rig.Models.Add("busy", size: 100));
        await WarmAsync(pool, _rig.Models.Add("spare", size: 100));
        _rig.Models.Add("wanted", size: 100);
        await PublishAsync(keep: ["busy"], new PlacementOrder("w1", "wanted"));

        await Placement(pool).ApplyAsync("w1", default);

        Assert.Equal(["busy", "wanted"], pool.Snapshot().Select(m => m.Name).Order());
    }

    [Fact]
    public async Task ApplyAsync_NoRoomWithoutEvictingAKeptOrLeasedModel_LoadsNothing()
    {
        using var pool = Pool(budget: 250);
        await WarmAsync(pool, _rig.Models.Add("kept", size: 100));
        using var lease = await pool.AcquireAsync(_rig.Models.Add("running", size: 100), default);
        _rig.Models.Add("wanted", size: 100);
        await PublishAsync(keep: ["kept"], new PlacementOrder("w1", "wanted"));

        await Placement(pool).ApplyAsync("w1", default);

        Assert.Equal(["kept", "running"], pool.Snapshot().Select(m => m.Name).Order());
    }

    private WarmPlacement Placement(WarmPool pool) => new(_board, pool, _rig.Catalog, _rig.Time, NullLogger.Instance);

    private WarmPool Pool(long budget) => new(
        _rig.Engine,
        new WeightsCache(_rig.Models.Store, _rig.Models.CacheDirectory, NullLogger<WeightsCache>.Instance),
        Options.Create(new WarmPoolOptions { BudgetBytes = budget }),
        _rig.Time,
        NullLogger<WarmPool>.Instance);

    private static async Task WarmAsync(WarmPool pool, ModelManifest manifest)
    {
        using var lease = await pool.AcquireAsync(manifest, default);
    }

    private ValueTask PublishAsync(params PlacementOrder[] loads) => PublishAsync([], loads);

    private ValueTask PublishAsync(string[] keep, params PlacementOrder[] loads)
    {
        var now = _rig.Time.GetUtcNow();
        return _board.PublishAsync(new PlacementPlan(now, now + PlacementPlan.Lifetime, loads, keep), default);
    }
}
