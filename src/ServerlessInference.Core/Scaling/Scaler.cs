using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Jobs;
using ServerlessInference.Telemetry;
using ServerlessInference.Workers;

namespace ServerlessInference.Scaling;

/// <summary>One scaler tick: read depth and workers, run <see cref="ScalingPolicy"/>, record the decision, tell the orchestrator.</summary>
/// <remarks>Ticks are serialized; a failed orchestrator call is logged and retried on the next tick.</remarks>
public sealed partial class Scaler(
    IJobQueue queue,
    IWorkerRegistry registry,
    IWorkerOrchestrator orchestrator,
    IScalingDecisionLog decisions,
    IOptions<ScalingOptions> options,
    TimeProvider timeProvider,
    InferenceMetrics metrics,
    ILogger<Scaler> logger)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ScalingState _state = ScalingState.Initial;

    public async ValueTask<ScalingDecision> TickAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var depth = await queue.GetDepthAsync(cancellationToken).ConfigureAwait(false);
            metrics.Depth(depth.Queued, depth.InFlight);
            var workers = await registry.ListAsync(cancellationToken).ConfigureAwait(false);
            var current = await orchestrator.GetReplicasAsync(cancellationToken).ConfigureAwait(false);
            var busy = workers.Count(w => w.InFlight > 0 && w.State != WorkerState.Draining);
            var input = new ScalingInput(depth.Queued, depth.InFlight, current, busy, timeProvider.GetUtcNow());
            (var decision, _state) = ScalingPolicy.Decide(input, _state, options.Value);
            await RecordAsync(decision, cancellationToken).ConfigureAwait(false);
            if (decision.DesiredReplicas != current)
            {
                Log.Scaling(logger, current, decision.DesiredReplicas, decision.Reason);
                try
                {
                    await orchestrator.SetReplicasAsync(decision.DesiredReplicas, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.OrchestratorFailed(logger, ex, decision.DesiredReplicas);
                }
            }

            return decision;
        }
        finally
        {
            _gate.Release();
        }
    }

    private async ValueTask RecordAsync(ScalingDecision decision, CancellationToken cancellationToken)
    {
        try
        {
            await decisions.AppendAsync(decision, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The history is for people; losing an entry must not stop scaling.
            Log.RecordFailed(logger, ex);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Scaling workers {Current} -> {Desired}: {Reason}")]
        public static partial void Scaling(ILogger logger, int current, int desired, string reason);

        [LoggerMessage(2, LogLevel.Error, "The orchestrator failed to set {Desired} workers; retrying on the next tick")]
        public static partial void OrchestratorFailed(ILogger logger, Exception exception, int desired);

        [LoggerMessage(3, LogLevel.Warning, "Recording a scaling decision failed")]
        public static partial void RecordFailed(ILogger logger, Exception exception);
    }
}
