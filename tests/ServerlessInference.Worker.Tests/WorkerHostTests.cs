using System.Diagnostics;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using ServerlessInference.Workers;

namespace ServerlessInference.Worker.Tests;

public sealed class WorkerHostTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "si-worker-tests-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    [Fact]
    public async Task WorkerHost_CpuEngine_ReportsTheExecutionProviderInHeartbeatsAndHealthz()
    {
        await using var app = Build("worker-under-test");
        app.MapWorkerEndpoints();
        await app.StartAsync();

        // The heartbeat (what /status lists) carries the provider.
        var registry = app.Services.GetRequiredService<IWorkerRegistry>();
        var status = await WaitForHeartbeatAsync(registry, "worker-under-test");
        Assert.Equal("CPU", status.ExecutionProvider);

        // So does /healthz, with the reason.
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };
        using var health = JsonDocument.Parse(await http.GetStringAsync(new Uri("/healthz", UriKind.Relative)));
        Assert.Equal("worker-under-test", health.RootElement.GetProperty("id").GetString());
        Assert.Equal("CPU", health.RootElement.GetProperty("execution_provider").GetString());
        Assert.Equal("Inference:Onnx:ExecutionProvider is Cpu", health.RootElement.GetProperty("execution_provider_detail").GetString());
        Assert.Equal("running", health.RootElement.GetProperty("state").GetString());

        await app.StopAsync();
    }

    [Fact]
    public async Task WorkerHost_ParentProcessDies_DrainsAndStops()
    {
        using var parent = Process.Start(new ProcessStartInfo("sleep", "300") { UseShellExecute = false })!;
        try
        {
            await using var app = Build("orphan-to-be", new Dictionary<string, string?>
            {
                ["Inference:WorkerHost:ParentProcessId"] = parent.Id.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Inference:WorkerHost:ParentCheckInterval"] = "00:00:00.050",
            });
            var stopping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            app.Lifetime.ApplicationStopping.Register(() => stopping.TrySetResult());
            await app.StartAsync();
            await WaitForHeartbeatAsync(app.Services.GetRequiredService<IWorkerRegistry>(), "orphan-to-be");
            Assert.False(stopping.Task.IsCompleted, "the worker stopped while its parent was alive");

            parent.Kill();
            await parent.WaitForExitAsync();

            await stopping.Task.WaitAsync(TimeSpan.FromSeconds(30));
            await app.StopAsync();
        }
        finally
        {
            if (!parent.HasExited)
            {
                parent.Kill();
            }
        }
    }

    [Fact]
    public async Task WorkerHost_Standby_RegistersOnlyOnceActivated()
    {
        var line = new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var app = Build("standby-under-test", new Dictionary<string, string?>
        {
            ["Inference:WorkerHost:Standby"] = "true",
        }, services => services.AddSingleton(new StandbyActivation(new LineReader(line.Task))));
        await app.StartAsync();
        var worker = app.Services.GetRequiredService<WorkerService>();
        var registry = app.Services.GetRequiredService<IWorkerRegistry>();
        var deadline = Stopwatch.GetTimestamp() + (30 * Stopwatch.Frequency);
        while (worker.State != "standby")
        {
            Assert.True(Stopwatch.GetTimestamp() < deadline, $"the worker never went on standby (state {worker.State})");
            await Task.Delay(20);
        }

        Assert.Empty(await registry.ListAsync(CancellationToken.None));

        line.SetResult("start");

        var status = await WaitForHeartbeatAsync(registry, "standby-under-test");
        Assert.Equal(WorkerState.Running, status.State);
        await app.StopAsync();
    }

    [Fact]
    public async Task WorkerHost_StandbyInputEnds_StopsWithoutRegistering()
    {
        await using var app = Build("standby-orphan", new Dictionary<string, string?>
        {
            ["Inference:WorkerHost:Standby"] = "true",
        }, services => services.AddSingleton(new StandbyActivation(new StringReader(""))));
        var stopping = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        app.Lifetime.ApplicationStopping.Register(() => stopping.TrySetResult());
        await app.StartAsync();

        await stopping.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Empty(await app.Services.GetRequiredService<IWorkerRegistry>().ListAsync(CancellationToken.None));
        await app.StopAsync();
    }

    /// <summary>Standard input as the test controls it: one line, when the test gives it.</summary>
    private sealed class LineReader(Task<string?> line) : TextReader
    {
        public override ValueTask<string?> ReadLineAsync(CancellationToken cancellationToken) => new(line.WaitAsync(cancellationToken));
    }

    /// <summary>A worker host on the CPU over a temporary model folder and cache, with <paramref name="extra"/> settings.</summary>
    private WebApplication Build(string id, IReadOnlyDictionary<string, string?>? extra = null, Action<IServiceCollection>? services = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Inference:Onnx:ExecutionProvider"] = "Cpu",
            ["Inference:ModelStore:Root"] = Path.Combine(_root, "models"),
            ["Inference:WarmPool:CacheDirectory"] = Path.Combine(_root, "weights"),
            ["Inference:WorkerHost:Id"] = id,
        }.Concat(extra ?? new Dictionary<string, string?>()));
        builder.AddWorkerHost();
        services?.Invoke(builder.Services);
        return builder.Build();
    }

    private static async Task<WorkerStatus> WaitForHeartbeatAsync(IWorkerRegistry registry, string id)
    {
        var deadline = Stopwatch.GetTimestamp() + (30 * Stopwatch.Frequency);
        while (true)
        {
            var status = (await registry.ListAsync(CancellationToken.None)).SingleOrDefault(w => w.Id == id);
            if (status is { State: WorkerState.Running })
            {
                return status;
            }

            Assert.True(Stopwatch.GetTimestamp() < deadline, $"worker {id} never heartbeated as running");
            await Task.Delay(20);
        }
    }
}
