using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace ServerlessInference.Bench;

/// <summary>A server (DevHost or the baseline) started from its built dll as a child process on a free loopback port.</summary>
/// <remarks>Disposing kills the whole process tree. Every live child is also killed when this process exits or gets
/// Ctrl+C, so a failed run leaves nothing listening.</remarks>
internal sealed class ServerProcess : IAsyncDisposable
{
    public const string DevHostName = "DevHost";
    public const string BaselineName = "baseline";

    private static readonly ConcurrentDictionary<int, Process> s_live = new();
    private static readonly ConcurrentDictionary<int, Process> s_services = new();
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _tail = new();

    static ServerProcess()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => KillAll();
        Console.CancelKeyPress += (_, _) => KillAll();
    }

    private ServerProcess(string name, Process process, Uri baseUri, string? probeFile)
    {
        Name = name;
        _process = process;
        BaseUri = baseUri;
        _probeFile = probeFile;
    }

    private readonly string? _probeFile;

    /// <summary>The counters the probe startup hook last wrote; null without a probe.</summary>
    public ProbeCounters? ReadProbe() => ProbeCounters.Read(_probeFile);

    public string Name { get; }

    public Uri BaseUri { get; }

    public int Pid => _process.Id;

    /// <summary>Raised for every line the server writes (stdout and stderr), on an output-reader thread.</summary>
    public event Action<string>? LineWritten;

    /// <summary>The last lines the server wrote (stdout and stderr).</summary>
    public string OutputTail => string.Join(Environment.NewLine, _tail);

    /// <param name="probe">The probe startup hook's dll and the file it writes to, or null.</param>
    public static async Task<ServerProcess> StartAsync(string name, string dllPath, IReadOnlyDictionary<string, string> environment, TimeSpan readyTimeout,
        (string Dll, string File)? probe = null, string[]? arguments = null)
    {
        if (!File.Exists(dllPath))
        {
            throw new FileNotFoundException($"{name} is not built at {dllPath}; build the bench in the same configuration first", dllPath);
        }

        var port = FreePort();
        var baseUri = new Uri($"http://127.0.0.1:{port}/");
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = Path.GetDirectoryName(dllPath)!, // content root: the app's appsettings.json is read from here
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(dllPath);
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add(baseUri.ToString().TrimEnd('/'));
        foreach (var argument in arguments ?? [])
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        if (probe is { } p && File.Exists(p.Dll))
        {
            start.Environment["DOTNET_STARTUP_HOOKS"] = p.Dll;
            start.Environment["SI_BENCH_PROBE_FILE"] = p.File;
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {name}");
        s_live[process.Id] = process;
        var server = new ServerProcess(name, process, baseUri, probe?.File);
        process.OutputDataReceived += (_, e) => server.Remember(e.Data);
        process.ErrorDataReceived += (_, e) => server.Remember(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await server.WaitReadyAsync(readyTimeout).ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        Kill(_process);
        s_live.TryRemove(_process.Id, out _);
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await _process.WaitForExitAsync(wait.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine($"warning: {Name} (pid {_process.Id}) did not exit within 10 s of being killed");
        }

        _process.Dispose();
    }

    private async Task WaitReadyAsync(TimeSpan timeout)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var ready = new Uri(BaseUri, "v2/health/ready");
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited with code {_process.ExitCode} before it was ready:{Environment.NewLine}{OutputTail}");
            }

            try
            {
                using var response = await client.GetAsync(ready).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException)
            {
                // Slow start-up (seeding the demo models).
            }

            await Task.Delay(200).ConfigureAwait(false);
        }

        throw new TimeoutException($"{Name} was not ready within {timeout.TotalSeconds:0} s:{Environment.NewLine}{OutputTail}");
    }

    private void Remember(string? line)
    {
        if (line is null)
        {
            return;
        }

        LineWritten?.Invoke(line);
        _tail.Enqueue(line);
        while (_tail.Count > 40 && _tail.TryDequeue(out _))
        {
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Kills <paramref name="process"/> with the other children if this process ends first.</summary>
    public static void Track(Process process) => s_live[process.Id] = process;

    public static int[] LivePids() => [.. s_live.Keys];

    public static void Untrack(Process process) => s_live.TryRemove(process.Id, out _);

    /// <summary>Kills <paramref name="process"/> (Redis, Azurite) if this process ends first; never stopped by <see cref="Freezer"/>.</summary>
    public static void TrackService(Process process) => s_services[process.Id] = process;

    public static void UntrackService(Process process) => s_services.TryRemove(process.Id, out _);

    private static void KillAll()
    {
        foreach (var process in s_live.Values.Concat(s_services.Values))
        {
            Kill(process);
        }
    }

    public static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            // Already gone.
        }
    }
}
