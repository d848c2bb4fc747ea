namespace ServerlessInference.Bench.Tests;

public class MultiModelTrafficTests
{
    [Fact]
    public void Sample_FixedSeed_RankFrequenciesFollowTheExponent()
    {
        const int models = 12;
        const double exponent = 1.1;
        const int draws = 400_000;
        var zipf = new ZipfSampler(models, exponent);
        var random = new BenchRandom(42);
        var counts = new int[models];
        for (var i = 0; i < draws; i++)
        {
            counts[zipf.Sample(random)]++;
        }

        for (var rank = 0; rank < models; rank++)
        {
            // p ∝ 1/(k+1)^1.1: rank 0 gets 35.5%, rank 11 2.3% (9,200 draws, so 4% is about 4 standard deviations).
            var expected = Math.Pow(rank + 1, -exponent) / Enumerable.Range(1, models).Sum(k => Math.Pow(k, -exponent));
            Assert.Equal(expected, zipf.Probability(rank), 12);
            Assert.InRange(counts[rank] / (double)draws, expected * 0.96, expected * 1.04);
        }

        // The slope of log(frequency) against log(rank + 1) is minus the exponent.
        var x = Enumerable.Range(1, models).Select(k => Math.Log(k)).ToArray();
        var y = counts.Select(c => Math.Log(c)).ToArray();
        double mx = x.Average(), my = y.Average();
        var slope = x.Zip(y).Sum(p => (p.First - mx) * (p.Second - my)) / x.Sum(v => (v - mx) * (v - mx));
        Assert.InRange(slope, -exponent - 0.03, -exponent + 0.03);
    }

    [Fact]
    public void Sample_SameSeed_SameRanks()
    {
        var zipf = new ZipfSampler(12, 1.1);
        BenchRandom a = new(7), b = new(7), c = new(8);
        var first = Enumerable.Range(0, 1000).Select(_ => zipf.Sample(a)).ToArray();
        Assert.Equal(first, Enumerable.Range(0, 1000).Select(_ => zipf.Sample(b)));
        Assert.NotEqual(first, Enumerable.Range(0, 1000).Select(_ => zipf.Sample(c)));
        Assert.All(first, rank => Assert.InRange(rank, 0, 11));
    }

    [Fact]
    public void Sample_ExponentZero_EveryRankAlike()
    {
        var zipf = new ZipfSampler(4, 0);
        var random = new BenchRandom(3);
        var counts = new int[4];
        for (var i = 0; i < 100_000; i++)
        {
            counts[zipf.Sample(random)]++;
        }

        Assert.All(counts, c => Assert.InRange(c, 24_000, 26_000));
    }

    [Fact]
    public void ModelAt_WithinAPeriod_SameOrder_AndANewOrderAtEachBoundary()
    {
        var period = TimeSpan.FromSeconds(20);
        var schedule = new HotSetSchedule(12, period, seed: 20261204);
        for (var p = 0; p < 10; p++)
        {
            var start = period * p;
            var last = start + period - TimeSpan.FromTicks(1);
            Assert.Equal(p, schedule.PeriodAt(start));
            Assert.Equal(p, schedule.PeriodAt(last));
            Assert.Equal(p + 1, schedule.PeriodAt(start + period));
            for (var rank = 0; rank < 12; rank++)
            {
                Assert.Equal(schedule.ModelAt(rank, start), schedule.ModelAt(rank, last));
            }

            Assert.NotEqual(schedule.Permutation(p), schedule.Permutation(p + 1));
        }
    }

    [Fact]
    public void Permutation_EveryPeriod_IsAPermutationThatRankOfInverts()
    {
        var period = TimeSpan.FromSeconds(20);
        var schedule = new HotSetSchedule(12, period, seed: 1);
        for (var p = 0; p < 50; p++)
        {
            var order = schedule.Permutation(p);
            Assert.Equal(Enumerable.Range(0, 12), order.Order());
            for (var rank = 0; rank < 12; rank++)
            {
                Assert.Equal(rank, schedule.RankOf(order[rank], period * p));
            }
        }
    }

    [Fact]
    public void Permutation_OverPeriods_TheHotSetRotates()
    {
        var schedule = new HotSetSchedule(12, TimeSpan.FromSeconds(20), seed: 20261204);
        // The hottest model changes: over 12 periods many different models hold rank 0, and every model is among the
        // hottest quarter at some point.
        var hottest = Enumerable.Range(0, 12).Select(p => schedule.Permutation(p)[0]).Distinct().Count();
        Assert.True(hottest >= 5, $"only {hottest} distinct hottest models in 12 periods");
        var everHot = Enumerable.Range(0, 24).SelectMany(p => schedule.Permutation(p).Take(3)).Distinct().Count();
        Assert.Equal(12, everHot);
    }

    [Fact]
    public void Permutation_SameSeed_SameScheduleWhateverTheOrderOfQuestions()
    {
        var period = TimeSpan.FromSeconds(20);
        var forward = new HotSetSchedule(12, period, seed: 5);
        var backward = new HotSetSchedule(12, period, seed: 5);
        var other = new HotSetSchedule(12, period, seed: 6);
        var orders = Enumerable.Range(0, 8).Select(p => forward.Permutation(p).ToArray()).ToList();
        for (var p = 7; p >= 0; p--)
        {
            Assert.Equal(orders[p], backward.Permutation(p));
        }

        Assert.NotEqual(orders[0], other.Permutation(0));
    }

    [Theory]
    [InlineData(12, 9)]
    [InlineData(4, 3)]
    [InlineData(13, 10)]
    [InlineData(2, 1)]
    public void FirstRank_OfTheColdestQuarter_IsTheLastQuarterOfTheRanks(int models, int first)
    {
        Assert.Equal(first, ColdQuarter.FirstRank(models));
        Assert.False(ColdQuarter.Contains(first - 1, models));
        Assert.True(ColdQuarter.Contains(first, models));
        Assert.True(ColdQuarter.Contains(models - 1, models));
    }
}
