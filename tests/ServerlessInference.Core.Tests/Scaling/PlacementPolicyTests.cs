using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Protocol;
using ServerlessInference.Scaling;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Scaling;

/// <summary>The per-model rules of <see cref="ScalingPolicy"/>: demand for cold models, <c>min_warm</c>, <c>max_workers</c>,
/// and which workers a scale-down stops first.</summary>
public sealed class PlacementPolicyTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 4, 12, 0, 0, TimeSpan.Zero);

    private static readonly ScalingOptions Options = new()
    {
        MinReplicas = 0,
        MaxReplicas = 6,
        TargetJobsPerWorker = 10,
        ActivationThreshold = 1,
        ScaleDownStabilization = TimeSpan.FromSeconds(30),
        IdleToZero = TimeSpan.FromSeconds(60),
    };

    [Fact]
    public void Decide_ColdModelQueuedAndEveryWorkerFullOfModelsWithWork_ScalesUpOneWorker()
    {
        // Two workers, each budget full with three models that all have work; 'x' waits and fits nowhere.
        var input = Input(current: 2,
            byModel: Depths(("a", 0, 1), ("b", 0, 1), ("c", 0, 1), ("d", 0, 1), ("e", 0, 1), ("f", 0, 1), ("x", 1, 0)),
            workers: [Worker("w1", 300, "a", "b", "c"), Worker("w2", 300, "d", "e", "f")],
            models: Models("a", "b", "c", "d", "e", "f", "x"));

        var decision = Decide(input);

        Assert.Equal(3, decision.DesiredReplicas);
        Assert.StartsWith("scale up", decision.Reason);
        Assert.Contains("'x'", decision.Reason);
    }

    [Theory]
    [InlineData("free room")]
    [InlineData("an idle model nobody asks for")]
    public void Decide_ColdModelQueuedAndAWorkerHasRoom_DoesNotScaleUp(string room)
    {
        // The same, but the second worker has room: free bytes, or a model with no work that a load may evict.
        WorkerStatus second = room == "free room" ? Worker("w2", 300, "d", "e") : Worker("w2", 300, "d", "e", "idle");
        var input = Input(current: 2,
            byModel: Depths(("a", 0, 1), ("b", 0, 1), ("c", 0, 1), ("d", 0, 1), ("e", 0, 1), ("x", 1, 0)),
            workers: [Worker("w1", 300, "a", "b", "c"), second],
            models: Models("a", "b", "c", "d", "e", "idle", "x"));

        var decision = Decide(input);

        Assert.Equal(2, decision.DesiredReplicas);
        Assert.DoesNotContain("'x'", decision.Reason);
    }

    [Fact]
    public void Decide_ColdModelQueuedAtZeroBelowTheActivationThreshold_StaysAtZeroUntilTheThreshold()
    {
        // At zero workers every queued model is cold, so the cold-demand rule must wait for activation as depth does.
        var options = new ScalingOptions
        {
            MinReplicas = 0,
            MaxReplicas = 6,
            TargetJobsPerWorker = 10,
            ActivationThreshold = 3,
        };
        ScalingDecision At(int queued) => ScalingPolicy.Decide(
            Input(current: 0, byModel: Depths(("x", queued, 0)), workers: [], models: Models("x")), ScalingState.Initial, options).Decision;

        var below = At(2);
        Assert.Equal(0, below.DesiredReplicas);
        Assert.Contains("below the activation threshold 3", below.Reason);
        Assert.Equal(1, At(3).DesiredReplicas);
    }

    [Fact]
    public void Decide_ColdModelsThatShareOneNewWorker_AskForOneWorkerOnly()
    {
        // Two cold models of 100 bytes fit one new worker of the fleet's budget (300).
        var input = Input(current: 1,
            byModel: Depths(("a", 0, 1), ("b", 0, 1), ("c", 0, 1), ("x", 1, 0), ("y", 1, 0)),
            workers: [Worker("w1", 300, "a", "b", "c")],
            models: Models("a", "b", "c", "x", "y"));

        Assert.Equal(2, Decide(input).DesiredReplicas);
    }

    [Fact]
    public void Decide_ColdModelLargerThanAnyBudget_IsNotCounted()
    {
        var input = Input(current: 1,
            byModel: Depths(("a", 0, 1), ("huge", 1, 0)),
            workers: [Worker("w1", 300, "a", "b", "c")],
            models: [.. Models("a", "b", "c"), Model("huge", size: 1000)]);

        Assert.Equal(1, Decide(input).DesiredReplicas);
    }

    [Fact]
    public void Decide_MinWarm_KeepsReplicasAboveZeroFromZeroAndAfterTheIdleWindow()
    {
        var models = new[] { Model("a"), Model("d", minWarm: 1) };

        // No work, no workers: the model still wants one worker.
        var fromZero = Decide(Input(current: 0, byModel: Depths(), workers: [], models: models));
        Assert.Equal(1, fromZero.DesiredReplicas);
        Assert.Contains("min_warm", fromZero.Reason);

        // One idle worker holding it: long past the idle window, it stays.
        var state = ScalingState.Initial;
        for (var second = 0; second <= 300; second += 10)
        {
            var input = Input(current: 1, byModel: Depths(), workers: [Worker("w1", 300, "d")], models: models, at: second);
            (var decision, state) = ScalingPolicy.Decide(input, state, Options);
            Assert.Equal(1, decision.DesiredReplicas);
        }

        // Without min_warm the same fleet goes to zero.
        state = ScalingState.Initial;
        ScalingDecision last = null!;
        for (var second = 0; second <= 300; second += 10)
        {
            var input = Input(current: 1, byModel: Depths(), workers: [Worker("w1", 300, "d")], models: [Model("a"), Model("d")], at: second);
            (last, state) = ScalingPolicy.Decide(input, state, Options);
        }

        Assert.Equal(0, last.DesiredReplicas);
    }

    [Fact]
    public void Place_MinWarmModelWarmNowhere_OrdersItOntoAWorkerWithRoomAndKeepsIt()
    {
        var input = Input(current: 2,
            byModel: Depths(("a", 0, 1)),
            workers: [Worker("w1", 300, "a", "b", "c"), Worker("w2", 300, "e")],
            models: [.. Models("a", "b", "c", "e"), Model("d", minWarm: 1)]);

        var decision = Decide(input);
        var advice = ScalingPolicy.Place(input, decision);

        // w1's idle b and c could be evicted too, but first fit in id order lands on w1; either way one order, one copy.
        var order = Assert.Single(advice.Loads);
        Assert.Equal("d", order.Model);
        Assert.Equal(["a", "d"], advice.Keep);
        Assert.Equal(2, decision.DesiredReplicas);
    }

    [Fact]
    public void Decide_MinWarmCopiesThatNeedTwoWorkers_AskForTwo()
    {
        // Two min_warm models of 200 bytes cannot share a 300-byte worker; min_warm 2 needs two workers on its own.
        var twoModels = Decide(Input(current: 1, byModel: Depths(), workers: [Worker("w1", 300)],
            models: [Model("d", size: 200, minWarm: 1), Model("e", size: 200, minWarm: 1)]));
        var twoCopies = Decide(Input(current: 1, byModel: Depths(), workers: [Worker("w1", 300)],
            models: [Model("d", minWarm: 2)]));

        Assert.Equal(2, twoModels.DesiredReplicas);
        Assert.Equal(2, twoCopies.DesiredReplicas);
    }

    [Fact]
    public void Decide_ScaleDownWouldDropTheOnlyMinWarmCopyThatFitsNowhereElse_Holds()
    {
        // w1 is idle and holds the min_warm model; w2 is busy and full of models with work. The depth rule wants one
        // worker, and the only one a scale-down could stop is w1: its copy would fit nowhere, so both stay.
        var models = new[] { Model("kept", minWarm: 1), Model("a"), Model("b"), Model("c") };
        var state = ScalingState.Initial;
        for (var second = 0; second <= 120; second += 10)
        {
            var input = Input(current: 2, byModel: Depths(("a", 0, 1), ("b", 0, 1), ("c", 0, 1)),
                workers: [Worker("w1", 300, "kept"), Worker("w2", 300, inFlight: 3, "a", "b", "c")], models: models, at: second);
            (var decision, state) = ScalingPolicy.Decide(input, state, Options);
            Assert.Equal(2, decision.DesiredReplicas);
        }

        // With room on w2 for the copy, the same fleet goes down to one worker.
        state = ScalingState.Initial;
        ScalingDecision last = null!;
        for (var second = 0; second <= 120; second += 10)
        {
            var input = Input(current: 2, byModel: Depths(("a", 0, 1), ("b", 0, 1)),
                workers: [Worker("w1", 300, "kept"), Worker("w2", 300, inFlight: 2, "a", "b")], models: models, at: second);
            (last, state) = ScalingPolicy.Decide(input, state, Options);
        }

        Assert.Equal(1, last.DesiredReplicas);
    }

    [Fact]
    public void Decide_MaxWorkers_CapsAHotModelsContribution()
    {
        var workers = new[] { Worker("w1", 300, "hot"), Worker("w2", 300, "hot") };
        var capped = Decide(Input(current: 2, byModel: Depths(("hot", 1000, 0)), workers: workers, models: [Model("hot", maxWorkers: 2)]));
        var uncapped = Decide(Input(current: 2, byModel: Depths(("hot", 1000, 0)), workers: workers, models: [Model("hot")]));
        var withAnother = Decide(Input(current: 2, byModel: Depths(("hot", 1000, 0), ("other", 15, 0)), workers: workers,
            models: [Model("hot", maxWorkers: 2), Model("other", size: 100)]));

        Assert.Equal(2, capped.DesiredReplicas);
        Assert.Contains("max_workers", capped.Reason);
        Assert.Equal(6, uncapped.DesiredReplicas);
        // The hot model counts 20 jobs (2 workers' worth), the other its 15: 4 workers.
        Assert.Equal(4, withAnother.DesiredReplicas);
    }

    [Fact]
    public void Decide_DepthPerAffinityKey_IsSummedPerModel()
    {
        // A queue that keeps one partition per affinity key (model#prefix) reports depth per key.
        var workers = new[] { Worker("w1", 300, "hot", "b", "c"), Worker("w2", 300, "hot", "e", "f") };
        var models = new[] { Model("hot", maxWorkers: 2), Model("b"), Model("c"), Model("e"), Model("f"), Model("x") };
        var busy = Depths(("b", 0, 1), ("c", 0, 1), ("e", 0, 1), ("f", 0, 1));

        // max_workers caps the model's keys together: 1,000 jobs over two keys count as 20, not as two uncapped keys.
        var capped = Decide(Input(current: 2, byModel: With(busy, ("hot#p1", 500, 0), ("hot#p2", 500, 0)), workers: workers, models: models));
        Assert.Equal(3, capped.DesiredReplicas); // (20 + 4) / 10
        Assert.Contains("max_workers", capped.Reason);

        // A cold model seen only through its keys still asks for a worker; one warm anywhere does not.
        var cold = Decide(Input(current: 2, byModel: With(busy, ("hot", 0, 1), ("x#p1", 1, 0), ("x#p2", 1, 0)), workers: workers, models: models));
        Assert.Equal(3, cold.DesiredReplicas);
        Assert.Contains("'x' has 2 queued jobs", cold.Reason);
        var warm = Decide(Input(current: 2, byModel: With(busy, ("hot#p1", 1, 0)), workers: workers, models: models));
        Assert.Equal(2, warm.DesiredReplicas);
        Assert.DoesNotContain("no worker holds it", warm.Reason);
    }

    [Fact]
    public void Place_DepthPerAffinityKey_KeepsAndProtectsTheModel()
    {
        // 'gen' has work only under a prefix key: it is kept (not evictable for placement), and the worker holding its
        // only copy is stopped after the one whose model nobody asks for (counted per key, the two would tie on loss and
        // the lower id, w1, would go first).
        var input = Input(current: 2, byModel: Depths(("gen#abc", 2, 0)),
            workers: [Worker("w1", 300, "gen"), Worker("w2", 300, "spare")],
            models: [Model("gen"), Model("spare", size: 250), Model("kept", minWarm: 1)]);

        var advice = ScalingPolicy.Place(input, new ScalingDecision(T0, 2, 1, 2, 0, "scale down"));

        Assert.Equal(["w2"], advice.StopFirst);
        Assert.Equal(["gen", "kept"], advice.Keep);
    }

    [Fact]
    public void Decide_PerModelRules_KeepTheScaleUpAndScaleDownWindows()
    {
        // The per-model rules only change the raw recommendation: up at once, down after the stabilization window
        // (30 s), to zero after the idle window (60 s), as for the depth rule.
        var models = new[] { Model("a"), Model("b"), Model("c"), Model("x") };
        var full = new[] { Worker("w1", 300, "a", "b", "c") };
        var state = ScalingState.Initial;

        // t=0: 'x' is queued and w1 is full of models with work: a second worker at once.
        (var up, state) = ScalingPolicy.Decide(Input(current: 1, byModel: Depths(("a", 0, 1), ("b", 0, 1), ("c", 0, 1), ("x", 1, 0)),
            workers: full, models: models), state, Options);
        Assert.Equal(2, up.DesiredReplicas);
        Assert.StartsWith("scale up", up.Reason);

        // t=10: depth alone asks for more: up again at once (25 jobs / 10).
        (var depth, state) = ScalingPolicy.Decide(Input(current: 2, byModel: Depths(("a", 20, 1), ("b", 0, 1), ("c", 0, 1), ("x", 2, 0)),
            workers: [.. full, Worker("w2", 300, "x")], models: models, at: 10), state, Options);
        Assert.Equal(3, depth.DesiredReplicas);
        Assert.StartsWith("scale up", depth.Reason);

        // From t=20 on: no work at all. Three idle workers hold until the window has been lower for 30 s (t=50), then one
        // stays until 60 s after the last work (t=10), then zero.
        var desired = new List<(int At, int Replicas)>();
        var current = 3;
        for (var at = 20; at <= 100; at += 10)
        {
            var workers = new[] { Worker("w1", 300, "a", "b", "c"), Worker("w2", 300, "x"), Worker("w3", 300, "a") }.Take(current).ToArray();
            (var decision, state) = ScalingPolicy.Decide(Input(current: current, byModel: Depths(), workers: workers, models: models, at: at), state, Options);
            desired.Add((at, decision.DesiredReplicas));
            current = decision.DesiredReplicas;
        }

        Assert.Equal([(20, 3), (30, 3), (40, 3), (50, 1), (60, 1), (70, 0), (80, 0), (90, 0), (100, 0)], desired);
    }

    [Fact]
    public void Place_ScaleDown_NamesWorkersWhoseModelsAreWarmElsewhereFirst()
    {
        // w3's only model is warm on w2 too: stopping it loses nothing. Then w1 (a, 100 bytes warm nowhere else) before
        // w2 (b and c, 200 bytes warm nowhere else once w3 is gone).
        var input = Input(current: 3, byModel: Depths(),
            workers: [Worker("w1", 300, "a"), Worker("w2", 300, "b", "c"), Worker("w3", 300, "b")],
            models: Models("a", "b", "c"));
        var decision = new ScalingDecision(T0, 3, 1, 0, 0, "scale down");

        var advice = ScalingPolicy.Place(input, decision);

        Assert.Equal(["w3", "w1"], advice.StopFirst);
    }

    [Fact]
    public void Place_ScaleDown_PrefersLosingAModelWithoutMinWarmOrWork()
    {
        // Each worker holds one model warm nowhere else: the one with work and the min_warm one stay.
        var input = Input(current: 3, byModel: Depths(("busy", 3, 0)),
            workers: [Worker("w1", 300, "busy"), Worker("w2", 300, "kept"), Worker("w3", 300, "spare")],
            models: [Model("busy"), Model("kept", minWarm: 1), Model("spare", size: 250)]);

        var advice = ScalingPolicy.Place(input, new ScalingDecision(T0, 3, 2, 3, 0, "scale down"));

        Assert.Equal(["w3"], advice.StopFirst);
    }

    [Fact]
    public void Place_ScaleDown_NeverNamesABusyWorker()
    {
        // w1 is busy though its model is warm elsewhere; w2 is idle and holds the only copy of 'a'.
        var input = Input(current: 3, byModel: Depths(("b", 0, 2)),
            workers: [Worker("w1", 300, inFlight: 2, "b"), Worker("w2", 300, "a"), Worker("w3", 300, inFlight: 1, "b")],
            models: Models("a", "b"));

        var one = ScalingPolicy.Place(input, new ScalingDecision(T0, 3, 2, 0, 2, "scale down"));
        var all = ScalingPolicy.Place(input, new ScalingDecision(T0, 3, 0, 0, 2, "scale down"));

        Assert.Equal(["w2"], one.StopFirst);
        Assert.Equal(["w2"], all.StopFirst);
    }

    [Fact]
    public void Place_NoScaleDown_NamesNoWorker()
    {
        var input = Input(current: 2, byModel: Depths(), workers: [Worker("w1", 300, "a"), Worker("w2", 300, "a")], models: Models("a"));

        Assert.Empty(ScalingPolicy.Place(input, new ScalingDecision(T0, 2, 2, 0, 0, "steady")).StopFirst);
    }

    [Fact]
    public void Decide_ByModelNull_DecidesAsTheDepthRuleAlone()
    {
        // Full workers, a cold model and a max_workers cap that would change the answer if per-model depth were known.
        var workers = new[] { Worker("w1", 300, "a", "b", "c"), Worker("w2", 300, "d", "e", "f") };
        var models = new[] { Model("a", maxWorkers: 1), Model("b"), Model("c"), Model("d"), Model("e"), Model("f"), Model("x") };
        var loads = new (long Queued, long InFlight, int Current)[] { (0, 0, 0), (2, 0, 0), (45, 5, 2), (300, 0, 4), (5, 0, 4), (0, 0, 4), (0, 0, 3), (12, 3, 1) };
        var plainState = ScalingState.Initial;
        var richState = ScalingState.Initial;
        for (var i = 0; i < loads.Length * 3; i++)
        {
            var (queued, inFlight, current) = loads[i % loads.Length];
            var plain = new ScalingInput(queued, inFlight, current, 0, T0.AddSeconds(i * 10));
            var rich = plain with { ByModel = null, Workers = workers, Models = models };

            (var plainDecision, plainState) = ScalingPolicy.Decide(plain, plainState, Options);
            (var richDecision, richState) = ScalingPolicy.Decide(rich, richState, Options);

            Assert.Equal(plainDecision, richDecision);
        }
    }

    private static ScalingDecision Decide(ScalingInput input) => ScalingPolicy.Decide(input, ScalingState.Initial, Options).Decision;

    private static ScalingInput Input(int current, Dictionary<string, ModelDepth> byModel, WorkerStatus[] workers, ModelManifest[] models, double at = 0) =>
        new(byModel.Values.Sum(d => d.Queued), byModel.Values.Sum(d => d.InFlight), current, workers.Count(w => w.InFlight > 0), T0.AddSeconds(at))
        {
            ByModel = byModel,
            Workers = workers,
            Models = models,
        };

    private static Dictionary<string, ModelDepth> With(Dictionary<string, ModelDepth> depths, params (string Model, long Queued, long InFlight)[] more) =>
        new(depths.Concat(Depths(more)));

    private static Dictionary<string, ModelDepth> Depths(params (string Model, long Queued, long InFlight)[] depths) =>
        depths.ToDictionary(d => d.Model, d => new ModelDepth(d.Queued, d.InFlight));

    private static WorkerStatus Worker(string id, long budget, params string[] warm) => Worker(id, budget, 0, warm);

    /// <summary>A live worker whose warm models are 100 bytes each.</summary>
    private static WorkerStatus Worker(string id, long budget, int inFlight, params string[] warm) => new()
    {
        Id = id,
        Host = "test",
        ExecutionProvider = "CPU",
        State = WorkerState.Running,
        InFlight = inFlight,
        WarmModels = [.. warm.Select(m => new WarmModelStatus(m, "1", 100))],
        MemoryUsedBytes = 100 * warm.Length,
        MemoryBudgetBytes = budget,
        JobsCompleted = 0,
        StartedAt = T0,
        LastHeartbeat = T0,
    };

    private static ModelManifest[] Models(params string[] names) => [.. names.Select(n => Model(n))];

    private static ModelManifest Model(string name, long size = 100, int minWarm = 0, int? maxWorkers = null) => new()
    {
        Name = name,
        Sha256 = new string('0', 64),
        SizeBytes = size,
        Inputs = [new TensorSpec("x", TensorDatatype.Fp32, [-1, 4])],
        Outputs = [new TensorSpec("y", TensorDatatype.Fp32, [-1, 4])],
        MinWarm = minWarm,
        MaxWorkers = maxWorkers,
    };
}
