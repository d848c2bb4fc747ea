using ServerlessInference.Scaling;

namespace ServerlessInference.Testing.Contracts;

/// <summary>What every <see cref="IPlacementBoard"/> must do. Derive once per provider.</summary>
public abstract class PlacementBoardContract : ContractClock
{
    /// <summary>A fresh board no other test sees.</summary>
    protected abstract ValueTask<IPlacementBoard> CreateBoardAsync();

    private PlacementPlan Plan(params PlacementOrder[] loads)
    {
        // Whole milliseconds: what a board stores as text must read back equal.
        var at = DateTimeOffset.FromUnixTimeMilliseconds(Time.GetUtcNow().ToUnixTimeMilliseconds());
        return new PlacementPlan(at, at + PlacementPlan.Lifetime, loads, ["busy", "kept"]);
    }

    [Fact]
    public async Task ReadAsync_NothingPublished_ReturnsNull()
    {
        var board = await CreateBoardAsync();

        Assert.Null(await board.ReadAsync(default));
    }

    [Fact]
    public async Task PublishAsync_ThenRead_ReturnsThePlan()
    {
        var board = await CreateBoardAsync();
        var plan = Plan(new PlacementOrder("worker-1", "resnet"), new PlacementOrder("worker-2", "bert"));

        await board.PublishAsync(plan, default);
        var read = await board.ReadAsync(default);

        Assert.NotNull(read);
        Assert.Equal(plan.At, read.At);
        Assert.Equal(plan.ExpiresAt, read.ExpiresAt);
        Assert.Equal(plan.Loads, read.Loads);
        Assert.Equal(plan.Keep, read.Keep);
    }

    [Fact]
    public async Task PublishAsync_Again_ReplacesThePlan()
    {
        var board = await CreateBoardAsync();
        await board.PublishAsync(Plan(new PlacementOrder("worker-1", "resnet")), default);
        await AdvanceAsync(TimeSpan.FromMilliseconds(5));
        var latest = Plan();

        await board.PublishAsync(latest, default);
        var read = await board.ReadAsync(default);

        Assert.NotNull(read);
        Assert.Empty(read.Loads);
        Assert.Equal(latest.At, read.At);
    }

    [Fact]
    public async Task PublishAsync_CancelledToken_ThrowsAndKeepsThePlan()
    {
        var board = await CreateBoardAsync();
        await board.PublishAsync(Plan(new PlacementOrder("worker-1", "resnet")), default);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => board.PublishAsync(Plan(), new CancellationToken(canceled: true)).AsTask());

        Assert.Single((await board.ReadAsync(default))!.Loads);
    }
}
