using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Telemetry;
using ServerlessInference.Workers;

namespace ServerlessInference.Scaling;

/// <summary>One scaler tick: read depth and workers, run <see cref="ScalingPolicy"/>, record the decision, tell the orchestrator.</summary>
/// <remarks>Ticks are serialized; a failed orchestrator call is logged and retried on the next tick. The policy's
/// state is read from and written back to <see cref="IScalingDecisionLog"/> on every tick (Redis when the registry is
/// Redis), so scalers on several instances (a Functions timer lands on any of them) decide from one set of windows.
/// Ticks of different instances are not locked against each other: the Functions timer trigger runs one instance at a
/// time, and the DevHost runs one scaler. When the stored state cannot be read or written, the tick goes on from the
/// state this instance saw last.
/// <para>With a <see cref="ModelCatalog"/> the policy sees every model's <c>min_warm</c>, <c>max_workers</c> and size (a
/// catalog that cannot be listed counts as no models this tick); with an <see cref="IPlacementBoard"/> each tick
/// publishes its <see cref="PlacementPlan"/> there for the workers. A scale-down names the workers to stop first
/// (<see cref="ScalingPolicy.Place"/>).</para></remarks>
public sealed partial class Scaler(
    IJobQueue queue,
    IWorkerRegistry registry,
    IWorkerOrchestrator orchestrator,
    IScalingDecisionLog decisions,
    IOptions<ScalingOptions> options,
    TimeProvider timeProvider,
    InferenceMetrics metrics,
    ILogger<Scaler> logger,
    ModelCatalog? catalog = null,
    IPlacementBoard? placements = null)
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
            var input = new ScalingInput(depth.Queued, depth.InFlight, current, busy, timeProvider.GetUtcNow())
            {
                ByModel = depth.ByModel,
                Workers = workers,
                Models = await ListModelsAsync(cancellationToken).ConfigureAwait(false),
            };
            var state = await ReadStateAsync(cancellationToken).ConfigureAwait(false);
            (var decision, _state) = ScalingPolicy.Decide(input, state, options.Value);
            var advice = ScalingPolicy.Place(input, decision);
            await WriteStateAsync(_state, cancellationToken).ConfigureAwait(false);
            await RecordAsync(decision, cancellationToken).ConfigureAwait(false);
            await PublishAsync(decision, advice, cancellationToken).ConfigureAwait(false);
            if (decision.DesiredReplicas != current)
            {
                Log.Scaling(logger, current, decision.DesiredReplicas, decision.Reason);
                try
                {
                    await orchestrator.SetReplicasAsync(decision.DesiredReplicas, advice.StopFirst, cancellationToken).ConfigureAwait(false);
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

    private async ValueTask<IReadOnlyList<ModelManifest>?> ListModelsAsync(CancellationToken cancellationToken)
    {
        if (catalog is null)
        {
            return null;
        }

        try
        {
            return await catalog.ListAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.ModelsFailed(logger, ex);
            return null;
        }
    }

    private async ValueTask PublishAsync(ScalingDecision decision, PlacementAdvice advice, CancellationToken cancellationToken)
    {
        if (placements is null)
        {
            return;
        }

        try
        {
            await placements.PublishAsync(
                new PlacementPlan(decision.At, decision.At + PlacementPlan.Lifetime, advice.Loads, advice.Keep), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Placement is ahead-of-traffic work; the next tick publishes again.
            Log.PlacementFailed(logger, ex);
        }
    }

    private async ValueTask<ScalingState> ReadStateAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await decisions.ReadStateAsync(cancellationToken).ConfigureAwait(false) ?? ScalingState.Initial;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.StateFailed(logger, ex);
            return _state;
        }
    }

    private async ValueTask WriteStateAsync(ScalingState state, CancellationToken cancellationToken)
    {
        try
        {
            await decisions.WriteStateAsync(state, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.StateFailed(logger, ex);
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

        [LoggerMessage(4, LogLevel.Warning, "The shared scaling state could not be read or stored; this tick uses this instance's last view")]
        public static partial void StateFailed(ILogger logger, Exception exception);

        [LoggerMessage(5, LogLevel.Warning, "The model list could not be read; this tick places no models")]
        public static partial void ModelsFailed(ILogger logger, Exception exception);

        [LoggerMessage(6, LogLevel.Warning, "Publishing the placement plan failed; the next tick publishes again")]
        public static partial void PlacementFailed(ILogger logger, Exception exception);
    }
}
