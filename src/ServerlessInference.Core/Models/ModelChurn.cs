using ServerlessInference.Workers;

namespace ServerlessInference.Models;

/// <summary>Loads and evictions per model over the last <see cref="ModelActivity.Window"/>, in one-minute buckets, so
/// memory stays bounded by the models seen, not by the events.</summary>
/// <remarks>Not thread-safe: the <see cref="WarmPool"/> calls it under its lock.</remarks>
internal sealed class ModelChurn(TimeProvider timeProvider)
{
    private static readonly int Buckets = (int)ModelActivity.Window.TotalMinutes;

    private readonly Dictionary<string, Counts> _models = new(StringComparer.Ordinal);

    public void Loaded(string model)
    {
        var (counts, i) = Bucket(model);
        counts.Loads[i]++;
    }

    public void Evicted(string model)
    {
        var (counts, i) = Bucket(model);
        counts.Evictions[i]++;
    }

    /// <summary>Each model with a load or an eviction in the window; models without one are dropped.</summary>
    public IReadOnlyList<ModelActivity> Snapshot()
    {
        var now = Minute();
        List<ModelActivity>? activity = null;
        List<string>? idle = null;
        foreach (var (model, counts) in _models)
        {
            int loads = 0, evictions = 0;
            for (var i = 0; i < Buckets; i++)
            {
                if (now - counts.Minutes[i] < Buckets)
                {
                    loads += counts.Loads[i];
                    evictions += counts.Evictions[i];
                }
            }

            if (loads + evictions == 0)
            {
                (idle ??= []).Add(model);
            }
            else
            {
                (activity ??= []).Add(new ModelActivity(model, loads, evictions));
            }
        }

        idle?.ForEach(m => _models.Remove(m));
        return activity is null ? [] : [.. activity.OrderBy(a => a.Model, StringComparer.Ordinal)];
    }

    private (Counts Counts, int Index) Bucket(string model)
    {
        if (!_models.TryGetValue(model, out var counts))
        {
            counts = new Counts();
            _models.Add(model, counts);
        }

        var minute = Minute();
        var index = (int)(minute % Buckets);
        if (counts.Minutes[index] != minute)
        {
            // The bucket last held an older minute (five or more ago): start it afresh.
            counts.Minutes[index] = minute;
            counts.Loads[index] = 0;
            counts.Evictions[index] = 0;
        }

        return (counts, index);
    }

    private long Minute() => timeProvider.GetUtcNow().ToUnixTimeSeconds() / 60;

    private sealed class Counts
    {
        public long[] Minutes { get; } = Enumerable.Repeat(long.MinValue / 2, Buckets).ToArray();
        public int[] Loads { get; } = new int[Buckets];
        public int[] Evictions { get; } = new int[Buckets];
    }
}
