using System.Collections.Concurrent;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Hosting.Providers;
using ServerlessInference.Functions.Hosting;
using ServerlessInference.Functions.Scaling;
using ServerlessInference.Hosting;
using ServerlessInference.Jobs;
using ServerlessInference.Scaling;
using ServerlessInference.Testing.Contracts;

namespace ServerlessInference.Functions.Tests.Scaling;

public sealed class ScalerFunctionTests : IAsyncDisposable
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero));
    private readonly FakeOrchestrator _orchestrator = new();
    private readonly LogSink _logs = new();
    private readonly ServiceProvider _services;

    public ScalerFunctionTests()
    {
        // The app's wiring on embedded providers (defaults), with a fake clock and an orchestrator that records calls.
        var configuration = new ConfigurationBuilder().Build();
        var services = new ServiceCollection()
            .AddSingleton<IConfiguration>(configuration)
            .AddSingleton<TimeProvider>(_time)
            .AddLogging(logging => logging.AddProvider(_logs));
        services.AddServerlessInference().AddProviders(ProviderChoice.Read(configuration)).AddScaler(ScalerTicks.External);
        services.AddSingleton<IWorkerOrchestrator>(_orchestrator);
        _services = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
    }

    public ValueTask DisposeAsync() => _services.DisposeAsync();

    private ScalerFunction Function => ActivatorUtilities.CreateInstance<ScalerFunction>(_services);

    [Fact]
    public async Task RunAsync_JobQueuedAndNoWorker_AsksTheOrchestratorForAWorker()
    {
        await _services.GetRequiredService<IJobQueue>().EnqueueAsync(ContractJobs.Job(_time.GetUtcNow()), default);

        await Function.RunAsync(new TimerInfo(), default);

        Assert.NotEmpty(_orchestrator.Requested);
        Assert.True(_orchestrator.Requested[^1] >= 1, $"asked for {_orchestrator.Requested[^1]} workers");
        var decision = Assert.Single(await _services.GetRequiredService<IScalingDecisionLog>().ReadRecentAsync(10, default));
        Assert.Equal(1, decision.Queued);
    }

    [Fact]
    public async Task RunAsync_EmptyQueueAndNoWorker_LeavesTheOrchestratorAlone()
    {
        await Function.RunAsync(new TimerInfo(), default);

        Assert.Empty(_orchestrator.Requested);
    }

    [Theory]
    [InlineData(true, "ServerlessInference.Functions.Scaling.ScalerFunction")] // the tick itself throws: the function logs it
    [InlineData(false, "ServerlessInference.Scaling.Scaler")] // only setting replicas fails: the scaler logs it
    public async Task RunAsync_OrchestratorFails_LogsAnErrorAndDoesNotThrow(bool failToRead, string loggedBy)
    {
        _orchestrator.Failure = new HttpRequestException("management endpoint unreachable");
        _orchestrator.FailToRead = failToRead;
        await _services.GetRequiredService<IJobQueue>().EnqueueAsync(ContractJobs.Job(_time.GetUtcNow()), default);

        await Function.RunAsync(new TimerInfo(), default);

        Assert.Contains(_logs.Entries, e => e.Level == LogLevel.Error && e.Category == loggedBy && e.Exception is HttpRequestException);
    }

    [Fact]
    public async Task RunAsync_AfterAFailedTick_TheNextTickScales()
    {
        _orchestrator.Failure = new HttpRequestException("management endpoint unreachable");
        _orchestrator.FailToRead = true;
        await _services.GetRequiredService<IJobQueue>().EnqueueAsync(ContractJobs.Job(_time.GetUtcNow()), default);
        await Function.RunAsync(new TimerInfo(), default);

        _orchestrator.Failure = null;
        _time.Advance(TimeSpan.FromSeconds(10));
        await Function.RunAsync(new TimerInfo(), default);

        Assert.True(_orchestrator.Requested[^1] >= 1);
    }

    [Fact]
    public void AddGatewayFunctions_RegistersNoBackgroundScalerAndAnInlineTrigger()
    {
        Assert.DoesNotContain(_services.GetServices<IHostedService>(), s => s is ScalerService);
        // A job no worker can take runs one tick inline: the timer trigger cannot be woken.
        Assert.IsType<InlineScaleTrigger>(_services.GetService<IScaleTrigger>());
        Assert.NotNull(_services.GetService<Scaler>());
    }

    [Fact]
    public async Task Nudge_JobIntoAnEmptyFleet_TicksInlineOncePerActivationInterval()
    {
        var trigger = Assert.IsType<InlineScaleTrigger>(_services.GetRequiredService<IScaleTrigger>());
        var decisions = _services.GetRequiredService<IScalingDecisionLog>();
        await _services.GetRequiredService<IJobQueue>().EnqueueAsync(ContractJobs.Job(_time.GetUtcNow()), default);

        // No timer invocation and no clock movement: the nudge alone asks for a worker.
        trigger.Nudge();
        await trigger.Current.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal([1], _orchestrator.Requested);
        Assert.Single(await decisions.ReadRecentAsync(10, default));

        // A second nudge inside the interval is coalesced into the first: no second tick.
        trigger.Nudge();
        await trigger.Current.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Single(await decisions.ReadRecentAsync(10, default));

        _time.Advance(new ScalingOptions().ActivationInterval);
        trigger.Nudge();
        await trigger.Current.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, (await decisions.ReadRecentAsync(10, default)).Count);
    }

    private sealed class FakeOrchestrator : IWorkerOrchestrator
    {
        private int _replicas;

        public List<int> Requested { get; } = [];

        public Exception? Failure { get; set; }

        public bool FailToRead { get; set; }

        public ValueTask<int> GetReplicasAsync(CancellationToken cancellationToken) =>
            Failure is not null && FailToRead ? ValueTask.FromException<int>(Failure) : ValueTask.FromResult(_replicas);

        public ValueTask SetReplicasAsync(int replicas, CancellationToken cancellationToken)
        {
            if (Failure is not null)
            {
                return ValueTask.FromException(Failure);
            }

            Requested.Add(replicas);
            _replicas = replicas;
            return ValueTask.CompletedTask;
        }
    }

    private sealed class LogSink : ILoggerProvider
    {
        public ConcurrentQueue<(LogLevel Level, string Category, Exception? Exception)> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(LogSink sink, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                sink.Entries.Enqueue((logLevel, category, exception));
        }
    }
}
