using System.Diagnostics;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Worker;

/// <summary>Stops the host (a normal drain) once <see cref="WorkerHostOptions.ParentProcessId"/> has exited. Does nothing
/// when no parent is configured.</summary>
public sealed partial class ParentWatch(
    IOptions<WorkerHostOptions> options,
    IHostApplicationLifetime lifetime,
    TimeProvider timeProvider,
    ILogger<ParentWatch> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.Value.ParentProcessId is not { } parent)
        {
            return;
        }

        using var timer = new PeriodicTimer(options.Value.ParentCheckInterval, timeProvider);
        try
        {
            while (IsRunning(parent))
            {
                await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return;
        }

        Log.ParentGone(logger, parent);
        lifetime.StopApplication();
    }

    /// <summary>Whether <paramref name="processId"/> is a live process.</summary>
    public static bool IsRunning(int processId)
    {
        try
        {
            using var process = Process.GetProcessById(processId);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "The parent process {ParentProcessId} is gone; draining and stopping")]
        public static partial void ParentGone(ILogger logger, int parentProcessId);
    }
}
