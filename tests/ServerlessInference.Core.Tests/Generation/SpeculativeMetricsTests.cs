using System.Diagnostics.Metrics;
using ServerlessInference.Generation;
using ServerlessInference.Telemetry;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Generation;

public sealed class SpeculativeMetricsTests
{
    [Fact]
    public void ObserveGeneration_SpeculationCounters_AreReportedPerModel()
    {
        using var factory = new TestMeterFactory();
        using var metrics = new InferenceMetrics(factory);
        var counters = new GenerationCounters();
        counters.AddSpeculation(proposed: 8, accepted: 5);
        counters.AddSpeculation(proposed: 4, accepted: 4);
        metrics.ObserveGeneration(() => [("lm-bench/1", counters)]);
        var seen = new Dictionary<string, (long Value, string? Model)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Name.StartsWith("inference_speculative_", StringComparison.Ordinal))
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => seen[instrument.Name] = (value, tags.ToArray().Single(t => t.Key == "model").Value as string));
        listener.Start();

        listener.RecordObservableInstruments();

        Assert.Equal((12L, "lm-bench/1"), seen["inference_speculative_proposed_tokens"]);
        Assert.Equal((9L, "lm-bench/1"), seen["inference_speculative_accepted_tokens"]);
    }
}
