using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServerlessInference.Hosting.Orchestration;
using ServerlessInference.Redis;

namespace ServerlessInference.IntegrationTests;

/// <summary>The DevHost in the services profile: gateway and scaler in this process over Redis and Blob storage, the
/// workers child processes that its orchestrator starts (<c>ServerlessInference.Worker.dll</c> beside this assembly).</summary>
/// <remarks>
/// <para>Each host has a key prefix of its own (so hosts sharing a Redis never see each other's jobs), a weights cache
/// folder of its own, workers with one ONNX Runtime thread on the CPU, a 3 s queue lease renewed every second (a
/// crashed worker's jobs come back quickly) and a fixed number of replicas.</para>
/// <para>Disposing stops the host, whose orchestrator drains every worker (SIGTERM, wait). As a backstop it then kills
/// any worker process it ever saw that is still alive and fails; and a watchdog shell per worker kills it should this
/// test process die without disposing.</para>
/// </remarks>
public sealed class PlatformHost : WebApplicationFactory<Program>
{
    private readonly Dictionary<string, string?> _settings;
    private readonly Lock _lock = new();
    private readonly HashSet<int> _seen = [];
    private readonly List<Process> _watchdogs = [];
    private readonly CancellationTokenSource _stopWatching = new();
    private Task? _watching;

    private readonly Action<IServiceCollection>? _configureServices;

    public PlatformHost(
        string redisConnectionString, string blobConnectionString, int replicas, IReadOnlyDictionary<string, string?>? overrides = null,
        Action<IServiceCollection>? configureServices = null)
    {
        _configureServices = configureServices;
        var id = Guid.NewGuid().ToString("N")[..8];
        KeyPrefix = $"it{id}:";
        Root = Path.Combine(Path.GetTempPath(), "si-integration-tests", id);
        CacheDirectory = Path.Combine(Root, "weights");
        Replicas = replicas;
        var replicaText = replicas.ToString(CultureInfo.InvariantCulture);
        _settings = new Dictionary<string, string?>
        {
            ["profile"] = "services",
            ["Inference:Redis:ConnectionString"] = redisConnectionString,
            ["Inference:Redis:KeyPrefix"] = KeyPrefix,
            ["Inference:ModelStore:Blob:ConnectionString"] = blobConnectionString,
            ["Inference:WarmPool:CacheDirectory"] = CacheDirectory,
            ["Inference:Onnx:IntraOpThreads"] = "1",
            ["Inference:Onnx:ExecutionProvider"] = "Cpu",
            ["Inference:Scaling:MinReplicas"] = replicaText,
            ["Inference:Scaling:MaxReplicas"] = replicaText,
            ["Inference:Queue:LeaseDuration"] = "00:00:03",
            ["Inference:Worker:LeaseRenewInterval"] = "00:00:01",
            ["Inference:Workers:DrainTimeout"] = "00:00:20",
        };
        foreach (var (key, value) in overrides ?? new Dictionary<string, string?>())
        {
            _settings[key] = value;
        }
    }

    /// <summary>Prefix of every Redis key and channel of this host and its workers.</summary>
    public string KeyPrefix { get; }

    /// <summary>Temporary folder of this host (the workers' weights cache is under it).</summary>
    public string Root { get; }

    public string CacheDirectory { get; }

    public int Replicas { get; }

    /// <summary>The host's log, worker output included.</summary>
    public LogCapture Logs { get; } = new();

    public ChildProcessWorkerOrchestrator Orchestrator => Services.GetRequiredService<ChildProcessWorkerOrchestrator>();

    public RedisJobQueue Queue => Services.GetRequiredService<RedisJobQueue>();

    /// <summary>The Redis consumer name of a worker process (the worker's default, <c>{machine}-{pid}</c>).</summary>
    public static string ConsumerName(int processId) => $"{Environment.MachineName}-{processId}";

    /// <summary>Starts the host (seeding the demo models when the store lacks them) and waits until its workers report.</summary>
    public async Task<IReadOnlyList<(string Id, int ProcessId)>> StartAsync(TimeSpan timeout)
    {
        _ = Server;
        _watching = WatchAsync(_stopWatching.Token);
        using var client = CreateClient();
        return await WaitForWorkersAsync(client, timeout);
    }

