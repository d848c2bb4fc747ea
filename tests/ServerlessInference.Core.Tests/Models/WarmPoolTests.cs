using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Models;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Models;

public sealed class WarmPoolTests : IDisposable
{
    private readonly TempModelStore _models = new();
    private readonly FakeEngine _engine = new();
    private readonly FakeTimeProvider _time = new();

    private WarmPool Pool(long budget) => new(
        _engine,
        new WeightsCache(_models.Store, _models.CacheDirectory, NullLogger<WeightsCache>.Instance),
        Options.Create(new WarmPoolOptions { BudgetBytes = budget, CacheDirectory = _models.CacheDirectory }),
        _time,
        NullLogger<WarmPool>.Instance);

    public void Dispose() => _models.Dispose();

    private async Task UseAsync(WarmPool pool, ModelManifest manifest)
    {
        using var lease = await pool.AcquireAsync(manifest, default);
        _time.Advance(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task AcquireAsync_OverBudget_EvictsLeastRecentlyUsedIdleModel()
    {
        var a = _models.Add("a");
        var b = _models.Add("b");
        var c = _models.Add("c");
        using var pool = Pool(budget: 250);

        await UseAsync(pool, a);
        await UseAsync(pool, b);
        await UseAsync(pool, a); // a is now more recent than b
        await UseAsync(pool, c);

        Assert.Equal(["c", "a"], pool.Snapshot().Select(m => m.Name));
        var counters = pool.Counters;
        Assert.Equal(1, counters.Evictions);
        Assert.Equal(3, counters.Loads);
        Assert.Equal(1, counters.Hits);
        Assert.Equal(200, counters.UsedBytes);
        Assert.True(_engine.Models.Single(m => m.Manifest.Name == "b").Disposed);
    }

    [Fact]
    public async Task AcquireAsync_EveryOtherModelBusy_NeverEvictsARunningModelAndShrinksOnRelease()
    {
        var a = _models.Add("a");
        var b = _models.Add("b");
        var c = _models.Add("c");
        using var pool = Pool(budget: 250);

        var leaseA = await pool.AcquireAsync(a, default);
        var leaseB = await pool.AcquireAsync(b, default);
        using (await pool.AcquireAsync(c, default))
        {
            Assert.Equal(300, pool.Counters.UsedBytes);
            Assert.False(leaseA.Model is FakeModel { Disposed: true });
            Assert.False(leaseB.Model is FakeModel { Disposed: true });
        }

        // c was released last but a and b were still busy; releasing a lets the pool get back under budget.
        _time.Advance(TimeSpan.FromSeconds(1));
        leaseA.Dispose();
        Assert.True(pool.Counters.UsedBytes <= 250);
        leaseB.Dispose();
        Assert.Equal(1, pool.Counters.Evictions);
    }

    [Fact]
    public async Task AcquireAsync_ConcurrentCallers_LoadOnce()
    {
        var a = _models.Add("a");
        using var pool = Pool(budget: 1000);
        _engine.LoadGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var callers = Enumerable.Range(0, 16).Select(_ => Task.Run(() => pool.AcquireAsync(a, default).AsTask())).ToList();
        while (_engine.Loads == 0)
        {
            await Task.Yield();
        }

        _engine.LoadGate.SetResult();
        var leases = await Task.WhenAll(callers);

        Assert.Equal(1, _engine.Loads);
        Assert.Single(leases.Select(l => l.Model).Distinct());
        Assert.Equal(1, pool.Counters.Loads);
        Assert.Equal(16, pool.Counters.Hits + pool.Counters.Misses);
        foreach (var lease in leases)
        {
            lease.Dispose();
        }

        Assert.Equal(0, pool.Snapshot().Single().Leases);
    }

    [Fact]
    public async Task AcquireAsync_ModelLargerThanBudget_FailsNamingTheSetting()
    {
        var big = _models.Add("big", size: 500);
        using var pool = Pool(budget: 100);

        var ex = await Assert.ThrowsAsync<InferenceException>(() => pool.AcquireAsync(big, default).AsTask());

        Assert.Contains("Inference:WarmPool:BudgetBytes", ex.Message);
        Assert.Equal(0, _engine.Loads);
    }

    [Fact]
    public async Task AcquireAsync_WeightsFailSha256_FailsClearlyAndRetriesNextTime()
    {
        var a = _models.Add("a");
        var weightsPath = Path.Combine(_models.Store.Root, "a", "1", "model.onnx");
        var good = await File.ReadAllBytesAsync(weightsPath);
        var bad = (byte[])good.Clone();
        bad[0] ^= 0xFF;
        await File.WriteAllBytesAsync(weightsPath, bad);
        using var pool = Pool(budget: 1000);

        var ex = await Assert.ThrowsAsync<InferenceException>(() => pool.AcquireAsync(a, default).AsTask());
        Assert.Equal(InferenceError.ModelFailure, ex.Error);
        Assert.Contains("sha256", ex.Message);
        Assert.Equal(0, _engine.Loads);
        Assert.Empty(pool.Snapshot());
        Assert.Equal(0, pool.Counters.UsedBytes);

        await File.WriteAllBytesAsync(weightsPath, good);
        using var lease = await pool.AcquireAsync(a, default);
        Assert.Equal(1, _engine.Loads);
    }

    [Fact]
    public async Task AcquireAsync_SecondColdStart_ReadsTheDiskCache()
    {
        var a = _models.Add("a");
        using (var first = Pool(budget: 1000))
        {
            await UseAsync(first, a);
        }

        // The store loses the weights; a new pool (a restarted worker) still loads from its disk cache.
        File.Delete(Path.Combine(_models.Store.Root, "a", "1", "model.onnx"));
        using var second = Pool(budget: 1000);
        using var lease = await second.AcquireAsync(a, default);

        Assert.Equal(2, _engine.Loads);
        Assert.True(File.Exists(Path.Combine(_models.CacheDirectory, a.Sha256 + ".onnx")));
    }
}
