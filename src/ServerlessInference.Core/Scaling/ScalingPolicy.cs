using System.Collections.Immutable;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Workers;

namespace ServerlessInference.Scaling;

/// <summary>What the policy sees on one tick.</summary>
/// <param name="Queued">Jobs waiting for a worker.</param>
/// <param name="InFlight">Jobs held by workers.</param>
/// <param name="CurrentReplicas">Workers running now (not counting ones that drain).</param>
/// <param name="BusyWorkers">Workers that hold in-flight work; never scaled below.</param>
/// <param name="Now">The tick's instant.</param>
/// <remarks>The per-model parts are optional: without them (null) the policy is the depth rule alone, as before models
/// were placed.</remarks>
public readonly record struct ScalingInput(long Queued, long InFlight, int CurrentReplicas, int BusyWorkers, DateTimeOffset Now)
{
    /// <summary>Queued and in-flight jobs per model (<see cref="QueueDepth.ByModel"/>); null when the queue cannot count
    /// per model, which turns off the rules that need it (a model's <c>max_workers</c> cap, demand for a cold model).</summary>
    public IReadOnlyDictionary<string, ModelDepth>? ByModel { get; init; }

    /// <summary>The registry's workers: warm sets, warm-pool budgets, in-flight work.</summary>
    public IReadOnlyList<WorkerStatus>? Workers { get; init; }

    /// <summary>The manifests (every version; a model's latest one gives its size, <c>min_warm</c> and <c>max_workers</c>).</summary>
    public IReadOnlyList<ModelManifest>? Models { get; init; }
}

/// <summary>What the policy remembers between ticks: recent recommendations and when work was last seen.</summary>
/// <param name="Recommendations">Raw recommendations of the stabilization window, oldest first.</param>
/// <param name="LastBusyAt">The last tick that saw queued or in-flight work.</param>
/// <param name="LowerSince">Since when every recommendation has been below the current replicas.</param>
public sealed record ScalingState(ImmutableQueue<(DateTimeOffset At, int Replicas)> Recommendations, DateTimeOffset? LastBusyAt, DateTimeOffset? LowerSince)
{
    public static ScalingState Initial { get; } = new(ImmutableQueue<(DateTimeOffset, int)>.Empty, null, null);
}

/// <summary>The outcome of one tick.</summary>
public sealed record ScalingDecision(DateTimeOffset At, int CurrentReplicas, int DesiredReplicas, long Queued, long InFlight, string Reason);

