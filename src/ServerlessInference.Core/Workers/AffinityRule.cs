using ServerlessInference.Jobs;
using ServerlessInference.Models;

namespace ServerlessInference.Workers;

/// <summary>Builds a worker's <see cref="JobPreference"/> from what it holds warm and what the registry says of the
/// others. A pure function: the worker supplies the clock and the cached registry view.</summary>
public static class AffinityRule
{
    /// <summary>The preference of worker <paramref name="selfId"/>.</summary>
    /// <param name="warmInFairOrder">This worker's warm affinity keys, the one its fair rule owes most first.</param>
    /// <param name="workers">The registry's live workers (this one may be among them: it is skipped).</param>
    /// <param name="manifests">The latest manifest of each model by name (for <c>max_workers</c>).</param>
    /// <param name="now">This worker's clock.</param>
    /// <param name="staleAfter">A worker whose last heartbeat is older than this counts for nothing: it may be dead,
    /// and its jobs must not wait for it.</param>
    /// <param name="affinityWait">How long a job warm elsewhere waits for that worker.</param>
    /// <remarks>Other workers count when they are live, not stale and not draining (a draining worker takes no more
    /// jobs). <see cref="JobPreference.WarmElsewhere"/> is the models they hold warm; <see cref="JobPreference.Closed"/>
    /// is the models not warm here that <c>max_workers</c> of them already hold.</remarks>
    public static JobPreference Build(
        string selfId,
        IReadOnlyList<string> warmInFairOrder,
        IReadOnlyList<WorkerStatus> workers,
        IReadOnlyDictionary<string, ModelManifest> manifests,
        DateTimeOffset now,
        TimeSpan staleAfter,
        TimeSpan affinityWait)
    {
        var warmHere = new HashSet<string>(warmInFairOrder.Select(JobPreference.ModelOf), StringComparer.Ordinal);
        var elsewhere = new HashSet<string>(StringComparer.Ordinal);
        var holders = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var worker in workers)
        {
            if (worker.Id == selfId || worker.State == WorkerState.Draining || now - worker.LastHeartbeat > staleAfter)
            {
                continue;
            }

            // A worker holding two versions of a model holds the model once.
            foreach (var model in worker.WarmModels.Select(m => m.Model).Distinct(StringComparer.Ordinal))
            {
                elsewhere.Add(model);
                holders[model] = holders.GetValueOrDefault(model) + 1;
            }
        }

        var closed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (model, count) in holders)
        {
            if (!warmHere.Contains(model) && manifests.TryGetValue(model, out var manifest) && manifest.MaxWorkers is { } max && count >= max)
            {
                closed.Add(model);
            }
        }

        return new JobPreference
        {
            Warm = warmInFairOrder,
            WarmElsewhere = elsewhere,
            Closed = closed,
            AffinityWait = affinityWait,
        };
    }

    /// <summary>The latest version's manifest of each model (<see cref="ModelVersions.Latest"/>), by name.</summary>
    public static IReadOnlyDictionary<string, ModelManifest> LatestByName(IEnumerable<ModelManifest> manifests) =>
        manifests
            .GroupBy(m => m.Name, StringComparer.Ordinal)
            .ToDictionary(
                g => g.Key,
                g => g.First(m => m.Version == ModelVersions.Latest(g.Select(v => v.Version))),
                StringComparer.Ordinal);
}
