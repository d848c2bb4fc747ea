namespace ServerlessInference.Scaling;

/// <summary>Where the scaler records its decisions for <c>/status</c> (an in-process ring, a capped Redis stream).</summary>
/// <remarks>Thread-safe. Keeps a bounded number of recent decisions; older ones fall off.</remarks>
public interface IScalingDecisionLog
{
    ValueTask AppendAsync(ScalingDecision decision, CancellationToken cancellationToken);

    /// <summary>The most recent decisions, newest first.</summary>
    ValueTask<IReadOnlyList<ScalingDecision>> ReadRecentAsync(int count, CancellationToken cancellationToken);
}
