using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ServerlessInference.Testing.Services;

/// <summary>Azurite (blob only) on a free 127.0.0.1 port with a throw-away data folder, for tests that need real Blob
/// storage. Use as a class or collection fixture.</summary>
/// <remarks>Runs <c>&lt;repo&gt;/.state/tools/node_modules/.bin/azurite-blob</c> (where <c>infra/local/services.sh</c> and
/// <c>tests/run.sh</c> install it), installing it there with npm once if it is missing. Azurite runs with
/// <c>--loose</c> and, unless <see cref="SkipApiVersionCheck"/> is off, <c>--skipApiVersionCheck</c>, so clients on any
/// SDK version work. A missing Azurite fails the tests that
/// use it, with the reason; it never skips them (under <c>CI=true</c> or not). The process tree is killed on dispose.</remarks>
public sealed class AzuriteServer : IAsyncLifetime
{
    public const string AzuriteVersion = "3.37.0";
    public const string AccountName = "devstoreaccount1";

    /// <summary>Azurite's well-known development key (public, not a secret).</summary>
    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    private static readonly SemaphoreSlim s_install = new(1, 1);
    private readonly StringBuilder _output = new();
    private Process? _process;
    private string? _location;

    /// <summary>Start Azurite with <c>--skipApiVersionCheck</c> (the default). Off, it rejects service versions newer
    /// than it knows, as a pinned client must cope with.</summary>
    public bool SkipApiVersionCheck { get; init; } = true;

    public int Port { get; private set; }

    /// <summary><c>http://127.0.0.1:PORT/devstoreaccount1</c>.</summary>
    public string BlobEndpoint => $"http://127.0.0.1:{Port}/{AccountName}";

    public string ConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName={AccountName};AccountKey={AccountKey};BlobEndpoint={BlobEndpoint};";

    /// <summary>What Azurite printed so far (for failure messages).</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public async Task InitializeAsync()
    {
        var binary = await EnsureInstalledAsync().ConfigureAwait(false);
        Exception? last = null;
        // A free port can be taken between probing and Azurite binding it: try a few.
        for (var attempt = 0; attempt < 3; attempt++)
        {
            try
            {
                await StartAsync(binary).ConfigureAwait(false);
                return;
            }
            catch (Exception ex)
            {
                last = ex;
                await StopAsync().ConfigureAwait(false);
            }
        }

        throw new InvalidOperationException($"Azurite did not start: {last?.Message}", last);
    }

    public Task DisposeAsync() => StopAsync();

    /// <summary>The folder holding <c>ServerlessInference.sln</c>, found by walking up from the test binaries.</summary>
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ServerlessInference.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no ServerlessInference.sln above {AppContext.BaseDirectory}");
    }

    private static async Task<string> EnsureInstalledAsync()
    {
        var tools = Path.Combine(RepositoryRoot(), ".state", "tools");
        var binary = Path.Combine(tools, "node_modules", ".bin", "azurite-blob");
        if (File.Exists(binary))
        {
            return binary;
        }

        await s_install.WaitAsync().ConfigureAwait(false);
        try
        {
            if (!File.Exists(binary))
            {
                Directory.CreateDirectory(tools);
                var (exitCode, output) = await RunAsync("npm", ["install", "--prefix", tools, "--no-audit", "--no-fund", $"azurite@{AzuriteVersion}"], TimeSpan.FromMinutes(5)).ConfigureAwait(false);
                if (exitCode != 0 || !File.Exists(binary))
                {
                    throw new InvalidOperationException(
                        $"Azurite is not installed at {binary} and `npm install --prefix {tools} azurite@{AzuriteVersion}` failed (exit {exitCode}); " +
                        $"install Node.js and run infra/local/services.sh start. {(IsCi ? "CI=true: failing, not skipping. " : "")}npm said: {Tail(output)}");
                }
            }

            return binary;
        }
        finally
        {
            s_install.Release();
        }
    }

    private async Task StartAsync(string binary)
    {
        Port = FreePort();
        _location = Directory.CreateTempSubdirectory("si-azurite-").FullName;
        var start = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "--blobHost", "127.0.0.1", "--blobPort", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--location", _location, "--loose", "--silent" })
        {
            start.ArgumentList.Add(arg);
        }

        if (SkipApiVersionCheck)
        {
            start.ArgumentList.Add("--skipApiVersionCheck");
        }

        lock (_output)
        {
            _output.Clear();
        }

        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        if (!_process.Start())
        {
            throw new InvalidOperationException($"could not start {binary}");
        }

        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"azurite-blob exited with {_process.ExitCode} on port {Port}: {Tail(Output)}");
            }

            try
            {
                // Any answer (an unauthenticated GET gets 403) means it listens.
                using var response = await http.GetAsync(BlobEndpoint).ConfigureAwait(false);
                if (response.StatusCode is HttpStatusCode.Forbidden or HttpStatusCode.OK or HttpStatusCode.BadRequest)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
            }

            await Task.Delay(100).ConfigureAwait(false);
        }

        throw new InvalidOperationException($"azurite-blob did not answer on 127.0.0.1:{Port} within 60 s: {Tail(Output)}");
    }

    private async Task StopAsync()
    {
        if (_process is { } process)
        {
            _process = null;
            try
            {
                if (!process.HasExited)
                {
                    process.Kill(entireProcessTree: true);
                    using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                    await process.WaitForExitAsync(wait.Token).ConfigureAwait(false);
                }
            }
            catch (Exception ex) when (ex is InvalidOperationException or OperationCanceledException or System.ComponentModel.Win32Exception)
            {
                // Already gone, or refuses to die: nothing more a test can do.
            }
            finally
            {
                process.Dispose();
            }
        }

        if (_location is { } location)
        {
            _location = null;
            try
            {
                Directory.Delete(location, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }

    private static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    private static string Tail(string text) => text.Length <= 2000 ? text : text[^2000..];

    private static async Task<(int ExitCode, string Output)> RunAsync(string fileName, string[] args, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        try
        {
            using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {fileName}");
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(timeout);
            try
            {
                await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                return (-1, $"{fileName} timed out after {timeout}");
            }

            return (process.ExitCode, await stdout.ConfigureAwait(false) + await stderr.ConfigureAwait(false));
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return (-1, $"{fileName} not found: {ex.Message}");
        }
    }
}
