using System.Diagnostics;
using System.Runtime.Versioning;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.DevHost.Services;
using ServerlessInference.Embedded;
using ServerlessInference.Scaling;
using ServerlessInference.Testing.Contracts;

namespace ServerlessInference.DevHost.Tests;

/// <summary>The orchestrator contract over real child processes of this test host (Linux: SIGTERM and <c>/proc</c>).</summary>
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
                using var process = Process.GetProcessById(pid);
                process.Kill();
            }

            Directory.Delete(_root, recursive: true);
            Assert.True(alive.Length == 0, $"worker processes {string.Join(", ", alive)} outlived the orchestrator; killed");
        }
    }

    protected override ValueTask<IWorkerOrchestrator> CreateOrchestratorAsync()
    {
        var orchestrator = Track(new ChildProcessWorkerOrchestrator(
            Options.Create(_options),
            new ConfigurationBuilder().Build(),
            new InMemoryWorkerRegistry(TimeProvider.System),
            NullLogger<ChildProcessWorkerOrchestrator>.Instance));
        lock (_lock)
        {
            _orchestrators.Add(orchestrator);
        }

        return ValueTask.FromResult<IWorkerOrchestrator>(new Observed(orchestrator, Observe));
    }

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
