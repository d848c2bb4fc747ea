using System.Collections.Immutable;

namespace ServerlessInference.Scaling;

/// <summary>What the policy sees on one tick.</summary>
/// <param name="Queued">Jobs waiting for a worker.</param>
/// <param name="InFlight">Jobs held by workers.</param>
/// <param name="CurrentReplicas">Workers running now (not counting ones that drain).</param>
/// <param name="BusyWorkers">Workers that hold in-flight work; never scaled below.</param>
/// <param name="Now">The tick's instant.</param>
public readonly record struct ScalingInput(long Queued, long InFlight, int CurrentReplicas, int BusyWorkers, DateTimeOffset Now);

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
public static class ScalingPolicy
{
    public static (ScalingDecision Decision, ScalingState State) Decide(ScalingInput input, ScalingState state, ScalingOptions options)
    {
        var load = input.Queued + input.InFlight;
        var lastBusy = load > 0 ? input.Now : state.LastBusyAt;

        // The raw recommendation: enough workers for the load, within bounds.
        int raw;
        string why;
        if (input.CurrentReplicas == 0 && load < options.ActivationThreshold)
        {
            raw = 0;
            why = load == 0 ? "idle" : $"{load} jobs below the activation threshold {options.ActivationThreshold}";
        }
        else
        {
            raw = (int)Math.Min(int.MaxValue, (load + options.TargetJobsPerWorker - 1) / options.TargetJobsPerWorker);
            why = $"{load} jobs / {options.TargetJobsPerWorker} per worker";
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
}
