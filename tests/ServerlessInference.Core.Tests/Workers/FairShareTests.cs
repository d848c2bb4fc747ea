using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Workers;

/// <summary>The worker's fair rule across its warm models, driven as a worker drives it: order the warm keys, let a
/// queue serve a batch from the first key that has work, account what it served.</summary>
public sealed class FairShareTests
{
    /// <summary>Runs <paramref name="picks"/> receives against a queue where the keys in <paramref name="backlogged"/>
    /// always have work (others have none); returns the key served by each receive.</summary>
    private static List<string> Run(FairShare fair, string[] warm, Func<int, IReadOnlySet<string>> backlogged,
        IReadOnlyDictionary<string, double> weights, int picks, int batch = 8)
    {
        var served = new List<string>(picks);
        for (var i = 0; i < picks; i++)
        {
            var order = fair.Order(warm);
            var key = order.First(k => backlogged(i).Contains(k));
            fair.Served(order, new Dictionary<string, int> { [key] = batch }, k => weights.GetValueOrDefault(k, 1));
            served.Add(key);
        }

        return served;
    }

    private static IReadOnlySet<string> Set(params string[] keys) => new HashSet<string>(keys);

    private static int LongestRun(IReadOnlyList<string> served, string key)
    {
        int longest = 0, run = 0;
        foreach (var s in served)
        {
            run = s == key ? run + 1 : 0;
            longest = Math.Max(longest, run);
        }

        return longest;
    }

    [Fact]
    public void Served_EqualWeights_SplitsEvenly()
    {
        var served = Run(new FairShare(), ["a", "b"], _ => Set("a", "b"), new Dictionary<string, double>(), picks: 1000);

        Assert.Equal(500, served.Count(k => k == "a"));
        Assert.Equal(500, served.Count(k => k == "b"));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    public void Served_WeightsThreeToOne_GivesThreeQuartersOfTheJobs(int batch)
    {
        var weights = new Dictionary<string, double> { ["hot"] = 3, ["cold"] = 1 };

        var served = Run(new FairShare(), ["hot", "cold"], _ => Set("hot", "cold"), weights, picks: 4000, batch);

        // Jobs served, not picks: a batch of the heavier key advances its pass a third as far.
        Assert.InRange(served.Count(k => k == "hot"), 2999, 3001);
        Assert.InRange(served.Count(k => k == "cold"), 999, 1001);
        Assert.Equal(1, LongestRun(served, "cold"));
    }

    [Fact]
    public void Order_NewKey_StartsAtTheLowestPassAndCannotMonopolise()
    {
        var fair = new FairShare();
        Run(fair, ["old"], _ => Set("old"), new Dictionary<string, double>(), picks: 1000);

        // Starting at zero it would be owed 1,000 batches and take every one of the next 100.
        var served = Run(fair, ["old", "new"], _ => Set("old", "new"), new Dictionary<string, double>(), picks: 100);

        Assert.Equal(50, served.Count(k => k == "new"));
        Assert.Equal(1, LongestRun(served, "new"));
    }

    [Fact]
    public void Served_KeySkippedForHavingNoWork_DoesNotBankCredit()
    {
        var fair = new FairShare();
        // "idle" is warm but has nothing queued for 500 receives; then it gets work too.
        var served = Run(fair, ["busy", "idle"], i => i < 500 ? Set("busy") : Set("busy", "idle"), new Dictionary<string, double>(), picks: 600);

        var after = served.Skip(500).ToList();
        Assert.Equal(50, after.Count(k => k == "idle"));
        Assert.Equal(1, LongestRun(after, "idle"));
    }

    [Fact]
    public void Order_KeyNoLongerWarm_IsForgottenAndStartsAfreshWhenBack()
    {
        var fair = new FairShare();
        Run(fair, ["a", "b"], _ => Set("a", "b"), new Dictionary<string, double>(), picks: 10);

        fair.Order(["a"]);
        Assert.Equal(["a"], fair.Passes.Keys);
        Run(fair, ["a"], _ => Set("a"), new Dictionary<string, double>(), picks: 10);
        fair.Order(["a", "b"]);

        Assert.Equal(fair.Passes["a"], fair.Passes["b"]);
    }

    [Fact]
    public void Order_SameHistory_SameOrderAndTiesByName()
    {
        Assert.Equal(["a", "b", "c"], new FairShare().Order(["c", "a", "b"]));

        var weights = new Dictionary<string, double> { ["a"] = 2, ["b"] = 0.5, ["c"] = 1 };
        var first = Run(new FairShare(), ["c", "b", "a"], i => i % 7 == 0 ? Set("c") : Set("a", "b", "c"), weights, picks: 300, batch: 3);
        var second = Run(new FairShare(), ["a", "c", "b"], i => i % 7 == 0 ? Set("c") : Set("a", "b", "c"), weights, picks: 300, batch: 3);

        Assert.Equal(first, second);
    }
}