    /// <summary>Waits until the orchestrator runs <see cref="Replicas"/> workers and each of them heartbeats as running
    /// in <c>/status</c>; returns them.</summary>
    public async Task<IReadOnlyList<(string Id, int ProcessId)>> WaitForWorkersAsync(HttpClient client, TimeSpan timeout)
    {
        var giveUp = Stopwatch.StartNew();
        var last = "";
        while (true)
        {
            var workers = Orchestrator.Workers;
            if (workers.Count == Replicas)
            {
                try
                {
                    var status = await GetStatusAsync(client);
                    var running = status.GetProperty("workers").EnumerateArray()
                        .Where(w => w.GetProperty("state").GetString() == "running")
                        .Select(w => w.GetProperty("id").GetString())
                        .ToHashSet();
                    if (workers.All(w => running.Contains(w.Id)))
                    {
                        return workers;
                    }

                    last = status.ToString();
                }
                catch (HttpRequestException ex)
                {
                    last = ex.Message;
                }
            }

            if (giveUp.Elapsed > timeout)
            {
                Assert.Fail($"{Replicas} workers did not come up in {timeout.TotalSeconds} s; orchestrator: [{string.Join(", ", workers)}]; last /status: {last}\nlog:\n{Logs.Tail()}");
            }

            await Task.Delay(100);
        }
    }

    /// <summary>Fails when a recent scaling decision (<c>/status</c> keeps the last 50, one per tick) asked for more
    /// workers than <see cref="Replicas"/> (this host's MaxReplicas) or the orchestrator runs more.</summary>
    public async Task AssertScalingWithinMaxReplicasAsync(HttpClient client)
    {
        var status = await GetStatusAsync(client);
        var over = status.GetProperty("scaling_decisions").EnumerateArray().Where(d => d.GetProperty("desired").GetInt32() > Replicas).ToList();
        Assert.True(over.Count == 0, $"the scaler asked for more than MaxReplicas = {Replicas} workers:\n{string.Join("\n", over.Take(5))}\n"
            + string.Join("\n", Logs.Matching("Scaling workers")));
        Assert.True(Orchestrator.Workers.Count <= Replicas, $"the orchestrator runs {Orchestrator.Workers.Count} workers, MaxReplicas is {Replicas}");
    }

    /// <summary><c>GET /status</c>; throws <see cref="HttpRequestException"/> when it is not 200.</summary>
    public static async Task<JsonElement> GetStatusAsync(HttpClient client)
    {
        using var response = await client.GetAsync("/status");
        if (response.StatusCode != HttpStatusCode.OK)
        {
            throw new HttpRequestException($"/status answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        }

        return await Oip.ReadJsonAsync(response);
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }

        if (_configureServices is not null)
        {
            builder.ConfigureServices(_configureServices);
        }

        builder.ConfigureLogging(logging =>
        {
            logging.ClearProviders();
            logging.AddProvider(Logs);
        });
    }

    public override async ValueTask DisposeAsync()
    {
        try
        {
            await base.DisposeAsync();
        }
        finally
        {
            await _stopWatching.CancelAsync();
            if (_watching is not null)
            {
                await _watching;
            }

            var leaked = KillLeftovers();
            foreach (var watchdog in _watchdogs)
            {
                try
                {
                    if (!watchdog.HasExited)
                    {
                        watchdog.Kill();
                    }
                }
                catch (InvalidOperationException)
                {
                }

                watchdog.Dispose();
            }

            try
            {
                Directory.Delete(Root, recursive: true);
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }

            if (leaked.Count > 0)
            {
                throw new InvalidOperationException($"worker processes still ran after the host stopped (killed now): {string.Join(", ", leaked)}");
            }
        }
    }

    /// <summary>Records every worker process the orchestrator starts and gives it a watchdog.</summary>
    private async Task WatchAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                foreach (var (_, pid) in Orchestrator.Workers)
                {
                    lock (_lock)
                    {
                        if (_seen.Add(pid))
                        {
                            StartWatchdog(pid);
                        }
                    }
                }
            }
            catch (ObjectDisposedException)
            {
                return;
            }

            try
            {
                await Task.Delay(200, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>Kills the worker once this test process is gone (a crashed or killed test host never disposes).</summary>
    private void StartWatchdog(int pid)
    {
        var me = Environment.ProcessId;
        var script = $"while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 1; done; kill -0 {me} 2>/dev/null || kill -9 {pid} 2>/dev/null";
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(script);
        try
        {
            if (Process.Start(start) is { } watchdog)
            {
                _watchdogs.Add(watchdog);
            }
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No shell: disposal still stops the workers.
        }
    }

    private List<int> KillLeftovers()
    {
        var leaked = new List<int>();
        List<int> seen;
        lock (_lock)
        {
            seen = [.. _seen];
        }

        foreach (var pid in seen)
        {
            if (!IsWorkerProcess(pid))
            {
                continue;
            }

            leaked.Add(pid);
            try
            {
                using var process = Process.GetProcessById(pid);
                process.Kill(entireProcessTree: true);
                process.WaitForExit(5000);
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
            {
            }
        }

        return leaked;
    }

    /// <summary>True while <paramref name="pid"/> is a live worker process (not a pid reused by something else).</summary>
    public static bool IsWorkerProcess(int pid)
    {
        try
        {
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline");
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // A zombie (state Z) has exited already.
            var state = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
            return cmdline.Contains("ServerlessInference.Worker", StringComparison.Ordinal) && state != "Z";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
