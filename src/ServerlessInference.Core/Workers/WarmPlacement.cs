using Microsoft.Extensions.Logging;
using ServerlessInference.Models;
using ServerlessInference.Scaling;

namespace ServerlessInference.Workers;

/// <summary>A worker's side of the scaler's <see cref="PlacementPlan"/>: on each heartbeat, loads the models the plan
/// orders for this worker (its <c>min_warm</c> copies) into the warm pool, ahead of traffic.</summary>
/// <remarks>
/// <para>A load goes ahead only when it fits the pool's budget, evicting at most idle models that the plan does not
/// keep (none with queued or in-flight work, none with <c>min_warm</c>) and that are not ordered here themselves
/// (<see cref="WarmPool.TryPreloadAsync"/>). A plan past its <see cref="PlacementPlan.ExpiresAt"/> is ignored.</para>
/// <para>Thread-safe; one per process, shared by its worker loops (one check per worker id at a time). Failures are
/// logged, never thrown: the next heartbeat tries again.</para>
/// </remarks>
public sealed partial class WarmPlacement(IPlacementBoard board, WarmPool pool, ModelCatalog catalog, TimeProvider timeProvider, ILogger logger)
{
    private readonly Dictionary<string, Task> _running = new(StringComparer.Ordinal);

    /// <summary>Starts one check for <paramref name="workerId"/> beside the caller, unless one runs already; returns
    /// the check (which never faults).</summary>
    public Task OnHeartbeat(string workerId)
    {
        lock (_running)
        {
            if (_running.TryGetValue(workerId, out var running) && !running.IsCompleted)
            {
                return running;
            }

            var check = Task.Run(() => ApplyAsync(workerId, CancellationToken.None));
            _running[workerId] = check;
            return check;
        }
    }

    /// <summary>Reads the plan and loads what it orders for <paramref name="workerId"/>; never throws but for cancellation.</summary>
    public async Task ApplyAsync(string workerId, CancellationToken cancellationToken)
    {
        try
        {
            var plan = await board.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (plan is null || plan.ExpiresAt <= timeProvider.GetUtcNow())
            {
                return;
            }

            var mine = plan.Loads.Where(o => o.WorkerId == workerId).Select(o => o.Model).Distinct(StringComparer.Ordinal).ToList();
            if (mine.Count == 0)
            {
                return;
            }

            var keep = new HashSet<string>(plan.Keep, StringComparer.Ordinal);
            keep.UnionWith(mine);
            var held = pool.Snapshot().Select(m => m.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var model in mine.Where(m => !held.Contains(m)))
            {
                var manifest = await catalog.GetAsync(model, null, cancellationToken).ConfigureAwait(false);
                if (await pool.TryPreloadAsync(manifest, name => !keep.Contains(name), cancellationToken).ConfigureAwait(false))
                {
                    Log.Placed(logger, workerId, manifest.Key);
                }
                else
                {
                    Log.NoRoom(logger, workerId, manifest.Key);
                }
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.Failed(logger, ex, workerId);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Worker {WorkerId} loaded {Model} ahead of traffic, as the scaler's placement plan asks (min_warm)")]
        public static partial void Placed(ILogger logger, string workerId, string model);

        [LoggerMessage(2, LogLevel.Debug, "Worker {WorkerId} has no room for {Model} without evicting a model that has work; the scaler places it elsewhere")]
        public static partial void NoRoom(ILogger logger, string workerId, string model);

        [LoggerMessage(3, LogLevel.Warning, "Worker {WorkerId} could not follow the placement plan; the next heartbeat tries again")]
        public static partial void Failed(ILogger logger, Exception exception, string workerId);
    }
}