/// <summary>The scaling rules as a pure function, like KEDA/HPA: no clock, no I/O, no state but what is passed in.</summary>
/// <remarks>
/// <para>The raw recommendation is the highest of these rules, clamped to <see cref="ScalingOptions.MinReplicas"/> ..
/// <see cref="ScalingOptions.MaxReplicas"/>; the decision's reason names the rule that set it.</para>
/// <list type="number">
/// <item><b>Depth</b> (KEDA's queue-length scaler): ceil((queued + in flight) / <see cref="ScalingOptions.TargetJobsPerWorker"/>),
/// and from zero only at <see cref="ScalingOptions.ActivationThreshold"/>. With <see cref="ScalingInput.ByModel"/>, a
/// model's jobs count at most <c>max_workers</c> × the target: a hot model alone never asks for more workers than it may
/// use. Without a <c>max_workers</c> anywhere this is the plain depth rule.</item>
/// <item><b>Cold demand</b> (needs <see cref="ScalingInput.ByModel"/>): a model with queued jobs that no live worker holds
/// warm and that no live worker has room for asks for one more worker; from zero, like the depth rule, only at
/// <see cref="ScalingOptions.ActivationThreshold"/>. Room is the warm pool's free bytes plus the bytes
/// of warm models nobody asks for (no queued or in-flight jobs, <c>min_warm</c> 0), which a load may evict.</item>
/// <item><b>min_warm</b>: every model keeps <c>min_warm</c> warm copies, each on a different worker. Copies a model lacks
/// are placed in the live workers' room; what does not fit asks for more workers. And the floor is the number of
/// workers the <c>min_warm</c> copies need on their own. So replicas reach zero only when no model has <c>min_warm</c>.
/// And a scale-down stops short of dropping a copy: with the workers <see cref="Place"/> would stop gone, every
/// <c>min_warm</c> copy they held must fit the room of the workers kept.</item>
/// </list>
/// <para>Packing, for the last two rules, is a simple first-fit decreasing: copies largest first, each into the first
/// worker (by id, then workers asked for but not registered yet, then new ones) that does not hold the model and has room.
/// A worker not registered yet, or a new one, is assumed to get the largest budget a live worker reports (any budget when
/// none does). A model larger than that budget is never counted: no worker could load it.</para>
/// <para>Then, as before: up at once, down only after the stabilization window, to zero only after the idle window, and
/// never below the workers that hold work. <see cref="Place"/> names which workers a scale-down stops and which models
/// to load where.</para>
/// </remarks>
public static class ScalingPolicy
{
    public static (ScalingDecision Decision, ScalingState State) Decide(ScalingInput input, ScalingState state, ScalingOptions options)
    {
        var load = input.Queued + input.InFlight;
        var lastBusy = load > 0 ? input.Now : state.LastBusyAt;
        var fleet = Fleet.Of(input);

        // The raw recommendation: enough workers for the load, within bounds.
        int raw;
        string why;
        var belowActivation = input.CurrentReplicas == 0 && load < options.ActivationThreshold;
        if (belowActivation)
        {
            raw = 0;
            why = load == 0 ? "idle" : $"{load} jobs below the activation threshold {options.ActivationThreshold}";
        }
        else
        {
            var counted = fleet.CappedLoad(input, options.TargetJobsPerWorker);
            raw = (int)Math.Min(int.MaxValue, (counted + options.TargetJobsPerWorker - 1) / options.TargetJobsPerWorker);
            why = counted == load
                ? $"{load} jobs / {options.TargetJobsPerWorker} per worker"
                : $"{counted} of {load} jobs (the rest past a model's max_workers) / {options.TargetJobsPerWorker} per worker";
        }

        var packing = fleet.Pack(fleet.CopiesNeeded(coldDemand: !belowActivation), input.CurrentReplicas, exclude: null);
        if (packing.Floor > raw)
        {
            raw = packing.Floor;
            why = $"{packing.Why}; {why}";
        }

        var (minWarmFloor, minWarmWhy) = fleet.MinWarmFloor();
        if (minWarmFloor > raw)
        {
            raw = minWarmFloor;
            why = $"{minWarmWhy}; {why}";
        }

        var (keepFloor, keepWhy) = fleet.MinWarmKeepFloor(raw);
        if (keepFloor > raw)
        {
            raw = keepFloor;
            why = $"{keepWhy}; {why}";
        }

        raw = Math.Clamp(raw, options.MinReplicas, options.MaxReplicas);

        // Remember recommendations over the stabilization window.
        var window = state.Recommendations;
        while (!window.IsEmpty && input.Now - window.Peek().At > options.ScaleDownStabilization)
        {
            window = window.Dequeue();
        }

        window = window.Enqueue((input.Now, raw));
        DateTimeOffset? lowerSince = null;

        int desired;
        if (raw >= input.CurrentReplicas)
        {
            desired = raw;
            why = raw > input.CurrentReplicas ? $"scale up: {why}" : $"steady: {why}";
        }
        else
        {
            // Down only once every recommendation for a whole window was lower, and only as far as the highest of them.
            lowerSince = state.LowerSince ?? input.Now;
            if (input.Now - lowerSince.Value >= options.ScaleDownStabilization)
            {
                desired = Math.Min(input.CurrentReplicas, window.Max(r => r.Replicas));
                why = $"scale down: {why}, lower for {options.ScaleDownStabilization.TotalSeconds:0}s";
            }
            else
            {
                desired = input.CurrentReplicas;
                why = $"hold: {why}, waiting out the {options.ScaleDownStabilization.TotalSeconds:0}s stabilization window";
            }
        }

        // To zero only after the idle window.
        if (desired == 0 && input.CurrentReplicas > 0 && lastBusy is { } busyAt && input.Now - busyAt < options.IdleToZero)
        {
            desired = Math.Max(1, options.MinReplicas);
            why = $"hold 1: idle for {(input.Now - busyAt).TotalSeconds:0}s of {options.IdleToZero.TotalSeconds:0}s before scaling to zero";
        }

        // Never below the workers that hold work: a scale-down must not kill a job. A registry can still list a
        // dead worker as busy until its heartbeat expires, so busy never counts past the replicas that run.
        var busy = Math.Min(input.BusyWorkers, input.CurrentReplicas);
        if (desired < busy)
        {
            desired = busy;
            why += $"; kept {busy} busy workers";
        }

        var decision = new ScalingDecision(input.Now, input.CurrentReplicas, desired, input.Queued, input.InFlight, why);
        return (decision, new ScalingState(window, lastBusy, lowerSince));
    }

