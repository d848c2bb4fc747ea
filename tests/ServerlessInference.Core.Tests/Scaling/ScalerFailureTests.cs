using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using ServerlessInference.Embedded;
using ServerlessInference.Hosting;
using ServerlessInference.Scaling;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Scaling;

/// <summary>A remote orchestrator (ARM, the Kubernetes API) fails now and then; the scaler must outlive it.</summary>
public sealed class ScalerFailureTests : IDisposable
{
    private readonly WorkerRig _rig = new();
    private readonly FlakyOrchestrator _orchestrator = new();
    private readonly RecordingLogger<Scaler> _logger = new();

    public void Dispose() => _rig.Dispose();

    [Fact]
    public async Task TickAsync_OrchestratorSetFails_LogsAndRetriesOnTheNextTick()
    {
        var scaler = CreateScaler();
        await _rig.SubmitAsync("m");
        _orchestrator.SetFailures = 1;

        var first = await scaler.TickAsync(default);

        // The failed call neither escapes the tick nor changes what runs; the error is logged.
        Assert.Equal(1, first.DesiredReplicas);
        Assert.Equal(0, _orchestrator.Replicas);
        Assert.Contains(_logger.Entries, e => e.Level == LogLevel.Error && e.Exception is HttpRequestException);

        var second = await scaler.TickAsync(default);

        Assert.Equal(1, second.DesiredReplicas);
        Assert.Equal(1, _orchestrator.Replicas);
        Assert.Equal([1, 1], _orchestrator.SetCalls);
    }

    [Fact]
    public async Task ExecuteAsync_OrchestratorReadFails_LogsAndKeepsTicking()
    {
        var scaler = CreateScaler();
        var options = Options.Create(new ScalingOptions { TickInterval = TimeSpan.FromSeconds(1) });
        var serviceLogger = new RecordingLogger<ScalerService>();
        using var service = new ScalerService(scaler, _orchestrator, options, _rig.Time, serviceLogger);
        await _rig.SubmitAsync("m");
        _orchestrator.GetFailures = 2;

        await service.StartAsync(default);
        try
        {
            // Tick 1 and 2 fail reading the replicas; the service keeps its timer and tick 3 scales up.
            await _orchestrator.WaitForGetsAsync(1);
            _rig.Time.Advance(TimeSpan.FromSeconds(1));
            await _orchestrator.WaitForGetsAsync(2);
            _rig.Time.Advance(TimeSpan.FromSeconds(1));
            await _orchestrator.WaitForGetsAsync(3);
            await _orchestrator.WaitForSetAsync();
        }
        finally
        {
            await service.StopAsync(default);
        }

        Assert.Equal(1, _orchestrator.Replicas);
        Assert.Equal(2, serviceLogger.Entries.Count(e => e.Level == LogLevel.Error && e.Exception is HttpRequestException));
    }

    private Scaler CreateScaler() => new(
        _rig.Queue,
        _rig.Registry,
        _orchestrator,
        new InMemoryScalingDecisionLog(),
        Options.Create(new ScalingOptions { MaxReplicas = 4, TargetJobsPerWorker = 10 }),
        _rig.Time,
        _rig.Metrics,
        _logger);

    /// <summary>Keeps a replica count like a platform would, failing the first calls it is told to.</summary>
    private sealed class FlakyOrchestrator : IWorkerOrchestrator
    {
        private readonly SemaphoreSlim _gets = new(0);
        private readonly SemaphoreSlim _sets = new(0);
        private int _readsSeen;

        public int Replicas { get; private set; }

        public int GetFailures { get; set; }

        public int SetFailures { get; set; }

        public List<int> SetCalls { get; } = [];

        public ValueTask<int> GetReplicasAsync(CancellationToken cancellationToken)
        {
            _gets.Release();
            return GetFailures-- > 0
                ? ValueTask.FromException<int>(new HttpRequestException("injected: the API server is unreachable"))
                : ValueTask.FromResult(Replicas);
        }

        public ValueTask SetReplicasAsync(int replicas, CancellationToken cancellationToken)
        {
            SetCalls.Add(replicas);
            try
            {
                if (SetFailures-- > 0)
                {
                    return ValueTask.FromException(new HttpRequestException("injected: 503 from the management API"));
                }

                Replicas = replicas;
                return ValueTask.CompletedTask;
            }
            finally
            {
                _sets.Release();
            }
        }

        /// <summary>Waits until the <paramref name="count"/>th read has happened (a real-time bound only stops a hung test).</summary>
        public async Task WaitForGetsAsync(int count)
        {
            while (_readsSeen < count)
            {
                Assert.True(await _gets.WaitAsync(TimeSpan.FromSeconds(30)), $"read {count} did not happen");
                _readsSeen++;
            }
        }

        public async Task WaitForSetAsync() =>
            Assert.True(await _sets.WaitAsync(TimeSpan.FromSeconds(30)), "the scaler never set the replicas");
    }
}

/// <summary>Keeps what was logged, for assertions.</summary>
internal sealed class RecordingLogger<T> : ILogger<T>
{
    private readonly Lock _lock = new();
    private readonly List<(LogLevel Level, string Message, Exception? Exception)> _entries = [];

    public IReadOnlyList<(LogLevel Level, string Message, Exception? Exception)> Entries
    {
        get
        {
            lock (_lock)
            {
                return [.. _entries];
            }
        }
    }

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => NullLogger.Instance.BeginScope(state);

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        lock (_lock)
        {
            _entries.Add((logLevel, formatter(state, exception), exception));
        }
    }
}
