using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Testcontainers.Redis;

namespace ServerlessInference.Testing.Services;

/// <summary>A real Redis on loopback for tests: a Testcontainers container when a Docker engine answers, else a
/// <c>redis-server</c> from PATH on a free 127.0.0.1 port with its data in a temporary folder.</summary>
/// <remarks>
/// <para>Use it as an xunit fixture (it is an <see cref="IAsyncLifetime"/>) or through <see cref="StartAsync"/>.
/// When neither way works it throws with the reason; it never lets a test pass without Redis (under <c>CI=true</c>
/// the message says the run must fail).</para>
/// <para>The server is killed on dispose, and on process exit; a watchdog also kills a local server when the test
/// process dies without either (a crashed or hung-and-killed test host).</para>
/// <para><see cref="StopAsync"/> and <see cref="RestartAsync"/> take the server down and bring it back on the same
/// port; with <c>appendOnly</c> the data survives, as it does for the platform's local services.</para>
/// <para>Like every Redis the platform deploys, it never evicts a key (<c>maxmemory-policy noeviction</c>).</para>
/// </remarks>
public sealed class RedisServer : IAsyncLifetime, IAsyncDisposable
{
    private const int ContainerPort = 6379;
    private readonly bool _appendOnly;
    private readonly string _appendFsync;
    private readonly StringBuilder _output = new();
    private RedisContainer? _container;
    private Process? _process;
    private Process? _watchdog;
    private string? _executable;
    private string? _directory;
    private bool _disposed;

    /// <summary>A server without persistence (the xunit fixture constructor).</summary>
    public RedisServer()
        : this(appendOnly: false)
    {
    }

    private RedisServer(bool appendOnly, string appendFsync = "everysec")
    {
        if (appendFsync is not ("everysec" or "always" or "no"))
        {
            throw new ArgumentOutOfRangeException(nameof(appendFsync), appendFsync, "appendfsync is everysec, always or no");
        }

        _appendOnly = appendOnly;
        _appendFsync = appendFsync;
    }

    public string Host => "127.0.0.1";

    public int Port { get; private set; }

    /// <summary>A StackExchange.Redis configuration string for this server.</summary>
    public string ConnectionString => $"{Host}:{Port}";

    /// <summary>The local server's data folder (its append-only files are under <c>appendonlydir</c>); null when a
    /// container runs.</summary>
    public string? DataDirectory => _container is null ? _directory : null;

    /// <summary>How the server runs, for test output: <c>container redis:7.0</c> or the redis-server path.</summary>
    public string Kind => _container is not null ? "container redis:7.0" : _executable ?? "not started";

