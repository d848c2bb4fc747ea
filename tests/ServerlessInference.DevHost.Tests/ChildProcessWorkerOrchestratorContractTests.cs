using System.Diagnostics;
using System.Runtime.Versioning;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Hosting.Orchestration;
using ServerlessInference.Embedded;
using ServerlessInference.Scaling;
using ServerlessInference.Testing.Contracts;
using ServerlessInference.Workers;

namespace ServerlessInference.DevHost.Tests;

/// <summary>The orchestrator contract, and what only this orchestrator does, over real child processes of this test
/// host (Linux: SIGTERM and <c>/proc</c>).</summary>
/// <remarks>The children are a shell script standing in for the worker: what the contract checks is the process
/// lifecycle, and a real worker (Redis, a model store, ONNX Runtime) would take seconds to start for nothing more;
/// the integration tests run the real one under this orchestrator. Like the worker, the stand-in exits on SIGTERM and
/// when <c>Inference:WorkerHost:ParentProcessId</c> is gone, so a crashed test host leaves no process behind; and
/// disposing kills, and fails on, any child still alive after the orchestrator's own drain.</remarks>
[SupportedOSPlatform("linux")]
public sealed class ChildProcessWorkerOrchestratorContractTests : WorkerOrchestratorContract
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "si-orchestrator-contract", Guid.NewGuid().ToString("N"));
    private readonly ChildProcessOptions _options = new() { DrainTimeout = TimeSpan.FromSeconds(10) };
    private readonly Lock _lock = new();
    private readonly HashSet<int> _seen = [];
    private readonly List<ChildProcessWorkerOrchestrator> _orchestrators = [];
    private readonly InMemoryWorkerRegistry _registry = new(TimeProvider.System, TimeSpan.FromHours(1));
    private string _worker = "";

    protected override TimeProvider Time => TimeProvider.System;

    protected override async ValueTask AdvanceAsync(TimeSpan duration) => await Task.Delay(duration);

    protected override int WorkersStarted
    {
        get
        {
            Observe();
            lock (_lock)
            {
                return _seen.Count;
            }
        }
    }

    public override Task InitializeAsync()
    {
        Directory.CreateDirectory(_root);
        _worker = Path.Combine(_root, "worker.sh");
        File.WriteAllText(_worker, """
            #!/bin/sh
            # Stands in for the worker: lives until SIGTERM (tail's default is to exit on it) or until its parent is gone.
            exec tail --pid="$Inference__WorkerHost__ParentProcessId" -f /dev/null
            """);
        File.SetUnixFileMode(_worker, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        _options.Path = _worker;
        return base.InitializeAsync();
    }

    public override async Task DisposeAsync()
    {
        try
        {
            await base.DisposeAsync();
        }
        finally
        {
            Observe();
            int[] alive;
            lock (_lock)
            {
                alive = _seen.Where(IsAlive).ToArray();
            }

            foreach (var pid in alive)
            {
                try
                {
                    using var process = Process.GetProcessById(pid);
                    process.Kill();
                }
                catch (ArgumentException)
                {
                    // Gone between the look and the kill.
                }
            }

            Directory.Delete(_root, recursive: true);
            Assert.True(alive.Length == 0, $"worker processes {string.Join(", ", alive)} outlived the orchestrator; killed");
        }
    }

    protected override ValueTask<IWorkerOrchestrator> CreateOrchestratorAsync() =>
        ValueTask.FromResult<IWorkerOrchestrator>(new Observed(Create(_registry), Observe));

    // What only this orchestrator does.

    [Fact]
    public async Task SetReplicasAsync_Down_StopsTheIdlestWorkersAsTheRegistryTells()
    {
        var orchestrator = new Observed(Create(_registry), Observe);
        await orchestrator.SetReplicasAsync(3, default);
        var workers = _orchestrators.Single().Workers;
        await _registry.HeartbeatAsync(Status(workers[0].Id, inFlight: 2), default);
        await _registry.HeartbeatAsync(Status(workers[1].Id, inFlight: 7), default);
        await _registry.HeartbeatAsync(Status(workers[2].Id, inFlight: 0), default);

        await orchestrator.SetReplicasAsync(1, default);

        Assert.Equal(workers[1], Assert.Single(_orchestrators.Single().Workers));
    }

    [Fact]
    public async Task SetReplicasAsync_DownWithAPreference_StopsThePreferredIdleWorkersFirstAndNeverABusyOne()
    {
        var orchestrator = Create(_registry);
        await new Observed(orchestrator, Observe).SetReplicasAsync(4, default);
        var workers = orchestrator.Workers;
        await _registry.HeartbeatAsync(Status(workers[0].Id, inFlight: 0), default);
        await _registry.HeartbeatAsync(Status(workers[1].Id, inFlight: 0), default);
        await _registry.HeartbeatAsync(Status(workers[2].Id, inFlight: 0), default);
        await _registry.HeartbeatAsync(Status(workers[3].Id, inFlight: 4), default);

        // The busy worker is named first but passed over; the idle named one goes, then the idlest (first) one.
        Observe();
        await orchestrator.SetReplicasAsync(2, [workers[3].Id, workers[2].Id], default);
        Observe();

        Assert.Equal([workers[1], workers[3]], orchestrator.Workers);
    }

    [Fact]
    public async Task GetReplicasAsync_AWorkerDiedOnItsOwn_StopsCountingItAndForgetsIt()
    {
        var orchestrator = Create(_registry);
        await new Observed(orchestrator, Observe).SetReplicasAsync(2, default);
        var (id, pid) = orchestrator.Workers[0];
        await _registry.HeartbeatAsync(Status(id, inFlight: 0), default);

        using (var process = Process.GetProcessById(pid))
        {
            process.Kill();
        }

        // The next scaler tick sees one worker and starts another.
        await EventuallyAsync(() => orchestrator.GetReplicasAsync(default).AsTask(), n => n == 1, "the dead worker to stop counting");
        await EventuallyAsync(() => _registry.ListAsync(default).AsTask(), l => l.Count == 0, "the dead worker to leave the registry");
    }

    [Fact]
    public async Task SetReplicasAsync_ConcurrentScaleDowns_StopOnlyWhatIsOverTheCount()
    {
        // Both calls read the registry before either stops a worker.
        var orchestrator = new Observed(Create(new RendezvousRegistry(_registry, callers: 2)), Observe);
        await orchestrator.SetReplicasAsync(3, default);

        await Task.WhenAll(orchestrator.SetReplicasAsync(1, default).AsTask(), orchestrator.SetReplicasAsync(1, default).AsTask());

        Assert.Equal(1, await orchestrator.GetReplicasAsync(default));
        await EventuallyAsync(() => PlatformReplicasAsync().AsTask(), n => n == 1, "two workers to exit");
    }

    [Fact]
    public async Task SetReplicasAsync_WithAStandby_ActivatesThatProcessAndStartsAnotherStandby()
    {
        // Like the worker, the stand-in waits for a line on standard input when started as a standby; it leaves a file
        // when it gets one.
        var script = Path.Combine(_root, "standby.sh");
        File.WriteAllText(script, $$"""
            #!/bin/sh
            if [ "$Inference__WorkerHost__Standby" = "true" ] && read line; then
              echo "$line" > "{{_root}}/$Inference__WorkerHost__Id.activated"
            fi
            exec tail --pid="$Inference__WorkerHost__ParentProcessId" -f /dev/null
            """);
        File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        _options.Path = script;
        _options.Standby = 1;
        var orchestrator = Create(_registry);

        // The scaler's first look fills the standby pool; a standby is no replica.
        Assert.Equal(0, await orchestrator.GetReplicasAsync(default));
        var standby = Assert.Single(orchestrator.Standby);
        Observe();
        await new Observed(orchestrator, Observe).SetReplicasAsync(1, default);

        Assert.Equal(standby, Assert.Single(orchestrator.Workers));
        var next = Assert.Single(orchestrator.Standby);
        Assert.NotEqual(standby.ProcessId, next.ProcessId);
        Assert.Equal(1, await orchestrator.GetReplicasAsync(default));
        await EventuallyAsync(() => Task.FromResult(File.Exists(Path.Combine(_root, $"{standby.Id}.activated"))), b => b, "the standby to be told to start");
        Assert.Equal("start", File.ReadAllText(Path.Combine(_root, $"{standby.Id}.activated")).Trim());
        Assert.False(File.Exists(Path.Combine(_root, $"{next.Id}.activated")));
        Assert.Equal(2, WorkersStarted);
    }

    private ChildProcessWorkerOrchestrator Create(IWorkerRegistry registry)
    {
        var orchestrator = Track(new ChildProcessWorkerOrchestrator(
            Options.Create(_options),
            new ConfigurationBuilder().Build(),
            registry,
            NullLogger<ChildProcessWorkerOrchestrator>.Instance));
        lock (_lock)
        {
            _orchestrators.Add(orchestrator);
        }

        return orchestrator;
    }

    private static WorkerStatus Status(string id, int inFlight) => new()
    {
        Id = id,
        Host = "test",
        ExecutionProvider = "CPU",
        State = WorkerState.Running,
        InFlight = inFlight,
        WarmModels = [],
        MemoryUsedBytes = 0,
        MemoryBudgetBytes = 1L << 30,
        JobsCompleted = 0,
        StartedAt = TimeProvider.System.GetUtcNow(),
        LastHeartbeat = TimeProvider.System.GetUtcNow(),
    };

    /// <summary>Children alive as the OS sees them (a stopped one counts until it has drained and exited).</summary>
    protected override ValueTask<int> PlatformReplicasAsync()
    {
        Observe();
        lock (_lock)
        {
            return ValueTask.FromResult(_seen.Count(IsAlive));
        }
    }

    protected override void BreakPlatform() => _options.Path = Path.Combine(_root, "gone.sh");

    protected override void HealPlatform() => _options.Path = _worker;

    /// <summary>Remembers every child the orchestrators run now, so none goes unseen (or unkilled) once stopped.</summary>
    private void Observe()
    {
        lock (_lock)
        {
            foreach (var orchestrator in _orchestrators)
            {
                _seen.UnionWith(orchestrator.Workers.Select(w => w.ProcessId));
                _seen.UnionWith(orchestrator.Standby.Select(w => w.ProcessId));
            }
        }
    }

    /// <summary>Passes every call on, and lets the test see the children before and after each change, so a stopped
    /// child is still watched until it is gone.</summary>
    private sealed class Observed(IWorkerOrchestrator inner, Action observe) : IWorkerOrchestrator
    {
        public ValueTask<int> GetReplicasAsync(CancellationToken cancellationToken) => inner.GetReplicasAsync(cancellationToken);

        public async ValueTask SetReplicasAsync(int replicas, CancellationToken cancellationToken)
        {
            observe();
            try
            {
                await inner.SetReplicasAsync(replicas, cancellationToken);
            }
            finally
            {
                observe();
            }
        }
    }

    /// <summary>A registry whose <see cref="ListAsync"/> answers only once <paramref name="callers"/> calls wait on it
    /// (the real-time bound only stops a hung test).</summary>
    private sealed class RendezvousRegistry(IWorkerRegistry inner, int callers) : IWorkerRegistry
    {
        private readonly TaskCompletionSource _all = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _waiting;

        public ValueTask HeartbeatAsync(WorkerStatus status, CancellationToken cancellationToken) => inner.HeartbeatAsync(status, cancellationToken);

        public ValueTask RemoveAsync(string workerId, CancellationToken cancellationToken) => inner.RemoveAsync(workerId, cancellationToken);

        public async ValueTask<IReadOnlyList<WorkerStatus>> ListAsync(CancellationToken cancellationToken)
        {
            if (Interlocked.Increment(ref _waiting) >= callers)
            {
                _all.TrySetResult();
            }

            await _all.Task.WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            return await inner.ListAsync(cancellationToken);
        }
    }

    /// <summary>Whether the process exists and is not a zombie (<c>/proc/{pid}/stat</c>'s state after the name).</summary>
    private static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')') + 2] is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }
}
