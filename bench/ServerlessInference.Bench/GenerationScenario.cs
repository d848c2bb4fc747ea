namespace ServerlessInference.Bench;

/// <summary>A closed-loop generation scenario: <paramref name="clients"/> streaming clients on the mix, through the
/// platform (<see cref="SseTarget"/> against a DevHost) or the engine in this process (<see cref="EngineTarget"/>).</summary>
/// <param name="pid">The process measured: the DevHost, or this process for the engine in process.</param>
/// <param name="serverPids">The processes whose CPU is the server's (the DevHost, its workers, Redis), read before each
/// slice; empty in process, where everything is this process.</param>
internal sealed class GenerationScenario(string id, string label, int pid, Func<int[]> serverPids, IGenerationTarget target, GenerationMix mix, int clients)
    : Scenario(id, label, 1), IDisposable
{
    private readonly List<GenerationSlice> _slices = [];
    private double _serverCpuSeconds;
    private double _clientCpuSeconds;
    private bool _cpuKnown = true;

    public int Clients => clients;

    public override int Pid => pid;

    /// <summary>True when the engine runs in this process (no HTTP, no queue).</summary>
    public bool InProcess => pid == Environment.ProcessId;

    public double Seconds => _slices.Sum(s => s.Seconds);

    public long Tokens => _slices.Sum(s => s.Tokens);

    public double TokensPerSecond => Seconds > 0 ? Tokens / Seconds : 0;

    public long Completed => _slices.Sum(s => s.Completed);

    public long Errors => _slices.Sum(s => s.Errors);

    public IReadOnlyList<string> ErrorSamples => [.. _slices.SelectMany(s => s.ErrorSamples).Take(5)];

    public bool Valid => Errors == 0 && Tokens > 0;

    public double[] TimesToFirstTokenMs => [.. _slices.SelectMany(s => s.TimesToFirstTokenMs).Order()];

    public double TtftP50Ms => GenerationLoad.Percentile(TimesToFirstTokenMs, 0.50);

    public double TtftP99Ms => GenerationLoad.Percentile(TimesToFirstTokenMs, 0.99);

    /// <summary>Server CPU milliseconds per token event (slice warm-ups included); in process, the whole process.</summary>
    public double? ServerCpuMsPerToken => PerToken(_serverCpuSeconds);

    /// <summary>Client (this process) CPU milliseconds per token event; null in process.</summary>
    public double? ClientCpuMsPerToken => InProcess ? null : PerToken(_clientCpuSeconds);

    private int _slicesRun;
    private double _busyAfterStop;

    /// <summary>The longest time the server stayed busy (over 0.2 cores) after a slice had stopped and cancelled its
    /// generations.</summary>
    public double BusyAfterStopSeconds => _busyAfterStop;

    public override async Task WarmAsync(TimeSpan warmup)
    {
        // One request alone first: it must stream token events to its final event, or the bench stops here.
        var tokens = 0;
        using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120)))
        {
            try
            {
                await target.RunAsync(mix.WithMaxTokens(4).Prompts[0], _ => tokens++, timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                throw new TimeoutException($"({Id}) {Label}: a first generation did not end within 120 s");
            }
        }

        if (tokens == 0)
        {
            throw new InvalidOperationException($"({Id}) {Label}: a generation ended without a token event");
        }

        var slice = await GenerationLoad.RunAsync(target, mix, clients, 0, warmup, TimeSpan.Zero).ConfigureAwait(false);
        if (slice.Errors > 0)
        {
            // Errors count even in warm-up.
            _slices.Add(slice with { Tokens = 0, TokensWithWarmup = 0, Completed = 0, Seconds = 0, TimesToFirstTokenMs = [] });
        }
    }

    public override async Task MeasureSliceAsync(TimeSpan sliceWarmup, TimeSpan slice)
    {
        int[] measured = InProcess ? [] : [pid, .. serverPids()];
        var cpu = new CpuMeter(measured, ServerProcess.LivePids());
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        target.FreshConnections();
        // Each slice starts further into the mix, the same for every scenario of a round.
        var result = await GenerationLoad.RunAsync(target, mix, clients, 3 * _slicesRun++, sliceWarmup, slice).ConfigureAwait(false);
        var wall = System.Diagnostics.Stopwatch.GetElapsedTime(started);
        cpu.Sample();
        AddOther(cpu, wall);
        _slices.Add(result);
        if (!InProcess)
        {
            // The next slice (of any scenario) must find this server idle: every stopped generation was cancelled, so
            // its CPU should fall at once. What it keeps burning is shown, not hidden.
            var busy = await WaitIdleAsync(measured).ConfigureAwait(false);
            _busyAfterStop = Math.Max(_busyAfterStop, busy.TotalSeconds);
        }
        var servers = measured.Select((_, i) => cpu.ProcessSeconds(i)).ToArray();
        if (servers.All(s => s is not null) && cpu.OwnSeconds is double own)
        {
            _serverCpuSeconds += InProcess ? own : servers.Sum(s => s!.Value);
            _clientCpuSeconds += own;
        }
        else
        {
            _cpuKnown = false;
        }
    }

    private static async Task<TimeSpan> WaitIdleAsync(int[] pids)
    {
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var window = TimeSpan.FromMilliseconds(250);
        while (System.Diagnostics.Stopwatch.GetElapsedTime(started) < TimeSpan.FromSeconds(30))
        {
            var meter = new CpuMeter(pids, []);
            await Task.Delay(window).ConfigureAwait(false);
            meter.Sample();
            var seconds = pids.Select((_, i) => meter.ProcessSeconds(i) ?? 0).Sum();
            if (seconds < 0.2 * window.TotalSeconds)
            {
                break;
            }
        }

        return System.Diagnostics.Stopwatch.GetElapsedTime(started) - window;
    }

    public void Dispose() => (target as IDisposable)?.Dispose();

    private double? PerToken(double seconds)
    {
        var tokens = _slices.Sum(s => s.TokensWithWarmup);
        return _cpuKnown && tokens > 0 ? seconds * 1000 / tokens : null;
    }
}