    /// <summary>Starts a server of its own (for tests that stop and restart it). <paramref name="appendFsync"/>: when an
    /// append-only server syncs its file (<c>everysec</c>, as deployed; <c>always</c>; <c>no</c>).</summary>
    public static async Task<RedisServer> StartAsync(bool appendOnly = false, string appendFsync = "everysec")
    {
        var server = new RedisServer(appendOnly, appendFsync);
        try
        {
            await server.InitializeAsync().ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async Task InitializeAsync()
    {
        string? dockerProblem;
        try
        {
            dockerProblem = await TryStartContainerAsync().ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            dockerProblem = $"{ex.GetType().Name}: {ex.Message}";
            if (_container is not null)
            {
                await _container.DisposeAsync().ConfigureAwait(false);
                _container = null;
            }
        }

        if (dockerProblem is null)
        {
            return;
        }

        _executable = FindOnPath("redis-server");
        if (_executable is null)
        {
            var ci = string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
            throw new InvalidOperationException(
                "These tests need Redis and none could be started: no Docker engine for Testcontainers (" + dockerProblem
                + ") and no redis-server on PATH. Install it (apt-get install -y redis-server) or run tests/run.sh, which does."
                + (ci ? " CI=true: a missing service fails the run." : ""));
        }

        _directory = Path.Combine(Path.GetTempPath(), "si-redis-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
        Port = FreePort();
        AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
        await StartLocalAsync().ConfigureAwait(false);
    }

    /// <summary>Takes the server down. <paramref name="graceful"/>: <c>SHUTDOWN</c>, which flushes the append-only
    /// file; otherwise SIGKILL.</summary>
    public async Task StopAsync(bool graceful = true)
    {
        if (_container is not null)
        {
            await _container.StopAsync().ConfigureAwait(false);
            return;
        }

        if (_process is null || _process.HasExited)
        {
            return;
        }

        if (graceful)
        {
            try
            {
                await SendAsync("SHUTDOWN\r\n", expectReply: false).ConfigureAwait(false);
            }
            catch (IOException)
            {
                // It went away already.
            }
            catch (SocketException)
            {
            }
        }

        if (!graceful || !await WaitForExitAsync(_process, TimeSpan.FromSeconds(10)).ConfigureAwait(false))
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().ConfigureAwait(false);
        }

        KillWatchdog();
    }

    /// <summary>Brings a stopped server back on the same port (with its data when it is append-only).</summary>
    public async Task RestartAsync()
    {
        if (_container is not null)
        {
            await _container.StartAsync().ConfigureAwait(false);
            Port = _container.GetMappedPublicPort(ContainerPort);
            return;
        }

        if (_process is { HasExited: false })
        {
            return;
        }

        await StartLocalAsync().ConfigureAwait(false);
    }

    /// <summary>True when the server answers <c>PING</c>.</summary>
    public async Task<bool> PingAsync()
    {
        try
        {
            return (await SendAsync("PING\r\n", expectReply: true).ConfigureAwait(false)).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is IOException or SocketException or TimeoutException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        if (_container is not null)
        {
            await _container.DisposeAsync().ConfigureAwait(false);
        }

        KillLocal();
        if (_directory is not null)
        {
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
    }

    Task IAsyncLifetime.DisposeAsync() => DisposeAsync().AsTask();

    /// <summary>Null when a container runs; else why not.</summary>
    private async Task<string?> TryStartContainerAsync()
    {
        if (Environment.GetEnvironmentVariable("SI_TESTS_NO_DOCKER") is "1" or "true")
        {
            return "SI_TESTS_NO_DOCKER is set";
        }

        var port = FreePort();
        var builder = new RedisBuilder("redis:7.0").WithPortBinding(port, ContainerPort).WithCommand("--maxmemory-policy", "noeviction");
        if (_appendOnly)
        {
            builder = builder.WithCommand("--appendonly", "yes", "--appendfsync", _appendFsync);
        }

        // Build() throws DockerUnavailableException when no engine answers.
        _container = builder.Build();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await _container.StartAsync(timeout.Token).ConfigureAwait(false);
        Port = _container.GetMappedPublicPort(ContainerPort);
        return null;
    }

    private async Task StartLocalAsync()
    {
        lock (_output)
        {
            _output.Clear();
        }

        var start = new ProcessStartInfo(_executable!)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = _directory,
        };
        foreach (var argument in (string[])["--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", Host,
                     "--dir", _directory!, "--save", "", "--appendonly", _appendOnly ? "yes" : "no", "--appendfsync", _appendFsync,
                     "--maxmemory-policy", "noeviction", "--daemonize", "no", "--loglevel", "warning"])
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {_executable}");
        process.OutputDataReceived += (_, e) => Capture(e.Data);
        process.ErrorDataReceived += (_, e) => Capture(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        StartWatchdog(process.Id);

        var deadline = Stopwatch.GetTimestamp() + (long)(10 * Stopwatch.Frequency);
        while (!await PingAsync().ConfigureAwait(false))
        {
            if (process.HasExited || Stopwatch.GetTimestamp() > deadline)
            {
                string output;
                lock (_output)
                {
                    output = _output.ToString();
                }

                KillLocal();
                throw new InvalidOperationException($"{_executable} on port {Port} did not answer PING: {output}");
            }

            await Task.Delay(20).ConfigureAwait(false);
        }
    }

    private void Capture(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            if (_output.Length < 16_000)
            {
                _output.AppendLine(line);
            }
        }
    }

    /// <summary>A shell loop that kills the server once this process is gone, however it ended.</summary>
    private void StartWatchdog(int serverPid)
    {
        var script = $"while kill -0 {Environment.ProcessId} 2>/dev/null && kill -0 {serverPid} 2>/dev/null; do sleep 1; done; kill -9 {serverPid} 2>/dev/null";
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(script);
        try
        {
            _watchdog = Process.Start(start);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No shell: dispose and process exit still kill the server.
        }
    }

    private void KillWatchdog()
    {
        try
        {
            if (_watchdog is { HasExited: false })
            {
                _watchdog.Kill();
            }
        }
        catch (InvalidOperationException)
        {
        }

        _watchdog?.Dispose();
        _watchdog = null;
    }

    private void KillLocal()
    {
        try
        {
            if (_process is { HasExited: false })
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process?.Dispose();
        _process = null;
        KillWatchdog();
    }

    private void OnProcessExit(object? sender, EventArgs e) => KillLocal();

    private async Task<string> SendAsync(string command, bool expectReply)
    {
        using var client = new TcpClient();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await client.ConnectAsync(Host, Port, timeout.Token).ConfigureAwait(false);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(command), timeout.Token).ConfigureAwait(false);
        if (!expectReply)
        {
            return "";
        }

        var buffer = new byte[64];
        var read = await stream.ReadAsync(buffer, timeout.Token).ConfigureAwait(false);
        return Encoding.ASCII.GetString(buffer, 0, read);
    }

    private static async Task<bool> WaitForExitAsync(Process process, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string? FindOnPath(string name)
    {
        foreach (var folder in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(folder, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
