namespace ServerlessInference.Workers;

/// <summary>The worker's fair rule across the affinity keys it holds warm: stride scheduling (weighted fair queueing by
/// jobs served). Each key has a pass; serving <c>n</c> jobs of a key advances its pass by <c>n / weight</c>; the key
/// with the lowest pass is owed most and comes first.</summary>
/// <remarks>
/// <para>Two rules keep a key from banking credit it could spend all at once: a key that becomes warm starts at the
/// lowest pass of the keys already warm (not at zero), and a warm key the queue skipped because it had nothing waiting
/// (it came before the first key served in the order) is raised to that key's pass. Ties go by ordinal name, so the
/// order is a pure function of what was served.</para>
/// <para>Not thread-safe: one worker loop owns it.</para>
/// </remarks>
public sealed class FairShare
{
    // Passes are rebased when they grow this large, so doubles keep their precision over a long-lived worker.
    private const double RebaseAbove = 1e9;

    private readonly Dictionary<string, double> _pass = new(StringComparer.Ordinal);

    /// <summary>The keys tracked now with their passes (for tests and diagnostics).</summary>
    public IReadOnlyDictionary<string, double> Passes => _pass;

    /// <summary>Orders <paramref name="warmKeys"/>, the key owed most first. Keys no longer warm are forgotten (one that
    /// comes back starts afresh); a new key starts at the lowest pass of the keys that stay.</summary>
    public IReadOnlyList<string> Order(IEnumerable<string> warmKeys)
    {
        var warm = warmKeys as IReadOnlySet<string> ?? new HashSet<string>(warmKeys, StringComparer.Ordinal);
        List<string>? gone = null;
        var floor = double.PositiveInfinity;
        foreach (var (key, pass) in _pass)
        {
            if (!warm.Contains(key))
            {
                (gone ??= []).Add(key);
            }
            else if (pass < floor)
            {
                floor = pass;
            }
        }

        if (gone is not null)
        {
            foreach (var key in gone)
            {
                _pass.Remove(key);
            }
        }

        if (double.IsPositiveInfinity(floor))
        {
            floor = 0;
        }

        foreach (var key in warm)
        {
            _pass.TryAdd(key, floor);
        }

        var order = warm.ToList();
        order.Sort((a, b) =>
        {
            var byPass = _pass[a].CompareTo(_pass[b]);
            return byPass != 0 ? byPass : string.CompareOrdinal(a, b);
        });
        return order;
    }

    /// <summary>Accounts one receive made with <paramref name="order"/> (from <see cref="Order"/>): the jobs it returned
    /// per key, and <paramref name="weightOf"/> each key's weight (the model's manifest <c>weight</c>, positive).</summary>
    /// <remarks>Keys received that are not in the order (an overdue or cold key the worker is about to load) are not
    /// tracked until they are warm.</remarks>
    public void Served(IReadOnlyList<string> order, IReadOnlyDictionary<string, int> received, Func<string, double> weightOf)
    {
        var first = -1;
        for (var i = 0; i < order.Count; i++)
        {
            if (received.TryGetValue(order[i], out var count) && count > 0)
            {
                first = i;
                break;
            }
        }

        if (first < 0)
        {
            return;
        }

        // The queue fills a batch key by key in the order given: the keys before the first one served had nothing
        // waiting. Idle keys do not bank credit.
        var reached = _pass[order[first]];
        for (var i = 0; i < first; i++)
        {
            if (_pass[order[i]] < reached)
            {
                _pass[order[i]] = reached;
            }
        }

        foreach (var key in order)
        {
            if (received.TryGetValue(key, out var count) && count > 0)
            {
                var weight = weightOf(key);
                _pass[key] += count / (double.IsFinite(weight) && weight > 0 ? weight : 1);
            }
        }

        var min = _pass.Values.Min();
        if (min > RebaseAbove)
        {
            foreach (var key in _pass.Keys.ToList())
            {
                _pass[key] -= min;
            }
        }
    }
}
