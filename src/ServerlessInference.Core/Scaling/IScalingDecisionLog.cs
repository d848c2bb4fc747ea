namespace ServerlessInference.Scaling;

/// <summary>Where the scaler records its decisions for <c>/status</c> (an in-process ring, a capped Redis stream),
/// and the scaler's memory between ticks (<see cref="ScalingState"/>: the stabilization window, when work was last
/// seen), kept beside the registry rather than in the scaler's process.</summary>
/// <remarks>Thread-safe. Keeps a bounded number of recent decisions; older ones fall off. The state lives as long as
/// the backing service: a Functions timer tick that lands on another instance, or a restarted host, decides from
/// the same windows as the tick before it.</remarks>
public interface IScalingDecisionLog
{
    ValueTask AppendAsync(ScalingDecision decision, CancellationToken cancellationToken);

    /// <summary>The most recent decisions, newest first.</summary>
    ValueTask<IReadOnlyList<ScalingDecision>> ReadRecentAsync(int count, CancellationToken cancellationToken);

    /// <summary>The state the last tick left, or null before the first tick.</summary>
    ValueTask<ScalingState?> ReadStateAsync(CancellationToken cancellationToken);

    /// <summary>Replaces the stored state with the one a tick just computed.</summary>
    ValueTask WriteStateAsync(ScalingState state, CancellationToken cancellationToken);
}
