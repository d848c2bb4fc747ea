using System.Globalization;

namespace ServerlessInference.Bench;

/// <summary>One measured scenario. The bench warms every scenario once, then measures them in interleaved slices
/// (round after round, alternating direction), so slow spells of a shared machine fall on all of them alike.</summary>
internal abstract class Scenario(string id, string label, int? workers)
{
    private double _otherCoreSeconds;
    private double _siblingCoreSeconds;
    private double _wallSeconds;

    /// <summary>"2", "5b", "2@variant", "raw:mlp-b1:off", ...</summary>
    public string Id { get; } = id;

    public string Label { get; } = label;

    public int? Workers { get; } = workers;

    /// <summary>Cores other programs used on average while this scenario was measured.</summary>
    public double? OtherCores => _wallSeconds > 0 ? _otherCoreSeconds / _wallSeconds : null;

    /// <summary>Cores the bench's idle children (the servers and raw children not being measured) used meanwhile.</summary>
    public double? SiblingCores => _wallSeconds > 0 ? _siblingCoreSeconds / _wallSeconds : null;

    /// <summary>The child process this scenario measures.</summary>
    public abstract int Pid { get; }

    public abstract Task WarmAsync(TimeSpan warmup);

    public abstract Task MeasureSliceAsync(TimeSpan sliceWarmup, TimeSpan slice);

    protected void AddOther(CpuMeter meter, TimeSpan wall)
    {
        if (meter.OtherCores is double other)
        {
            _otherCoreSeconds += other * wall.TotalSeconds;
            _siblingCoreSeconds += (meter.SiblingCores ?? 0) * wall.TotalSeconds;
            _wallSeconds += wall.TotalSeconds;
        }
    }
}

