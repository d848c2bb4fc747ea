using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Workers;

namespace ServerlessInference.Scaling;

/// <summary>The <see cref="IScaleTrigger"/> of hosts whose scaler ticks on an external timer (the Functions app's timer
/// trigger, which nothing else can wake): a nudge runs one <see cref="Scaler.TickAsync"/> in this process, on the
/// thread pool, when no worker can take the job.</summary>
/// <remarks>At most one activation runs at a time and at most one starts per
/// <see cref="ScalingOptions.ActivationInterval"/>; nudges in between are dropped, not queued (the job they came with
/// is in the queue, which the next tick reads). The tick runs beside the request that nudged, so a gateway answering
/// 202 does not wait for it. Ticks on several instances are not locked against each other (see <see cref="Scaler"/>):
/// an activation at the same moment as the timer's tick can lose a window update, never a job.</remarks>
public sealed partial class InlineScaleTrigger(
    Scaler scaler, IWorkerRegistry registry, IOptions<ScalingOptions> options, TimeProvider timeProvider, ILogger<InlineScaleTrigger> logger)
    : IScaleTrigger
{
    private long _lastStart = long.MinValue;
    private int _running;

    /// <summary>The activation running now or last (for tests and shutdown).</summary>
    public Task Current { get; private set; } = Task.CompletedTask;

    public void Nudge()
    {
        if (Interlocked.Exchange(ref _running, 1) == 1)
        {
            return;
        }

        var last = Interlocked.Read(ref _lastStart);
        if (last != long.MinValue && timeProvider.GetElapsedTime(last) < options.Value.ActivationInterval)
        {
            Volatile.Write(ref _running, 0);
            return;
        }

        Interlocked.Exchange(ref _lastStart, timeProvider.GetTimestamp());
        Current = Task.Run(ActivateAsync);
    }

    private async Task ActivateAsync()
    {
        try
        {
            if (await ScaleActivation.NeededAsync(registry, CancellationToken.None).ConfigureAwait(false))
            {
                Log.Activated(logger);
                await scaler.TickAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (Exception ex)
        {
            Log.TickFailed(logger, ex);
        }
        finally
        {
            Volatile.Write(ref _running, 0);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "A job arrived that no worker can take now: one scaler tick runs here, before the timer's")]
        public static partial void Activated(ILogger logger);

        [LoggerMessage(2, LogLevel.Error, "The activation's scaler tick failed; the timer's tick tries again")]
        public static partial void TickFailed(ILogger logger, Exception exception);
    }
}
