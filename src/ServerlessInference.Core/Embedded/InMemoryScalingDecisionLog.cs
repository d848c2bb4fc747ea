using ServerlessInference.Scaling;

namespace ServerlessInference.Embedded;

/// <summary>An in-process ring of recent scaling decisions. A run of identical steady decisions keeps only the
/// latest, so changes are not pushed out by a quiet hour.</summary>
public sealed class InMemoryScalingDecisionLog(int capacity = 50) : IScalingDecisionLog
{
    private readonly LinkedList<ScalingDecision> _decisions = new();
    private ScalingState? _state;

    public ValueTask AppendAsync(ScalingDecision decision, CancellationToken cancellationToken)
    {
        lock (_decisions)
        {
            if (_decisions.First?.Value is { } last && IsSteadyRepeat(last, decision))
            {
                _decisions.RemoveFirst();
            }

            _decisions.AddFirst(decision);
            while (_decisions.Count > capacity)
            {
                _decisions.RemoveLast();
            }
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<IReadOnlyList<ScalingDecision>> ReadRecentAsync(int count, CancellationToken cancellationToken)
    {
        lock (_decisions)
        {
            return ValueTask.FromResult<IReadOnlyList<ScalingDecision>>(_decisions.Take(count).ToList());
        }
    }

    public ValueTask<ScalingState?> ReadStateAsync(CancellationToken cancellationToken) => ValueTask.FromResult(Volatile.Read(ref _state));

    public ValueTask WriteStateAsync(ScalingState state, CancellationToken cancellationToken)
    {
        Volatile.Write(ref _state, state);
        return ValueTask.CompletedTask;
    }

    /// <summary>True when <paramref name="next"/> repeats a steady <paramref name="last"/> (same replicas, no change).</summary>
    public static bool IsSteadyRepeat(ScalingDecision last, ScalingDecision next) =>
        last.CurrentReplicas == next.CurrentReplicas && last.DesiredReplicas == next.DesiredReplicas
        && next.DesiredReplicas == next.CurrentReplicas;
}