    /// <summary>What goes with <paramref name="decision"/>: which workers to stop first and which models to load where.</summary>
    /// <remarks>
    /// <para><b>Stop first</b> (when the decision lowers the replicas): only idle workers (no job in flight, no running
    /// generation), one at a time by least loss given those still kept: first the ones whose every warm model is warm
    /// on another kept worker too (stopping them loses no placement), then by how many models would fall below their
    /// <c>min_warm</c>, then how many models with queued or in-flight work would lose their last warm copy, then the
    /// bytes of models warm nowhere else. Busy workers are never named; when too few are idle the orchestrator picks the rest.</para>
    /// <para><b>Loads</b>: the <c>min_warm</c> copies a model lacks, packed as in <see cref="Decide"/> into live workers
    /// that are not about to stop. <b>Keep</b>: models with work or <c>min_warm</c>, which a placement load never evicts.</para>
    /// </remarks>
    public static PlacementAdvice Place(ScalingInput input, ScalingDecision decision)
    {
        var fleet = Fleet.Of(input);
        var stopFirst = fleet.StopFirst(decision.CurrentReplicas - decision.DesiredReplicas);
        var packing = fleet.Pack(fleet.CopiesNeeded(), input.CurrentReplicas, exclude: stopFirst.ToHashSet(StringComparer.Ordinal));
        return new PlacementAdvice(stopFirst, packing.Orders, [.. fleet.Keep.Order(StringComparer.Ordinal)]);
    }

    private readonly record struct ModelSpec(long Size, int MinWarm, int? MaxWorkers);

    private readonly record struct Copy(string Model, long Size, bool MinWarm, string Why);

    private sealed record Packing(int Floor, string Why, IReadOnlyList<PlacementOrder> Orders);

    private sealed class Bin(string? workerId, long room, HashSet<string> holds)
    {
        public string? WorkerId { get; } = workerId;

        public long Room { get; set; } = room;

        public HashSet<string> Holds { get; } = holds;
    }

    /// <summary>The per-model view of one tick: specs, live workers, who holds what, what is asked for.</summary>
    private sealed class Fleet
    {
        private readonly Dictionary<string, ModelSpec> _specs = new(StringComparer.Ordinal);
        private readonly List<(WorkerStatus Status, Dictionary<string, long> Warm)> _live = [];
        private readonly Dictionary<string, int> _holders = new(StringComparer.Ordinal);
        private readonly HashSet<string> _demanded = new(StringComparer.Ordinal);

        /// <summary><see cref="ScalingInput.ByModel"/> summed per model; null when the queue does not count per model.</summary>
        private Dictionary<string, ModelDepth>? _depths;

        /// <summary>The budget a worker not registered yet is assumed to have; null when no live worker says.</summary>
        private long? _newBudget;

        public HashSet<string> Keep { get; } = new(StringComparer.Ordinal);

        public static Fleet Of(ScalingInput input)
        {
            var fleet = new Fleet();
            foreach (var versions in (input.Models ?? []).GroupBy(m => m.Name, StringComparer.Ordinal))
            {
                var latest = ModelVersions.Latest(versions.Select(m => m.Version));
                var manifest = versions.First(m => m.Version == latest);
                fleet._specs[versions.Key] = new ModelSpec(manifest.SizeBytes, manifest.MinWarm, manifest.MaxWorkers);
                if (manifest.MinWarm > 0)
                {
                    fleet.Keep.Add(versions.Key);
                }
            }

            if (input.ByModel is not null)
            {
                // Keyed by model; a provider that counts per affinity key (model#prefix) is summed per model.
                fleet._depths = new Dictionary<string, ModelDepth>(StringComparer.Ordinal);
                foreach (var (key, depth) in input.ByModel)
                {
                    var model = JobPreference.ModelOf(key);
                    var sum = fleet._depths.GetValueOrDefault(model);
                    fleet._depths[model] = new ModelDepth(sum.Queued + depth.Queued, sum.InFlight + depth.InFlight);
                }

                foreach (var (model, depth) in fleet._depths)
                {
                    if (depth.Total > 0)
                    {
                        fleet._demanded.Add(model);
                        fleet.Keep.Add(model);
                    }
                }
            }

            foreach (var worker in (input.Workers ?? []).Where(w => w.State != WorkerState.Draining).OrderBy(w => w.Id, StringComparer.Ordinal))
            {
                var warm = new Dictionary<string, long>(StringComparer.Ordinal);
                foreach (var model in worker.WarmModels)
                {
                    warm[model.Model] = warm.GetValueOrDefault(model.Model) + model.Bytes;
                }

                fleet._live.Add((worker, warm));
                foreach (var model in warm.Keys)
                {
                    fleet._holders[model] = fleet._holders.GetValueOrDefault(model) + 1;
                }

                if (worker.MemoryBudgetBytes > 0)
                {
                    fleet._newBudget = Math.Max(fleet._newBudget ?? 0, worker.MemoryBudgetBytes);
                }
            }

            return fleet;
        }

