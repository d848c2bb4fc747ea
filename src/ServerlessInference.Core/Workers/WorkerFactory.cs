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
    IJobStreams? streams = null)
{
    public InferenceWorker Create(string id) =>
        new(id, queue, results, pool, catalog, registry, options.Value, timeProvider, metrics, logger, streams);
}
