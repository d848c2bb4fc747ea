using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ServerlessInference.Bench;

/// <summary>Redis (<c>redis-server</c> from PATH) and Azurite blob (<c>&lt;repo&gt;/.state/tools/node_modules/.bin/azurite-blob</c>,
/// installed by <c>infra/local/services.sh install</c>) on free loopback ports, with throw-away data folders, for the
/// services-profile DevHost. They are never stopped with SIGSTOP (they are not in <see cref="ServerProcess.LivePids"/>)
/// and are killed on dispose and when the bench exits.</summary>
internal sealed class LocalServices : IAsyncDisposable
{
    private const string AzuriteKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    private readonly string _directory;
    private Process? _redis;
    private Process? _azurite;
    private int _redisPort;
    private int _blobPort;

    private LocalServices(string directory) => _directory = directory;

    public string RedisConnectionString => $"127.0.0.1:{_redisPort}";

    public string BlobConnectionString =>
        $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AzuriteKey};BlobEndpoint=http://127.0.0.1:{_blobPort}/devstoreaccount1;";

    public int RedisPid => _redis?.Id ?? 0;

    public int AzuritePid => _azurite?.Id ?? 0;

    /// <param name="blob">False: Redis only (a services DevHost over a folder model store needs no Azurite).</param>
    /// <param name="appendFsync">Null: no append-only file. Otherwise the append-only file on with this
    /// <c>appendfsync</c> (<c>everysec</c>, <c>always</c>).</param>
    public static async Task<LocalServices> StartAsync(string repositoryRoot, string directory, bool blob = true, string? appendFsync = null)
    {
        var services = new LocalServices(directory);
        try
        {
            await services.StartRedisAsync(appendFsync).ConfigureAwait(false);
            if (blob)
            {
                await services.StartAzuriteAsync(Path.Combine(repositoryRoot, ".state", "tools", "node_modules", ".bin", "azurite-blob")).ConfigureAwait(false);
            }

            return services;
        }
        catch
        {
            await services.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var process in new[] { _azurite, _redis })
        {
            if (process is null)
            {
                continue;
            }

            ServerProcess.Kill(process);
            ServerProcess.UntrackService(process);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await process.WaitForExitAsync(wait.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine($"warning: pid {process.Id} did not exit within 10 s of being killed");
            }

            process.Dispose();
        }

        _azurite = _redis = null;
    }

    private async Task StartRedisAsync(string? appendFsync)
    {
        var data = Directory.CreateDirectory(Path.Combine(_directory, "redis")).FullName;
        _redisPort = FreePort();
        _redis = Start("redis-server", "--port", _redisPort.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", appendFsync is null ? "no" : "yes", "--appendfsync", appendFsync ?? "everysec", "--maxmemory-policy", "noeviction",
            "--dir", data, "--protected-mode", "no");
        var deadline = Stopwatch.GetTimestamp() + 20 * Stopwatch.Frequency;
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (_redis.HasExited)
            {
                throw new InvalidOperationException($"redis-server exited with code {_redis.ExitCode}");
            }

            try
            {
                using var tcp = new TcpClient();
                await tcp.ConnectAsync(IPAddress.Loopback, _redisPort).ConfigureAwait(false);
                var stream = tcp.GetStream();
                await stream.WriteAsync("PING\r\n"u8.ToArray()).ConfigureAwait(false);
                var buffer = new byte[16];
                var read = await stream.ReadAsync(buffer).ConfigureAwait(false);
                if (Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal))
                {
                    return;
                }
            }
            catch (SocketException)
            {
            }
            catch (IOException)
            {
            }

            await Task.Delay(100).ConfigureAwait(false);
        }

        throw new TimeoutException($"redis-server did not answer PING on port {_redisPort} within 20 s");
    }

    private async Task StartAzuriteAsync(string binary)
    {
        if (!File.Exists(binary))
        {
            throw new FileNotFoundException($"Azurite is not installed at {binary}; run infra/local/services.sh install (or --skip-services)", binary);
        }

        var data = Directory.CreateDirectory(Path.Combine(_directory, "azurite")).FullName;
        _blobPort = FreePort();
        _azurite = Start(binary, "--blobHost", "127.0.0.1", "--blobPort", _blobPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--location", data, "--loose", "--silent", "--skipApiVersionCheck");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.GetTimestamp() + 60 * Stopwatch.Frequency;
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (_azurite.HasExited)
            {
                throw new InvalidOperationException($"azurite-blob exited with code {_azurite.ExitCode}");
            }

            try
            {
                // Any answer (an unauthenticated GET gets 403) means it listens.
                using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{_blobPort}/devstoreaccount1")).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
            }

            await Task.Delay(100).ConfigureAwait(false);
        }

        throw new TimeoutException($"azurite-blob did not answer on port {_blobPort} within 60 s");
    }

    private static Process Start(string fileName, params string[] arguments)
    {
        var start = new ProcessStartInfo(fileName) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {fileName}");
        ServerProcess.TrackService(process);
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