        /// <summary>Queued plus in-flight jobs, each model's counting at most <c>max_workers</c> × the target.</summary>
        public long CappedLoad(ScalingInput input, int target)
        {
            var load = input.Queued + input.InFlight;
            if (_depths is null)
            {
                return load;
            }

            foreach (var (model, depth) in _depths)
            {
                if (_specs.TryGetValue(model, out var spec) && spec.MaxWorkers is { } max && depth.Total > (long)max * target)
                {
                    load -= depth.Total - (long)max * target;
                }
            }

            return Math.Max(0, load);
        }

        /// <summary>Warm copies the fleet lacks: what <c>min_warm</c> asks beyond the copies held, and one of every model
        /// with queued jobs that no live worker holds.</summary>
        /// <param name="coldDemand">Whether models with queued jobs and no holder ask for a copy: not while the fleet is at
        /// zero below the activation threshold, which holds for every rule that reacts to queued jobs.</param>
        public List<Copy> CopiesNeeded(bool coldDemand = true)
        {
            var copies = new List<Copy>();
            foreach (var (model, spec) in _specs)
            {
                var held = _holders.GetValueOrDefault(model);
                for (var i = held; i < spec.MinWarm; i++)
                {
                    copies.Add(new Copy(model, spec.Size, MinWarm: true, $"min_warm: '{model}' is warm on {held} of {spec.MinWarm} workers"));
                }
            }

            foreach (var (model, depth) in (coldDemand ? _depths : null) ?? new Dictionary<string, ModelDepth>())
            {
                if (depth.Queued > 0 && _holders.GetValueOrDefault(model) == 0 && _specs.TryGetValue(model, out var spec) && spec.MinWarm == 0)
                {
                    copies.Add(new Copy(model, spec.Size, MinWarm: false, $"'{model}' has {depth.Queued} queued jobs and no worker holds it warm or has room for it"));
                }
            }

            return copies;
        }

        /// <summary>First-fit decreasing of <paramref name="copies"/> into the live workers' room, then the workers asked
        /// for but not registered, then new ones. The floor is the workers that takes when any copy goes past the live ones.</summary>
        public Packing Pack(List<Copy> copies, int currentReplicas, HashSet<string>? exclude)
        {
            var bins = new List<Bin>();
            foreach (var (status, warm) in _live)
            {
                if (exclude?.Contains(status.Id) == true)
                {
                    continue;
                }

                var evictable = warm.Where(m => !Keep.Contains(m.Key)).Sum(m => m.Value);
                bins.Add(new Bin(status.Id, status.MemoryBudgetBytes - status.MemoryUsedBytes + evictable, [.. warm.Keys]));
            }

            var live = bins.Count;
            var pending = Math.Max(0, currentReplicas - _live.Count);
            for (var i = 0; i < pending; i++)
            {
                bins.Add(new Bin(null, _newBudget ?? long.MaxValue, []));
            }

            var orders = new List<PlacementOrder>();
            var beyond = 0;
            string? why = null;
            foreach (var copy in copies.OrderByDescending(c => c.Size).ThenBy(c => c.Model, StringComparer.Ordinal))
            {
                if (copy.Size > (_newBudget ?? long.MaxValue))
                {
                    continue;
                }

                var index = bins.FindIndex(b => !b.Holds.Contains(copy.Model) && b.Room >= copy.Size);
                if (index < 0)
                {
                    bins.Add(new Bin(null, _newBudget ?? long.MaxValue, []));
                    index = bins.Count - 1;
                }

                var bin = bins[index];
                bin.Room -= copy.Size;
                bin.Holds.Add(copy.Model);
                if (bin.WorkerId is { } worker)
                {
                    if (copy.MinWarm)
                    {
                        orders.Add(new PlacementOrder(worker, copy.Model));
                    }
                }
                else
                {
                    beyond = Math.Max(beyond, index - live + 1);
                    why ??= copy.Why;
                }
            }

            return beyond == 0
                ? new Packing(0, "", orders)
                : new Packing(live + beyond, $"{why} ({live + beyond} workers to place it)", orders);
        }

