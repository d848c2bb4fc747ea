using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Scaling;
using ServerlessInference.Workers;

namespace ServerlessInference.Hosting.Orchestration;

/// <summary>An <see cref="IWorkerOrchestrator"/> whose workers are child processes of this host, as pods are in a cluster.</summary>
/// <remarks>
/// <para>Children get this host's <c>Inference:*</c> settings as environment variables and an id of their own.
/// Stopping sends SIGTERM to the idle workers the scaler prefers, then the idlest (as the registry's heartbeats tell) and waits for it to drain;
/// after <see cref="ChildProcessOptions.DrainTimeout"/> it is killed. A child that dies on its own stops counting
/// and the next scaler tick replaces it.</para>
/// <para>With <see cref="ChildProcessOptions.Standby"/> above zero it also keeps that many standby processes: started
/// with <c>Inference:WorkerHost:Standby</c>, so they build their host, create ONNX Runtime's environment and connect,
/// then wait unregistered and taking no jobs. A scale-up activates one (a line on its standard input) before it
/// starts a process, and the pool is topped up by every call. Standbys are not replicas.</para>
/// <para>Thread-safe. Disposing drains every child.</para>
/// </remarks>
public sealed partial class ChildProcessWorkerOrchestrator(
    IOptions<ChildProcessOptions> options,
    IConfiguration configuration,
    IWorkerRegistry registry,
    ILogger<ChildProcessWorkerOrchestrator> logger) : IWorkerOrchestrator, IAsyncDisposable
{
    private readonly Lock _lock = new();
    private readonly List<Child> _running = [];
    private readonly List<Child> _standby = [];
    private readonly List<Task> _draining = [];
    private readonly string _instance = Guid.NewGuid().ToString("N")[..6];
    private int _next;
    private bool _disposed;

    /// <summary>Worker processes running now (not draining).</summary>
    public IReadOnlyList<(string Id, int ProcessId)> Workers
    {
        get
        {
            lock (_lock)
            {
                return _running.Select(c => (c.Id, c.Process.Id)).ToList();
            }
        }
    }

    /// <summary>Standby processes waiting now (not replicas).</summary>
    public IReadOnlyList<(string Id, int ProcessId)> Standby
    {
        get
        {
            lock (_lock)
            {
                return _standby.Select(c => (c.Id, c.Process.Id)).ToList();
            }
        }
    }

    public ValueTask<int> GetReplicasAsync(CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<int>(cancellationToken);
        }

        lock (_lock)
        {
            PruneExitedLocked();
            // The scaler asks every tick: standbys that died (or were taken) come back here.
            TopUpStandbyLocked();
            return ValueTask.FromResult(_running.Count);
        }
    }

    public ValueTask SetReplicasAsync(int replicas, CancellationToken cancellationToken) => SetReplicasAsync(replicas, [], cancellationToken);

    /// <summary>Starts or stops worker processes until <paramref name="replicas"/> run. Stopping takes the workers of
    /// <paramref name="preferredToStop"/> that the registry shows idle first, in its order, then the idlest.</summary>
    public async ValueTask SetReplicasAsync(int replicas, IReadOnlyList<string> preferredToStop, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(replicas);
        cancellationToken.ThrowIfCancellationRequested();
        int surplus;
        lock (_lock)
        {
            PruneExitedLocked();
            while (_running.Count < replicas)
            {
                _running.Add(ActivateStandbyLocked() ?? Start(NextId(), standby: false));
            }

            TopUpStandbyLocked();
            surplus = _running.Count - replicas;
        }

        if (surplus <= 0)
        {
            return;
        }

        // The scaler's idle choices first, then the idlest workers; the registry knows what each holds.
        var inFlight = (await registry.ListAsync(cancellationToken).ConfigureAwait(false)).ToDictionary(w => w.Id, w => w.InFlight);
        var rank = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < preferredToStop.Count; i++)
        {
            rank.TryAdd(preferredToStop[i], i);
        }

        int Preference(string id) => inFlight.GetValueOrDefault(id) == 0 && rank.TryGetValue(id, out var index) ? index : int.MaxValue;

        lock (_lock)
        {
            // Recounted: a concurrent call may have stopped some while the registry answered.
            foreach (var child in _running.OrderBy(c => Preference(c.Id)).ThenBy(c => inFlight.GetValueOrDefault(c.Id)).Take(_running.Count - replicas).ToList())
            {
                _running.Remove(child);
                _draining.Add(DrainAsync(child));
            }
        }
    }

    private string NextId() => $"worker-{_instance}-{Interlocked.Increment(ref _next)}";

    /// <summary>The oldest live standby, told to start serving; null when there is none.</summary>
    private Child? ActivateStandbyLocked()
    {
        while (_standby.Count > 0)
        {
            var child = _standby[0];
            _standby.RemoveAt(0);
            try
            {
                child.Process.StandardInput.WriteLine("start");
                child.Process.StandardInput.Flush();
                Log.Activated(logger, child.Id, child.Process.Id);
                return child;
            }
            catch (Exception ex) when (ex is IOException or InvalidOperationException)
            {
                // It died since the last look (the pipe is closed): stop it for good and try the next.
                Log.ActivationFailed(logger, ex, child.Id);
                _draining.Add(DrainAsync(child));
            }
        }

        return null;
    }

    private void TopUpStandbyLocked()
    {
        try
        {
            while (!_disposed && _standby.Count < options.Value.Standby)
            {
                _standby.Add(Start(NextId(), standby: true));
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // Standbys only save time: a worker that cannot start fails the next scale-up, which says so.
            Log.StandbyFailed(logger, ex);
        }
    }

    private Child Start(string id, bool standby)
    {
        var path = options.Value.ResolvePath();
        var start = path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)
            ? new ProcessStartInfo("dotnet") { ArgumentList = { path } }
            : new ProcessStartInfo(path);
        start.UseShellExecute = false;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.WorkingDirectory = System.IO.Path.GetDirectoryName(path)!;
        foreach (var (key, value) in configuration.GetSection("Inference").AsEnumerable())
        {
            if (value is not null)
            {
                start.Environment[key.Replace(":", "__", StringComparison.Ordinal)] = value;
            }
        }

        // The OpenTelemetry SDK's own settings (OTLP endpoint, protocol, batch delay): a worker exports where its host does.
        foreach (var (key, value) in configuration.AsEnumerable())
        {
            if (value is not null && key.StartsWith("OTEL_", StringComparison.Ordinal) && !key.Contains(':', StringComparison.Ordinal))
            {
                start.Environment[key] = value;
            }
        }

        start.Environment["Inference__WorkerHost__Id"] = id;
        // The worker drains and exits if this process dies without stopping it (SIGKILL cannot be passed on).
        start.Environment["Inference__WorkerHost__ParentProcessId"] = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        start.Environment["Inference__WorkerHost__DrainTimeout"] = options.Value.DrainTimeout.ToString();
        start.Environment["ASPNETCORE_URLS"] = "http://127.0.0.1:0";
        // The first stage of the worker's cold start (Workers.ColdStart): the moment the scaler's order started it.
        start.Environment[WorkerStartup.OrderedAtVariable] = TimeProvider.System.GetUtcNow().ToString("O", CultureInfo.InvariantCulture);
        start.Environment["Logging__LogLevel__Microsoft.AspNetCore"] = "Warning";
        if (standby)
        {
            // Waits for a line here; the pipe closing (this process gone) stops it.
            start.Environment["Inference__WorkerHost__Standby"] = "true";
            start.RedirectStandardInput = true;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start the worker '{path}'");
        process.OutputDataReceived += (_, e) => Forward(id, e.Data);
        process.ErrorDataReceived += (_, e) => Forward(id, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (standby)
        {
            Log.StartedStandby(logger, id, process.Id);
        }
        else
        {
            Log.Started(logger, id, process.Id);
        }

        return new Child(id, process);
    }

    private void Forward(string id, string? line)
    {
        if (!string.IsNullOrWhiteSpace(line))
        {
            Log.Output(logger, id, line);
        }
    }

    private async Task DrainAsync(Child child)
    {
        Log.Stopping(logger, child.Id, child.Process.Id);
        Terminate(child.Process);
        using var timeout = new CancellationTokenSource(options.Value.DrainTimeout);
        try
        {
            await child.Process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Log.DrainTimedOut(logger, child.Id, options.Value.DrainTimeout.TotalSeconds);
            child.Process.Kill(entireProcessTree: true);
            await child.Process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            child.Process.Dispose();
        }
    }

    private void PruneExitedLocked()
    {
        foreach (var child in _standby.Where(c => c.Process.HasExited).ToList())
        {
            // Never registered: nothing to forget.
            _standby.Remove(child);
            Log.Exited(logger, child.Id, child.Process.ExitCode);
            child.Process.Dispose();
        }

        foreach (var child in _running.Where(c => c.Process.HasExited).ToList())
        {
            _running.Remove(child);
            Log.Exited(logger, child.Id, child.Process.ExitCode);
            child.Process.Dispose();
            // A dead worker cannot deregister itself: drop it now rather than list it until its heartbeat expires.
            _ = ForgetAsync(child.Id);
        }

        _draining.RemoveAll(t => t.IsCompleted);
    }

    private async Task ForgetAsync(string workerId)
    {
        try
        {
            await registry.RemoveAsync(workerId, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.ForgetFailed(logger, ex, workerId);
        }
    }

    /// <summary>SIGTERM on Unix (the worker drains), a kill elsewhere.</summary>
    private static void Terminate(Process process)
    {
        if (OperatingSystem.IsWindows())
        {
            process.Kill(entireProcessTree: true);
        }
        else if (Posix.Kill(process.Id, Posix.SigTerm) != 0 && !process.HasExited)
        {
            process.Kill(entireProcessTree: true);
        }
    }

    public async ValueTask DisposeAsync()
    {
        lock (_lock)
        {
            _disposed = true;
            foreach (var child in _standby)
            {
                _draining.Add(DrainAsync(child));
            }

            _standby.Clear();
        }

        await SetReplicasAsync(0, CancellationToken.None).ConfigureAwait(false);
        Task[] draining;
        lock (_lock)
        {
            draining = [.. _draining];
        }

        await Task.WhenAll(draining).ConfigureAwait(false);
    }

    private sealed record Child(string Id, Process Process);

    private static partial class Posix
    {
        public const int SigTerm = 15;

        [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
        public static partial int Kill(int pid, int signal);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Started worker process {WorkerId} (pid {ProcessId})")]
        public static partial void Started(ILogger logger, string workerId, int processId);

        [LoggerMessage(2, LogLevel.Information, "Stopping worker process {WorkerId} (pid {ProcessId}): SIGTERM, draining")]
        public static partial void Stopping(ILogger logger, string workerId, int processId);

        [LoggerMessage(3, LogLevel.Warning, "Worker process {WorkerId} did not drain in {Seconds} s; killed")]
        public static partial void DrainTimedOut(ILogger logger, string workerId, double seconds);

        [LoggerMessage(4, LogLevel.Warning, "Worker process {WorkerId} exited on its own with code {ExitCode}")]
        public static partial void Exited(ILogger logger, string workerId, int exitCode);

        [LoggerMessage(6, LogLevel.Warning, "Could not remove dead worker {WorkerId} from the registry; it disappears when its heartbeat expires")]
        public static partial void ForgetFailed(ILogger logger, Exception exception, string workerId);

        [LoggerMessage(7, LogLevel.Information, "Started standby worker process {WorkerId} (pid {ProcessId})")]
        public static partial void StartedStandby(ILogger logger, string workerId, int processId);

        [LoggerMessage(8, LogLevel.Information, "Activated standby worker process {WorkerId} (pid {ProcessId})")]
        public static partial void Activated(ILogger logger, string workerId, int processId);

        [LoggerMessage(9, LogLevel.Warning, "Standby worker process {WorkerId} could not be activated; stopping it")]
        public static partial void ActivationFailed(ILogger logger, Exception exception, string workerId);

        [LoggerMessage(10, LogLevel.Warning, "Could not start a standby worker process")]
        public static partial void StandbyFailed(ILogger logger, Exception exception);

        [LoggerMessage(5, LogLevel.Information, "[{WorkerId}] {Line}")]
        public static partial void Output(ILogger logger, string workerId, string line);
    }
}
