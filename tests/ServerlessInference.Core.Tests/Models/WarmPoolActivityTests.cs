using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Models;
using ServerlessInference.Telemetry;
using ServerlessInference.Tests.TestDoubles;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Models;

/// <summary>What a warm pool reports of its churn: the <c>inference_model_loads</c> / <c>inference_model_evictions</c>
/// counters by model, and the recent per-model counts a worker puts in its heartbeat.</summary>
public sealed class WarmPoolActivityTests : IDisposable
{
    private readonly TempModelStore _models = new();
    private readonly FakeEngine _engine = new();
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 4, 12, 0, 30, TimeSpan.Zero));
    private readonly TestMeterFactory _meters = new();

    private WarmPool Pool(long budget, InferenceMetrics? metrics = null) => new(
        _engine,
        new WeightsCache(_models.Store, _models.CacheDirectory, NullLogger<WeightsCache>.Instance),
        Options.Create(new WarmPoolOptions { BudgetBytes = budget, CacheDirectory = _models.CacheDirectory }),
        _time,
        NullLogger<WarmPool>.Instance,
        metrics);

    public void Dispose()
    {
        _models.Dispose();
        _meters.Dispose();
    }

    private async Task UseAsync(WarmPool pool, ModelManifest manifest)
    {
        using var lease = await pool.AcquireAsync(manifest, default);
        _time.Advance(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task Metrics_LoadsAndEvictions_CountedByModel()
    {
        var a = _models.Add("a");
        var b = _models.Add("b");
        var c = _models.Add("c");
        var seen = new List<(string Instrument, string Model, long Value)>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name is "inference_model_loads" or "inference_model_evictions" && ReferenceEquals(instrument.Meter.Scope, _meters))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "model")
                {
                    seen.Add((instrument.Name, (string)tag.Value!, value));
                }
            }
        });
        listener.Start();
        using var metrics = new InferenceMetrics(_meters);
        using var pool = Pool(budget: 250, metrics);

        await UseAsync(pool, a);
        await UseAsync(pool, b);
        await UseAsync(pool, a); // warm: no load
        await UseAsync(pool, c); // evicts b, the least recently used

        Assert.Equal(
            [("inference_model_loads", "a", 1L), ("inference_model_loads", "b", 1L), ("inference_model_loads", "c", 1L), ("inference_model_evictions", "b", 1L)],
            seen);
    }

    [Fact]
    public async Task RecentActivity_CountsPerModelForTheWindow_ThenForgets()
    {
        var a = _models.Add("a");
        var b = _models.Add("b");
        using var pool = Pool(budget: 150);

        await UseAsync(pool, a);
        await UseAsync(pool, b); // evicts a
        await UseAsync(pool, a); // evicts b
        _time.Advance(TimeSpan.FromMinutes(2));
        await UseAsync(pool, b); // evicts a

        Assert.Equal([new ModelActivity("a", 2, 2), new ModelActivity("b", 2, 1)], pool.RecentActivity());

        // Past the window of the first three events (one-minute steps): only the last load and eviction remain.
        _time.Advance(TimeSpan.FromMinutes(3));
        Assert.Equal([new ModelActivity("a", 0, 1), new ModelActivity("b", 1, 0)], pool.RecentActivity());

        _time.Advance(ModelActivity.Window);
        Assert.Empty(pool.RecentActivity());
    }
}
