namespace ServerlessInference.Bench;

/// <summary>An integer-only random stream (SplitMix64, Steele, Lea, Flood 2014): the same values on every machine and
/// .NET version, so both sides of a bench run draw the same sequence of ranks. Not thread-safe: one per client.</summary>
internal sealed class BenchRandom(ulong seed)
{
    private ulong _state = seed;

    public ulong NextUInt64()
    {
        _state += 0x9E3779B97F4A7C15UL;
        var z = _state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform in [0, <paramref name="count"/>) (the modulo bias is below 2^-40 for the counts used here).</summary>
    public int Next(int count) => (int)(NextUInt64() % (ulong)count);
}

/// <summary>Zipf's law over <see cref="Count"/> ranks: rank k (0 = the hottest) is drawn with probability proportional
/// to 1 / (k + 1)^exponent. Sampling inverts the cumulative distribution (a binary search), so it is exact.</summary>
internal sealed class ZipfSampler
{
    private readonly double[] _cumulative;
    private readonly double[] _probabilities;

    public ZipfSampler(int count, double exponent)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(exponent);
        var weights = Enumerable.Range(1, count).Select(k => Math.Pow(k, -exponent)).ToArray();
        var total = weights.Sum();
        _probabilities = [.. weights.Select(w => w / total)];
        _cumulative = new double[count];
        var sum = 0.0;
        for (var k = 0; k < count; k++)
        {
            sum += _probabilities[k];
            _cumulative[k] = sum;
        }

        _cumulative[^1] = 1.0; // no draw falls past the last rank through rounding
    }

    public int Count => _cumulative.Length;

    /// <summary>The probability of <paramref name="rank"/> (0 = the hottest).</summary>
    public double Probability(int rank) => _probabilities[rank];

    public int Sample(BenchRandom random)
    {
        var u = random.NextDouble();
        var index = Array.BinarySearch(_cumulative, u);
        // Not found: the complement is the first cumulative value above u. Found exactly: u belongs to the next rank.
        var rank = index < 0 ? ~index : index + 1;
        return Math.Min(rank, _cumulative.Length - 1);
    }
}

/// <summary>Which model holds which popularity rank, changing every <see cref="Period"/>: the ranks are permuted anew
/// at each period (a seeded shuffle), so the hot set rotates and yesterday's cold models become hot. The schedule is
/// a pure function of the time elapsed on a side's own measurement clock, so both sides see the same rotations.</summary>
internal sealed class HotSetSchedule
{
    private readonly ulong _seed;
    private readonly Dictionary<int, (int[] ModelOfRank, int[] RankOfModel)> _periods = [];
    private readonly Lock _lock = new();

    public HotSetSchedule(int models, TimeSpan period, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(models, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(period, TimeSpan.Zero);
        Models = models;
        Period = period;
        _seed = seed;
    }

    public int Models { get; }

    public TimeSpan Period { get; }

    public int PeriodAt(TimeSpan elapsed) => elapsed <= TimeSpan.Zero ? 0 : (int)(elapsed.Ticks / Period.Ticks);

    /// <summary>The model (index) that holds <paramref name="rank"/> at <paramref name="elapsed"/>.</summary>
    public int ModelAt(int rank, TimeSpan elapsed) => Get(PeriodAt(elapsed)).ModelOfRank[rank];

    /// <summary>The rank (0 = the hottest) of <paramref name="model"/> at <paramref name="elapsed"/>.</summary>
    public int RankOf(int model, TimeSpan elapsed) => Get(PeriodAt(elapsed)).RankOfModel[model];

    /// <summary>Rank → model during period <paramref name="period"/>: a permutation of 0..Models-1.</summary>
    public IReadOnlyList<int> Permutation(int period) => Get(period).ModelOfRank;

    private (int[] ModelOfRank, int[] RankOfModel) Get(int period)
    {
        lock (_lock)
        {
            if (!_periods.TryGetValue(period, out var entry))
            {
                // Fisher–Yates with a stream of its own per period: period p's order never depends on which periods
                // were asked for before it.
                var random = new BenchRandom(_seed ^ ((ulong)(period + 1) * 0xD1B54A32D192ED03UL));
                var modelOfRank = Enumerable.Range(0, Models).ToArray();
                for (var i = Models - 1; i > 0; i--)
                {
                    var j = random.Next(i + 1);
                    (modelOfRank[i], modelOfRank[j]) = (modelOfRank[j], modelOfRank[i]);
                }

                var rankOfModel = new int[Models];
                for (var rank = 0; rank < Models; rank++)
                {
                    rankOfModel[modelOfRank[rank]] = rank;
                }

                _periods[period] = entry = (modelOfRank, rankOfModel);
            }

            return entry;
        }
    }
}

/// <summary>The coldest quarter of the models: the last quarter of the popularity ranks (at least one rank). With a
/// rotating hot set, a request belongs to it when its model held one of those ranks when the request was sent.</summary>
internal static class ColdQuarter
{
    /// <summary>The first rank (0-based) of the coldest quarter of <paramref name="models"/> ranks.</summary>
    public static int FirstRank(int models) => models - Math.Max(1, models / 4);

    public static bool Contains(int rank, int models) => rank >= FirstRank(models);
}
