using Microsoft.Extensions.Logging.Abstractions;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Tests.TestDoubles;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Workers;

/// <summary>A worker holding a hot and a cold model warm, over the embedded queue: however many of the hot model's jobs
/// are queued ahead, the worker's picks follow the manifests' weights. Receives are driven as the worker loop drives
/// them (preference, receive, account, settle) on a fake clock that never moves.</summary>
public sealed class WorkerFairnessTests : IDisposable
{
    private const int Batch = 8;
    private const int Receives = 40;

    private readonly WorkerRig _rig = new(maxBatchSize: Batch);

    public void Dispose() => _rig.Dispose();

    private async Task<WorkerAffinity> WarmWorkerAsync(params ModelManifest[] models)
    {
        foreach (var model in models)
        {
            using (await _rig.Pool.AcquireAsync(model, default))
            {
                // Warm in this worker's pool from now on.
            }
        }

        return new WorkerAffinity("me", _rig.Pool, _rig.Catalog, _rig.Registry, _rig.WorkerOptions, _rig.Time, NullLogger.Instance);
    }

    private async Task FloodAsync(string model, int count)
    {
        for (var i = 0; i < count; i++)
        {
            await _rig.Queue.EnqueueAsync(TestJobs.Job(model, _rig.Time.GetUtcNow(), i), default);
        }
    }

    /// <summary>The models of each receive's batch, in order.</summary>
    private async Task<List<string[]>> PickAsync(WorkerAffinity affinity, int receives)
    {
        var picks = new List<string[]>(receives);
        for (var i = 0; i < receives; i++)
        {
            var preference = await affinity.PreferenceAsync(default);
            var leases = await _rig.Queue.ReceiveAsync(Batch, TimeSpan.Zero, preference, default);
            affinity.Received(preference, leases);
            foreach (var lease in leases)
            {
                await lease.CompleteAsync(default);
            }

            picks.Add(leases.Select(l => l.Job.Model).ToArray());
        }

        return picks;
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(3, 1)]
    [InlineData(1, 4)]
    public async Task Receive_HotModelFloodsAheadOfACold_JobsServedFollowTheWeights(double hotWeight, double coldWeight)
    {
        var hot = _rig.Models.Add("hot", weight: hotWeight);
        var cold = _rig.Models.Add("cold", weight: coldWeight);
        var affinity = await WarmWorkerAsync(hot, cold);
        // Every hot job is older than every cold one: FIFO would serve 4,000 hot jobs before the first cold one.
        await FloodAsync("hot", 4000);
        await FloodAsync("cold", 1000);

        var picks = await PickAsync(affinity, Receives);

        // Both keep work throughout, so every receive is a full batch of one model (the queue fills from one key).
        Assert.All(picks, p => Assert.Equal(Batch, p.Length));
        Assert.All(picks, p => Assert.Single(p.Distinct()));
        var hotJobs = picks.Sum(p => p.Count(m => m == "hot"));
        var expected = Receives * Batch * hotWeight / (hotWeight + coldWeight);
        // Stride scheduling is exact over whole cycles; one batch of slack covers where the cycle is cut.
        Assert.InRange(hotJobs, expected - Batch, expected + Batch);
        // Neither waits more receives in a row than the weight ratio allows: ceil(ratio), plus one where a tie of passes
        // is decided by rounding (three batches at weight 3 add up to a hair under one batch at weight 1).
        Assert.True(LongestRun(picks, "hot") <= (int)Math.Ceiling(hotWeight / coldWeight) + 1,
            $"hot ran {LongestRun(picks, "hot")} receives in a row with cold jobs waiting");
        Assert.True(LongestRun(picks, "cold") <= (int)Math.Ceiling(coldWeight / hotWeight) + 1,
            $"cold ran {LongestRun(picks, "cold")} receives in a row with hot jobs waiting");
    }

    [Fact]
    public async Task Receive_ColdModelDrained_HotTakesEveryBatchAndColdIsOwedAtMostOneBatchOnReturn()
    {
        var hot = _rig.Models.Add("hot");
        var cold = _rig.Models.Add("cold");
        var affinity = await WarmWorkerAsync(hot, cold);
        await FloodAsync("hot", 4000);

        // Cold has nothing queued: its turn is not kept idle, and it banks no credit meanwhile.
        var alone = await PickAsync(affinity, 20);
        Assert.All(alone, p => Assert.Equal(Enumerable.Repeat("hot", Batch), p));

        await FloodAsync("cold", 1000);
        var shared = await PickAsync(affinity, Receives);

        // A skipped key is raised to the pass the served key had when it was served, so on return it is owed that one
        // batch; had it banked its idle turns it would take the first 20 receives in a row.
        Assert.InRange(shared.Count(p => p[0] == "cold"), Receives / 2, Receives / 2 + 1);
        Assert.True(LongestRun(shared, "cold") <= 2, "cold spent credit banked while it had nothing queued");
        Assert.True(LongestRun(shared.Skip(2), "cold") <= 1, "cold and hot do not alternate once the owed batch is served");
    }

    private static int LongestRun(IEnumerable<string[]> picks, string model)
    {
        int longest = 0, run = 0;
        foreach (var pick in picks)
        {
            run = pick.Length > 0 && pick[0] == model ? run + 1 : 0;
            longest = Math.Max(longest, run);
        }

        return longest;
    }
}
