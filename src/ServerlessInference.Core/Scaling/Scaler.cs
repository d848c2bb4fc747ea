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
    IOptions<ScalingOptions> options,
    TimeProvider timeProvider,
    InferenceMetrics metrics,
    ILogger<Scaler> logger)
{
    private const int History = 50;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly LinkedList<ScalingDecision> _decisions = new();
    private ScalingState _state = ScalingState.Initial;

    /// <summary>The most recent decisions, newest first.</summary>
    public IReadOnlyList<ScalingDecision> RecentDecisions
    {
        get
        {
            lock (_decisions)
            {
                return [.. _decisions];
            }
        }
    }

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
            Record(decision);
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

    private void Record(ScalingDecision decision)
    {
        lock (_decisions)
        {
            var last = _decisions.First?.Value;
            // Keep changes and the latest steady state; a run of identical holds would push history out.
            if (last is not null && last.CurrentReplicas == decision.CurrentReplicas && last.DesiredReplicas == decision.DesiredReplicas
                && decision.DesiredReplicas == decision.CurrentReplicas)
            {
                _decisions.RemoveFirst();
            }

            _decisions.AddFirst(decision);
            while (_decisions.Count > History)
            {
                _decisions.RemoveLast();
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Scaling workers {Current} -> {Desired}: {Reason}")]
        public static partial void Scaling(ILogger logger, int current, int desired, string reason);

        [LoggerMessage(2, LogLevel.Error, "The orchestrator failed to set {Desired} workers; retrying on the next tick")]
        public static partial void OrchestratorFailed(ILogger logger, Exception exception, int desired);
    }
}
