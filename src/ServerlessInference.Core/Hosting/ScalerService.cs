using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Scaling;

namespace ServerlessInference.Hosting;

/// <summary>Runs the <see cref="Scaler"/> on a timer in hosts without a timer trigger (DevHost), and at once when work
/// arrives while no worker runs.</summary>
public sealed partial class ScalerService(Scaler scaler, IWorkerOrchestrator orchestrator, IOptions<ScalingOptions> options, TimeProvider timeProvider, ILogger<ScalerService> logger)
    : BackgroundService, IScaleTrigger
{
    private readonly SemaphoreSlim _nudge = new(0, 1);
    private volatile bool _idle = true;

    public void Nudge()
    {
        if (_idle && _nudge.CurrentCount == 0)
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
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    var decision = await scaler.TickAsync(stoppingToken).ConfigureAwait(false);
                    _idle = decision.DesiredReplicas == 0;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.TickFailed(logger, ex);
                }

                var woke = await Task.WhenAny(tick, nudged).ConfigureAwait(false);
                if (woke == nudged)
                {
                    await nudged.ConfigureAwait(false);
                    nudged = _nudge.WaitAsync(stoppingToken);
                }
                else
                {
                    if (!await tick.ConfigureAwait(false))
                    {
                        break;
                    }

                    tick = timer.WaitForNextTickAsync(stoppingToken).AsTask();
                }
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

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "Scaler tick failed")]
        public static partial void TickFailed(ILogger logger, Exception exception);
    }
}
