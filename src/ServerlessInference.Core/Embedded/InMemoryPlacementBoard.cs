using ServerlessInference.Scaling;

namespace ServerlessInference.Embedded;

/// <summary>An in-process <see cref="IPlacementBoard"/>: one slot holding the latest plan, for workers in the scaler's process.</summary>
public sealed class InMemoryPlacementBoard : IPlacementBoard
{
    private PlacementPlan? _plan;

    public ValueTask PublishAsync(PlacementPlan plan, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(plan);
        cancellationToken.ThrowIfCancellationRequested();
        Volatile.Write(ref _plan, plan);
        return ValueTask.CompletedTask;
    }

    public ValueTask<PlacementPlan?> ReadAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Volatile.Read(ref _plan));
    }
}
