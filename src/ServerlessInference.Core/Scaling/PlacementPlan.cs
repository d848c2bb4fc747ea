namespace ServerlessInference.Scaling;

/// <summary>One model the scaler wants warm on one worker (a <c>min_warm</c> copy it lacks).</summary>
public sealed record PlacementOrder(string WorkerId, string Model);

/// <summary>What the scaler asks of the workers on one tick: models to load ahead of traffic, and models that must stay.</summary>
/// <param name="At">The tick that made it.</param>
/// <param name="ExpiresAt">After this a worker ignores it (a scaler that stopped ticking leaves no stale orders).</param>
/// <param name="Loads">Per worker, the models to load (each worker acts only on its own).</param>
/// <param name="Keep">Models that a load may never evict to make room: those with queued or in-flight work and those with
/// <c>min_warm</c> above zero.</param>
public sealed record PlacementPlan(DateTimeOffset At, DateTimeOffset ExpiresAt, IReadOnlyList<PlacementOrder> Loads, IReadOnlyList<string> Keep)
{
    /// <summary>How long a plan stays good: long enough to outlive a few missed ticks, short enough that orders of a
    /// scaler that stopped do not linger.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(60);
}

/// <summary>Where the scaler publishes its <see cref="PlacementPlan"/> and workers read it (an in-process slot, a Redis
/// key beside the scaling log), so the plan reaches workers in other processes.</summary>
/// <remarks>Thread-safe. Holds the latest plan only; a publish replaces it. Readers check
/// <see cref="PlacementPlan.ExpiresAt"/> against their own clock.</remarks>
public interface IPlacementBoard
{
    ValueTask PublishAsync(PlacementPlan plan, CancellationToken cancellationToken);

    /// <summary>The latest plan published, or null when there is none.</summary>
    ValueTask<PlacementPlan?> ReadAsync(CancellationToken cancellationToken);
}

/// <summary>The scale-down choice and the placement orders of one tick (see <see cref="ScalingPolicy.Place"/>).</summary>
/// <param name="StopFirst">Workers to stop first, best first, when the decision lowers the replicas; never a busy one.</param>
/// <param name="Loads">Models to load where, to reach every <c>min_warm</c>.</param>
/// <param name="Keep">Models a placement load may not evict.</param>
public sealed record PlacementAdvice(IReadOnlyList<string> StopFirst, IReadOnlyList<PlacementOrder> Loads, IReadOnlyList<string> Keep)
{
    public static PlacementAdvice None { get; } = new([], [], []);
}
