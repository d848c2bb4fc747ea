using System.Diagnostics.Metrics;
using ServerlessInference.Generation;
using ServerlessInference.Telemetry;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Telemetry;

/// <summary>The prefix cache's instruments read each text-generation model's counters, labelled by model.</summary>
public sealed class PrefixCacheMetricsTests : IDisposable
{
    private readonly TestMeterFactory _meters = new();

    [Fact]
    public void Instruments_ReadTheModelsCounters()
    {
        using var metrics = new InferenceMetrics(_meters);
        var counters = new GenerationCounters();
        counters.AddPrefixLookup(600, 512);
        counters.AddPrefixLookup(40, 0);
        counters.SetPrefixBlocks(35);
        counters.AddPrefixEvictions(3);
        metrics.ObserveGeneration(() => [("lm-bench", counters)]);
        var seen = new Dictionary<string, (long Value, string Model)>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name.StartsWith("inference_prefix_cache_", StringComparison.Ordinal) && ReferenceEquals(instrument.Meter.Scope, _meters))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => seen[instrument.Name] = (value, (string)tags[0].Value!));
        listener.Start();

        listener.RecordObservableInstruments();

        Assert.Equal((512L, "lm-bench"), seen["inference_prefix_cache_hit_tokens"]);
        Assert.Equal((640L, "lm-bench"), seen["inference_prefix_cache_prompt_tokens"]);
        Assert.Equal((35L, "lm-bench"), seen["inference_prefix_cache_blocks"]);
        Assert.Equal((3L, "lm-bench"), seen["inference_prefix_cache_evictions"]);
    }

    public void Dispose() => _meters.Dispose();
}
