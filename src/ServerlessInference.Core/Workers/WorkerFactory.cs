using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Streaming;
using ServerlessInference.Telemetry;

namespace ServerlessInference.Workers;

/// <summary>Creates <see cref="InferenceWorker"/> loops wired to this process's queue, results, warm pool and registry.</summary>
public sealed class WorkerFactory(
    IJobQueue queue,
    IResultStore results,
    WarmPool pool,
    ModelCatalog catalog,
    IWorkerRegistry registry,
    IOptions<WorkerOptions> options,
    TimeProvider timeProvider,
    InferenceMetrics metrics,
    ILogger<InferenceWorker> logger,
    IJobStreams? streams = null,
    WorkerStartup? startup = null,
    Scaling.IPlacementBoard? placements = null)
{
    /// <summary>One per process: the worker loops share the warm pool it loads into.</summary>
    private readonly WarmPlacement? _placement = placements is null ? null : new WarmPlacement(placements, pool, catalog, timeProvider, logger);

    /// <summary>A new worker loop; the first one created marks the host's runtime ready (a cold start's stage).</summary>
    public InferenceWorker Create(string id)
    {
        if (startup is { RuntimeReadyAt: null })
        {
            startup.RuntimeReadyAt = timeProvider.GetUtcNow();
        }

        return new(id, queue, results, pool, catalog, registry, options.Value, timeProvider, metrics, logger, streams, startup) { Placement = _placement };
    }
}
