using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Jobs;

namespace ServerlessInference.Hosting;

/// <summary>Runs the <see cref="JobReconciler"/> every <see cref="JobReconcilerOptions.Interval"/> in a gateway host,
/// when it is enabled and the queue and the result store can be listed; otherwise it does nothing.</summary>
public sealed partial class JobReconcilerService(JobReconciler reconciler, IOptions<JobReconcilerOptions> options, TimeProvider timeProvider, ILogger<JobReconcilerService> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.Enabled || !reconciler.CanRun)
        {
            return;
        }

        using var timer = new PeriodicTimer(options.Value.Interval, timeProvider);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    await reconciler.ReconcileAsync(stoppingToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    // Redis down, most likely: the next sweep tries again.
                    Log.SweepFailed(logger, ex);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "A sweep for stranded jobs failed; the next one tries again")]
        public static partial void SweepFailed(ILogger logger, Exception exception);
    }
}
