using ServerlessInference.Scaling;

namespace ServerlessInference.Tests.Scaling;

public sealed class ScalingPolicyTests
{
    private static readonly DateTimeOffset T0 = new(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);

    private static readonly ScalingOptions Options = new()
    {
        MinReplicas = 0,
        MaxReplicas = 4,
        TargetJobsPerWorker = 10,
        ActivationThreshold = 3,
        ScaleDownStabilization = TimeSpan.FromSeconds(30),
        IdleToZero = TimeSpan.FromSeconds(60),
    };

    private static ScalingDecision Decide(long queued, long inFlight, int current, int busy = 0, double at = 0, ScalingState? state = null) =>
        ScalingPolicy.Decide(new ScalingInput(queued, inFlight, current, busy, T0.AddSeconds(at)), state ?? ScalingState.Initial, Options).Decision;

    [Theory]
    [InlineData(0, 0)]
    [InlineData(2, 0)]
    [InlineData(3, 1)]
    [InlineData(25, 3)]
    [InlineData(1000, 4)]
    public void Decide_FromZero_ActivatesAtThresholdAndClampsToMax(long queued, int expected) =>
        Assert.Equal(expected, Decide(queued, 0, current: 0).DesiredReplicas);

    [Fact]
    public void Decide_LoadRises_ScalesUpAtOnce()
    {
        var decision = Decide(queued: 31, inFlight: 0, current: 1);

        Assert.Equal(4, decision.DesiredReplicas);
        Assert.StartsWith("scale up", decision.Reason);
    }

    [Fact]
    public void Decide_MinReplicas_IsAFloor()
    {
        var options = new ScalingOptions { MinReplicas = 2, MaxReplicas = 4, TargetJobsPerWorker = 10 };
        var (decision, _) = ScalingPolicy.Decide(new ScalingInput(0, 0, 0, 0, T0), ScalingState.Initial, options);
        Assert.Equal(2, decision.DesiredReplicas);
    }

    [Fact]
    public void Decide_LoadFalls_HoldsUntilTheWholeWindowWasLower()
    {
        var state = ScalingState.Initial;
        var decisions = new List<ScalingDecision>();
        // 4 workers; the load drops to what 2 workers carry and stays there.
        for (var second = 0; second <= 40; second += 5)
        {
            var (decision, next) = ScalingPolicy.Decide(new ScalingInput(15, 0, 4, 0, T0.AddSeconds(second)), state, Options);
            decisions.Add(decision);
            state = next;
        }

        Assert.All(decisions.Where(d => d.At < T0.AddSeconds(30)), d => Assert.Equal(4, d.DesiredReplicas));
        Assert.Equal(2, decisions.Single(d => d.At == T0.AddSeconds(30)).DesiredReplicas);
    }

    [Fact]
    public void Decide_LoadDipsInsideTheWindow_RestartsTheWindow()
    {
        var state = ScalingState.Initial;
        (_, state) = ScalingPolicy.Decide(new ScalingInput(5, 0, 4, 0, T0), state, Options);
        (_, state) = ScalingPolicy.Decide(new ScalingInput(40, 0, 4, 0, T0.AddSeconds(20)), state, Options);
        var (decision, _) = ScalingPolicy.Decide(new ScalingInput(5, 0, 4, 0, T0.AddSeconds(35)), state, Options);

        Assert.Equal(4, decision.DesiredReplicas);
        Assert.StartsWith("hold", decision.Reason);
    }

    [Fact]
    public void Decide_QueueEmpty_GoesToZeroOnlyAfterTheIdleWindow()
    {
        var state = ScalingState.Initial;
        (_, state) = ScalingPolicy.Decide(new ScalingInput(5, 0, 1, 0, T0), state, Options);
        var desired = new Dictionary<int, int>();
        for (var second = 5; second <= 70; second += 5)
        {
            (var decision, state) = ScalingPolicy.Decide(new ScalingInput(0, 0, 1, 0, T0.AddSeconds(second)), state, Options);
            desired[second] = decision.DesiredReplicas;
        }

        Assert.Equal(1, desired[55]);
        Assert.Equal(0, desired[60]);
    }

    [Fact]
    public void Decide_BusyWorkers_AreNeverScaledAway()
    {
        var state = ScalingState.Initial;
        for (var second = 0; second <= 200; second += 10)
        {
            (var decision, state) = ScalingPolicy.Decide(new ScalingInput(0, 3, 4, 3, T0.AddSeconds(second)), state, Options);
            Assert.True(decision.DesiredReplicas >= 3, $"at {second}s desired {decision.DesiredReplicas}");
        }
    }

    [Fact]
    public void Decide_RegistryListsMoreBusyWorkersThanRun_NeverScalesPastThem()
    {
        // A crashed worker still heartbeats as busy until its TTL: 3 busy in the registry, 2 replicas running.
        var decision = Decide(queued: 0, inFlight: 15, current: 2, busy: 3);

        Assert.Equal(2, decision.DesiredReplicas);
    }
}
