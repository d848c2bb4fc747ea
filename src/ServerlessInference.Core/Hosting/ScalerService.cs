using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Scaling;
using ServerlessInference.Workers;

namespace ServerlessInference.Hosting;

/// <summary>Runs the <see cref="Scaler"/> on a timer in hosts without a timer trigger (DevHost), and at once when a job
/// arrives that no worker can take (<see cref="IScaleTrigger"/>).</summary>
/// <remarks>Nudges are coalesced: one that lands while a tick runs, or while an activation waits out
/// <see cref="ScalingOptions.ActivationInterval"/> since the previous one, is served by the next activation. An
/// activation reads the registry first and ticks only when no worker is idle (<see cref="ScaleActivation"/>); without a
/// registry it always ticks.</remarks>
public sealed partial class ScalerService(
    Scaler scaler,
    IWorkerOrchestrator orchestrator,
    IOptions<ScalingOptions> options,
    TimeProvider timeProvider,
    ILogger<ScalerService> logger,
    IWorkerRegistry? registry = null)
    : BackgroundService, IScaleTrigger
{
    private readonly SemaphoreSlim _nudge = new(0, 1);
    private long _lastActivation = long.MinValue;

    public void Nudge()
    {
        if (_nudge.CurrentCount == 0)
        {
            try
            {
                _nudge.Release();
            }
            catch (SemaphoreFullException)
            {
                // Already nudged.
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.TickInterval, timeProvider);
        var tick = timer.WaitForNextTickAsync(stoppingToken).AsTask();
        var nudged = _nudge.WaitAsync(stoppingToken);
        var run = true;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                if (run)
                {
                    await TickAsync(stoppingToken).ConfigureAwait(false);
                }

                var woke = await Task.WhenAny(tick, nudged).ConfigureAwait(false);
                if (woke == nudged)
                {
                    await nudged.ConfigureAwait(false);
                    nudged = _nudge.WaitAsync(stoppingToken);
                    await WaitOutActivationIntervalAsync(tick, stoppingToken).ConfigureAwait(false);
                    if (!tick.IsCompleted)
                    {
                        run = registry is null || await ScaleActivation.NeededAsync(registry, stoppingToken).ConfigureAwait(false);
                        if (run)
                        {
                            _lastActivation = timeProvider.GetTimestamp();
                            Log.Activated(logger);
                        }

                        continue;
                    }
                }

                // The timer's tick (also when it came while an activation waited): always run.
                if (!await tick.ConfigureAwait(false))
                {
                    break;
                }

                tick = timer.WaitForNextTickAsync(stoppingToken).AsTask();
                run = true;
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        // Drain the workers on shutdown.
        if (orchestrator is IAsyncDisposable disposable)
        {
            await disposable.DisposeAsync().ConfigureAwait(false);
        }
    }

    private async Task TickAsync(CancellationToken stoppingToken)
    {
        try
        {
            await scaler.TickAsync(stoppingToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.TickFailed(logger, ex);
        }
    }

    /// <summary>At most one activation per interval: waits until the interval since the last one has passed, or the
    /// timer ticks first.</summary>
    private async Task WaitOutActivationIntervalAsync(Task tick, CancellationToken stoppingToken)
    {
        if (_lastActivation == long.MinValue)
        {
            return;
        }

        var wait = options.Value.ActivationInterval - timeProvider.GetElapsedTime(_lastActivation);
        if (wait > TimeSpan.Zero)
        {
            await Task.WhenAny(Task.Delay(wait, timeProvider, stoppingToken), tick).ConfigureAwait(false);
            stoppingToken.ThrowIfCancellationRequested();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "Scaler tick failed")]
        public static partial void TickFailed(ILogger logger, Exception exception);

        [LoggerMessage(2, LogLevel.Debug, "A job arrived that no worker can take now: the scaler ticks at once")]
        public static partial void Activated(ILogger logger);
    }
}