/// <summary>A closed-loop HTTP scenario against a server child process.</summary>
internal sealed class HttpScenario(string id, string label, int? workers, ServerProcess host, string path, IReadOnlyList<RequestBody> bodies,
    int concurrency, string outputName, long[] outputShape, Func<int[]>? helpers = null) : Scenario(id, label, workers), IDisposable
{
    private readonly Uri _url = new(host.BaseUri, path);
    private readonly HttpClient _client = LoadDriver.CreateClient(concurrency);
    private readonly List<LoadSlice> _slices = [];
    private double _serverCpuSeconds;
    private double _clientCpuSeconds;
    private readonly double[] _splitCpuSeconds = new double[3];
    private double _batches;
    private double _rows;
    private bool _cpuKnown = true;
    private long _peakRssBytes;
    private ProbeCounters? _probe = ProbeCounters.Zero;
    private double _probeSeconds;

    public int Concurrency => concurrency;

    public override int Pid => host.Pid;

    public LoadResult Result => LoadResult.Combine(concurrency, _slices);

    /// <summary>Mean rows per engine call (warm-ups of the slices included); null when the server does not say.</summary>
    public double? MeanBatch => _batches > 0 ? _rows / _batches : null;

    /// <summary>Server CPU milliseconds per answered request (slice warm-ups included).</summary>
    public double? ServerCpuMs => PerRequest(_serverCpuSeconds);

    /// <summary>Services profile: server CPU ms per request split into DevHost, worker process(es) and Redis; null otherwise.</summary>
    public double[]? SplitCpuMs => helpers is null || PerRequest(1) is null ? null : [.. _splitCpuSeconds.Select(s => PerRequest(s)!.Value)];

    /// <summary>Load-driver (this process) CPU milliseconds per answered request.</summary>
    public double? ClientCpuMs => PerRequest(_clientCpuSeconds);

    /// <summary>Server GC and thread-pool counters summed over the slices (heap size: the largest seen); null without a probe.</summary>
    public ProbeCounters? Probe => _probe;

    /// <summary>Requests answered over the slices, warm-ups included (the denominator of the per-request figures).</summary>
    public long Requests => _slices.Sum(s => s.CompletedWithWarmup);

    /// <summary>Wall seconds the probe deltas cover.</summary>
    public double ProbeSeconds => _probeSeconds;

    /// <summary>The server's resident memory after its slices, at most (shared by the scenarios of one server).</summary>
    public long PeakRssBytes => _peakRssBytes;

    public override async Task WarmAsync(TimeSpan warmup)
    {
        await LoadDriver.VerifyAsync(_client, _url, bodies, outputName, outputShape).ConfigureAwait(false);
        var slice = await LoadDriver.RunAsync(_client, _url, bodies, concurrency, warmup, TimeSpan.Zero).ConfigureAwait(false);
        if (slice.Errors > 0)
        {
            _slices.Add(slice with { Latencies = [], Seconds = 0, CompletedWithWarmup = 0 }); // errors count even in warm-up
        }
    }

    public override async Task MeasureSliceAsync(TimeSpan sliceWarmup, TimeSpan slice)
    {
        var devHost = host.Name == ServerProcess.DevHostName;
        await Task.Delay(150).ConfigureAwait(false); // the probe file is rewritten every 100 ms: let it catch up
        var probeBefore = host.ReadProbe();
        var before = await BatchProbe.ReadAsync(_client, host.BaseUri, devHost).ConfigureAwait(false);
        // Services profile: the DevHost's worker children and Redis count as the server (CPU ms/req), not as other programs.
        int[] measured = [host.Pid, .. helpers?.Invoke() ?? []];
        var cpu = new CpuMeter(measured, ServerProcess.LivePids());
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var result = await LoadDriver.RunAsync(_client, _url, bodies, concurrency, sliceWarmup, slice).ConfigureAwait(false);
        var wall = System.Diagnostics.Stopwatch.GetElapsedTime(started);
        cpu.Sample();
        var after = await BatchProbe.ReadAsync(_client, host.BaseUri, devHost).ConfigureAwait(false);
        await Task.Delay(150).ConfigureAwait(false);
        var probeAfter = host.ReadProbe();
        _probe = _probe is not null && probeBefore is not null && probeAfter is not null ? _probe + (probeAfter - probeBefore) : null;
        _probeSeconds += wall.TotalSeconds;
        _slices.Add(result);
        _peakRssBytes = Math.Max(_peakRssBytes, CpuMeter.ResidentBytes(host.Pid));
        AddOther(cpu, sliceWarmup + slice);
        var servers = measured.Select((_, i) => cpu.ProcessSeconds(i)).ToArray();
        if (servers.All(s => s is not null) && cpu.OwnSeconds is double own)
        {
            _serverCpuSeconds += servers.Sum(s => s!.Value);
            if (helpers is not null)
            {
                // [DevHost, workers..., redis]
                _splitCpuSeconds[0] += servers[0]!.Value;
                _splitCpuSeconds[1] += servers[1..^1].Sum(s => s!.Value);
                _splitCpuSeconds[2] += servers[^1]!.Value;
            }
            _clientCpuSeconds += own;
        }
        else
        {
            _cpuKnown = false;
        }

        if (before is { } b && after is { } a)
        {
            _batches += a.Batches - b.Batches;
            _rows += a.Rows - b.Rows;
        }
    }

    public void Dispose() => _client.Dispose();

    private double? PerRequest(double seconds)
    {
        var requests = _slices.Sum(s => s.CompletedWithWarmup);
        return _cpuKnown && requests > 0 ? seconds * 1000 / requests : null;
    }
}

/// <summary>A raw ONNX Runtime loop in a <see cref="RawChild"/>.</summary>
internal sealed class RawScenario(RawChild child, string key, string label) : Scenario($"raw:{key}:{(child.Spinning ? "on" : "off")}", label, null)
{
    public RawChild Child => child;

    public override int Pid => child.Pid;

    public string Key => key;

    public override Task WarmAsync(TimeSpan warmup) => child.RunAsync(key, warmup, TimeSpan.Zero);

    public override async Task MeasureSliceAsync(TimeSpan sliceWarmup, TimeSpan slice)
    {
        var cpu = new CpuMeter([child.Pid], ServerProcess.LivePids());
        await child.RunAsync(key, sliceWarmup, slice).ConfigureAwait(false);
        cpu.Sample();
        AddOther(cpu, sliceWarmup + slice);
    }

    public static string Describe(string key) => key switch
    {
        RawChild.MlpBatch1 => "mlp-bench batch 1",
        RawChild.MlpBatch32 => "mlp-bench batch 32",
        _ => "resnet18 batch 1",
    };
}

internal static class Format
{
    public static string Num(double? value, string format = "0.0") =>
        value is double v ? v.ToString(format, CultureInfo.InvariantCulture) : "n/a";
}
