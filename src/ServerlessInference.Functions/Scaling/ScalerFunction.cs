using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Logging;
using ServerlessInference.Scaling;

namespace ServerlessInference.Functions.Scaling;

/// <summary>The scaler as a timer-triggered function: one <see cref="Scaler.TickAsync"/> per invocation.</summary>
/// <remarks>
/// The schedule is the app setting <c>SCALER_SCHEDULE</c> (NCRONTAB with seconds; <c>*/10 * * * * *</c> in
/// local.settings.sample.json and the Bicep app settings). The Functions host, not this worker, resolves <c>%NAME%</c> when
/// it indexes the function, so the setting must exist in the app settings: a default in the worker's configuration would
/// come too late. The timer is a singleton across instances (a blob lease in <c>AzureWebJobsStorage</c>), so one tick
/// runs at a time, though not always on the same instance: the scaler's windows (stabilization, idle) are read from and
/// written to Redis beside the registry on every tick (<see cref="IScalingDecisionLog"/>), never kept in the process,
/// so a tick on a fresh instance goes on from where the last one left off. A failed tick (queue, registry or orchestrator down) is logged and the next one tries again, as in
/// the DevHost's background scaler.
/// </remarks>
public sealed partial class ScalerFunction(Scaler scaler, ILogger<ScalerFunction> logger)
{
    /// <summary>The app setting that holds the timer's schedule.</summary>
    public const string ScheduleSetting = "SCALER_SCHEDULE";

    /// <summary>Every 10 seconds (six NCRONTAB fields, seconds first).</summary>
    public const string DefaultSchedule = "*/10 * * * * *";

    [Function("Scaler")]
    public async Task RunAsync([TimerTrigger("%SCALER_SCHEDULE%")] TimerInfo timer, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(timer);
        if (timer.IsPastDue)
        {
            Log.PastDue(logger);
        }

        try
        {
            var decision = await scaler.TickAsync(cancellationToken).ConfigureAwait(false);
            Log.Ticked(logger, decision.CurrentReplicas, decision.DesiredReplicas, decision.Queued, decision.InFlight);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Log.TickFailed(logger, ex);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "The scaler timer fired late (past due)")]
        public static partial void PastDue(ILogger logger);

        [LoggerMessage(2, LogLevel.Debug, "Scaler tick: {Current} -> {Desired} workers ({Queued} queued, {InFlight} in flight)")]
        public static partial void Ticked(ILogger logger, int current, int desired, long queued, long inFlight);

        [LoggerMessage(3, LogLevel.Error, "Scaler tick failed; the next tick tries again")]
        public static partial void TickFailed(ILogger logger, Exception exception);
    }
}
