using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using ServerlessInference.Jobs;
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
    IJobQueue queue,
    IWorkerRegistry registry,
    StandbyActivation activation,
    IOptions<WorkerHostOptions> options,
    IHostApplicationLifetime lifetime,
    ILogger<WorkerService> logger)
    : BackgroundService
{
    private InferenceWorker? _worker;
    private volatile bool _standby;

    public string Id { get; } = options.Value.ResolveId();

    /// <summary><c>CUDA</c> or <c>CPU</c>: what every heartbeat (and so <c>/status</c>) and <c>/healthz</c> report.</summary>
    public string ExecutionProvider => pool.ExecutionProvider;

    /// <summary>Why: <c>device 0</c>, or <c>CUDA unavailable: reason</c> after a fallback to the CPU.</summary>
    public string? ExecutionProviderDetail => (engine as OnnxInferenceEngine)?.ExecutionProviderDetail;

    public string State => _worker?.State.ToString().ToLowerInvariant() ?? (_standby ? "standby" : "starting");

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var worker = factory.Create(Id);
        if (options.Value.Standby && !await WaitForActivationAsync(stoppingToken).ConfigureAwait(false))
        {
            return;
        }

        _worker = worker;
        StartupTimeline.Mark("loop");
        Log.Starting(logger, Id, pool.ExecutionProvider, StartupTimeline.Describe());
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

    /// <summary>Waits, unregistered and taking no jobs, for a line on standard input. False when the host is stopping
    /// or standard input ended (the orchestrator is gone): the process then exits without having served.</summary>
    private async Task<bool> WaitForActivationAsync(CancellationToken stoppingToken)
    {
        try
        {
            // Read-only calls that open the connections and compile the client paths the first heartbeat and receive
            // take, so an activated standby does not pay for them.
            await registry.ListAsync(stoppingToken).ConfigureAwait(false);
            await queue.GetDepthAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
        {
            // The worker loop meets the same failure and handles it as it always does.
            Log.WarmUpFailed(logger, ex, Id);
        }
        catch (OperationCanceledException)
        {
            return false;
        }

        Log.Standby(logger, Id, StartupTimeline.Describe());
        _standby = true;
        string? line;
        try
        {
            line = await activation.WaitAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return false;
        }
        finally
        {
            _standby = false;
        }

        if (line is null)
        {
            Log.StandbyInputEnded(logger, Id);
            // Once started: a stop while the host is still starting fails its start instead.
            lifetime.ApplicationStarted.Register(lifetime.StopApplication);
            return false;
        }

        StartupTimeline.Mark("activated");
        return true;
    }

    private static partial class Log
    {
        [LoggerMessage(2, LogLevel.Information, "Worker process {WorkerId} is a standby: not registered, taking no jobs until activated; start-up since the process began: {Timeline}")]
        public static partial void Standby(ILogger logger, string workerId, string timeline);

        [LoggerMessage(3, LogLevel.Information, "Worker process {WorkerId}: standard input ended while on standby; stopping")]
        public static partial void StandbyInputEnded(ILogger logger, string workerId);

        [LoggerMessage(4, LogLevel.Warning, "Worker process {WorkerId}: warming up its connections on standby failed")]
        public static partial void WarmUpFailed(ILogger logger, Exception exception, string workerId);

        [LoggerMessage(1, LogLevel.Information, "Worker process {WorkerId} starting; execution provider {Provider}; start-up since the process began: {Timeline}")]
        public static partial void Starting(ILogger logger, string workerId, string provider, string timeline);
    }
}

/// <summary>The <c>/healthz</c> document of a worker process.</summary>
public sealed record WorkerHealth(string Id, string ExecutionProvider, string? ExecutionProviderDetail, string State);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(WorkerHealth))]
internal sealed partial class WorkerJsonContext : JsonSerializerContext;
