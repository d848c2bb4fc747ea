using ServerlessInference.Scaling;

namespace ServerlessInference.Testing.Contracts;

/// <summary>What every <see cref="IScalingDecisionLog"/> must do. Derive once per provider.</summary>
public abstract class ScalingDecisionLogContract : ContractClock
{
    /// <summary>A fresh log no other test sees, keeping about <paramref name="capacity"/> decisions.</summary>
    protected abstract ValueTask<IScalingDecisionLog> CreateLogAsync(int capacity);

    private ScalingDecision Decision(int current, int desired, string reason = "load") =>
        new(Time.GetUtcNow(), current, desired, Queued: desired * 4, InFlight: current, reason);

    [Fact]
    public async Task ReadRecentAsync_NewestFirst_UpToCount()
    {
        var log = await CreateLogAsync(50);
        var decisions = new[] { Decision(0, 1), Decision(1, 3), Decision(3, 2), Decision(2, 0) };
        foreach (var decision in decisions)
        {
            await log.AppendAsync(decision, default);
        }

        Assert.Equal(decisions.Reverse(), await log.ReadRecentAsync(10, default));
        Assert.Equal(decisions.Reverse().Take(2), await log.ReadRecentAsync(2, default));
    }

    [Fact]
    public async Task AppendAsync_SteadyRepeat_KeepsOnlyTheLatest()
    {
        var log = await CreateLogAsync(50);
        await log.AppendAsync(Decision(0, 2), default);
        await log.AppendAsync(Decision(2, 2, "steady 1"), default);
        await log.AppendAsync(Decision(2, 2, "steady 2"), default);
        await log.AppendAsync(Decision(2, 2, "steady 3"), default);

        var recent = await log.ReadRecentAsync(10, default);

        Assert.Equal(["steady 3", "load"], recent.Select(d => d.Reason));
    }

    [Fact]
    public async Task ReadRecentAsync_Empty_ReturnsNothing()
    {
        var log = await CreateLogAsync(50);

        Assert.Empty(await log.ReadRecentAsync(10, default));
    }
}