        /// <summary>The workers the <c>min_warm</c> copies need on their own, packed into empty workers.</summary>
        public (int Floor, string Why) MinWarmFloor()
        {
            var copies = _specs.Where(s => s.Value.MinWarm > 0)
                .SelectMany(s => Enumerable.Repeat(new Copy(s.Key, s.Value.Size, MinWarm: true, ""), s.Value.MinWarm))
                .ToList();
            if (copies.Count == 0)
            {
                return (0, "");
            }

            var fleet = new Fleet { _newBudget = _newBudget };
            var packing = fleet.Pack(copies, currentReplicas: 0, exclude: null);
            var models = string.Join(", ", _specs.Where(s => s.Value.MinWarm > 0).OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => $"'{s.Key}' ×{s.Value.MinWarm}"));
            return (packing.Floor, $"min_warm keeps {packing.Floor} workers for {models}");
        }

        /// <summary>The fewest workers, from <paramref name="raw"/> up, that keep every <c>min_warm</c> when the others stop
        /// in <see cref="StopFirst"/>'s order: a copy the stopped workers take with them must fit the room of those kept.</summary>
        public (int Floor, string Why) MinWarmKeepFloor(int raw)
        {
            if (!_specs.Values.Any(s => s.MinWarm > 0) || raw >= _live.Count)
            {
                return (0, "");
            }

            var order = StopFirst(_live.Count);
            for (var kept = raw; kept < _live.Count; kept++)
            {
                var stopped = order.Take(_live.Count - kept).ToHashSet(StringComparer.Ordinal);
                var rest = Without(stopped);
                if (rest.Pack(rest.MinWarmCopiesLacking(), rest._live.Count, exclude: null).Floor == 0)
                {
                    return (kept, $"min_warm: fewer than {kept} workers would drop a warm copy no other worker has room for");
                }
            }

            return (_live.Count, $"min_warm: stopping any of the {_live.Count} workers would drop a warm copy no other worker has room for");
        }

        private Fleet Without(HashSet<string> stopped)
        {
            var rest = new Fleet { _newBudget = _newBudget, _depths = _depths };
            foreach (var (name, spec) in _specs)
            {
                rest._specs[name] = spec;
            }

            rest._demanded.UnionWith(_demanded);
            rest.Keep.UnionWith(Keep);
            foreach (var worker in _live.Where(w => !stopped.Contains(w.Status.Id)))
            {
                rest._live.Add(worker);
                foreach (var model in worker.Warm.Keys)
                {
                    rest._holders[model] = rest._holders.GetValueOrDefault(model) + 1;
                }
            }

            return rest;
        }

        private List<Copy> MinWarmCopiesLacking() =>
            [.. _specs.Where(s => s.Value.MinWarm > _holders.GetValueOrDefault(s.Key))
                .SelectMany(s => Enumerable.Repeat(new Copy(s.Key, s.Value.Size, MinWarm: true, ""), s.Value.MinWarm - _holders.GetValueOrDefault(s.Key)))];

        /// <summary>Up to <paramref name="count"/> idle workers to stop, least loss first (see <see cref="Place"/>).</summary>
        public IReadOnlyList<string> StopFirst(int count)
        {
            var chosen = new List<string>();
            if (count <= 0)
            {
                return chosen;
            }

            var holders = new Dictionary<string, int>(_holders, StringComparer.Ordinal);
            var candidates = _live.Where(w => w.Status.InFlight == 0 && w.Status.RunningSequences == 0).ToList();
            while (chosen.Count < count && candidates.Count > 0)
            {
                // Ties go to the lowest id (the list is in id order and MinBy keeps the first).
                var best = candidates.MinBy(w => Loss(w.Warm, holders));
                candidates.Remove(best);
                chosen.Add(best.Status.Id);
                foreach (var model in best.Warm.Keys)
                {
                    holders[model]--;
                }
            }

            return chosen;
        }

        private (int MinWarmBroken, int DemandedLost, long BytesLost) Loss(Dictionary<string, long> warm, Dictionary<string, int> holders)
        {
            int minWarmBroken = 0, demandedLost = 0;
            long bytesLost = 0;
            foreach (var (model, bytes) in warm)
            {
                var left = holders.GetValueOrDefault(model) - 1;
                if (_specs.TryGetValue(model, out var spec) && left < spec.MinWarm)
                {
                    minWarmBroken++;
                }

                if (left == 0)
                {
                    bytesLost += bytes;
                    if (_demanded.Contains(model))
                    {
                        demandedLost++;
                    }
                }
            }

            return (minWarmBroken, demandedLost, bytesLost);
        }
    }
}
