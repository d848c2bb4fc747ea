using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using ServerlessInference.Models;
using ServerlessInference.Onnx;
using ServerlessInference.Workers;

namespace ServerlessInference.Worker;

/// <summary>Runs one <see cref="InferenceWorker"/> loop for the life of the process; SIGTERM drains it
/// (stop receiving, finish the batch, release what was not started) before the process exits.</summary>
public sealed partial class WorkerService(
    WorkerFactory factory,
    WarmPool pool,
    IInferenceEngine engine,
    IOptions<WorkerHostOptions> options,
    ILogger<WorkerService> logger)
    : BackgroundService
{
    private InferenceWorker? _worker;

    public string Id { get; } = options.Value.ResolveId();

    /// <summary><c>CUDA</c> or <c>CPU</c>: what every heartbeat (and so <c>/status</c>) and <c>/healthz</c> report.</summary>
    public string ExecutionProvider => pool.ExecutionProvider;

    /// <summary>Why: <c>device 0</c>, or <c>CUDA unavailable: reason</c> after a fallback to the CPU.</summary>
    public string? ExecutionProviderDetail => (engine as OnnxInferenceEngine)?.ExecutionProviderDetail;

    public string State => _worker?.State.ToString().ToLowerInvariant() ?? "starting";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        _worker = factory.Create(Id);
        Log.Starting(logger, Id, pool.ExecutionProvider);
        using var drain = stoppingToken.Register(() => _worker.RequestStop());
        try
        {
            await _worker.RunAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch
        {
            // The host stops; an orchestrator (or the scaler) must see a failure, not a clean exit.
            Environment.ExitCode = 1;
            throw;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Worker process {WorkerId} starting; execution provider {Provider}")]
        public static partial void Starting(ILogger logger, string workerId, string provider);
    }
}

/// <summary>The <c>/healthz</c> document of a worker process.</summary>
public sealed record WorkerHealth(string Id, string ExecutionProvider, string? ExecutionProviderDetail, string State);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(WorkerHealth))]
internal sealed partial class WorkerJsonContext : JsonSerializerContext;
