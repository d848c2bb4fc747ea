using System.Diagnostics.Metrics;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;

namespace ServerlessInference.DevHost.Tests;

/// <summary>Prefix caching end to end on the DevHost's embedded profile with its default settings
/// (<c>Inference:Generation:PrefixCaching</c> on, 16-token blocks): a prompt sent again through the gateway, the queue
/// and the worker is served from the worker's cached blocks, the text is unchanged, and the cache's instruments are on
/// <c>/metrics</c>.</summary>
[Collection(DevHostCollection.Name)]
public sealed class PrefixCacheHostTests(DevHostFixture fixture)
{
    // Long enough for several 16-token blocks on tiny-lm, short of its 256-token context; no other test sends it.
    private static readonly string s_prompt = "system: answer as the prefix cache host test would, " + string.Concat(Enumerable.Repeat("with the same long words again, ", 6));

    [Fact]
    public async Task Completions_SamePromptAgain_IsServedFromCachedBlocksWithTheSameText()
    {
        var request = JsonSerializer.Serialize(new { model = "tiny-lm", prompt = s_prompt, max_tokens = 6, temperature = 0 });
        var first = await CompleteAsync(request);
        var before = Read();

        var second = await CompleteAsync(request);
        var after = Read();

        Assert.Equal(first.Text, second.Text);
        var hits = after["inference_prefix_cache_hit_tokens"] - before["inference_prefix_cache_hit_tokens"];
        var looked = after["inference_prefix_cache_prompt_tokens"] - before["inference_prefix_cache_prompt_tokens"];
        // The second prefill looked up its whole prompt and found at least its whole blocks (all but the last token
        // when the prompt is whole blocks, which then runs alone for the logits).
        Assert.Equal(second.PromptTokens, looked);
        Assert.InRange(hits, second.PromptTokens / 16 * 16 - 1, second.PromptTokens - 1);
        Assert.True(hits >= 16, $"hit tokens {hits} of {second.PromptTokens}");
        Assert.True(after["inference_prefix_cache_blocks"] >= second.PromptTokens / 16);
    }

    [Fact]
    public async Task Metrics_ThePrefixCacheInstrumentsReportTinyLm()
    {
        // Read from this host's own meter, not by scraping /metrics: several DevHosts share this test process, and each
        // host's OpenTelemetry MeterProvider listens to every meter of the name in the process, keeping the first
        // instrument registered under a name (whichever host made it, perhaps one already disposed). The exporter's
        // naming (a counter gets _total, a {unit} is dropped) is checked on /metrics in SurfaceTests.
        var request = JsonSerializer.Serialize(new { model = "tiny-lm", prompt = s_prompt, max_tokens = 2, temperature = 0 });
        await CompleteAsync(request);
        await CompleteAsync(request); // the second one at least hits the first one's blocks

        var seen = Read();

        Assert.True(seen["inference_prefix_cache_hit_tokens"] > 0);
        Assert.True(seen["inference_prefix_cache_prompt_tokens"] >= seen["inference_prefix_cache_hit_tokens"]);
        Assert.True(seen["inference_prefix_cache_blocks"] > 0);
        Assert.True(seen.ContainsKey("inference_prefix_cache_evictions"));
    }

    private async Task<(string Text, long PromptTokens)> CompleteAsync(string request)
    {
        using var response = await fixture.Host.CreateClient().PostAsync("/v1/completions", new StringContent(request, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var root = json.RootElement;
        return (root.GetProperty("choices")[0].GetProperty("text").GetString()!, root.GetProperty("usage").GetProperty("prompt_tokens").GetInt64());
    }

    /// <summary>The prefix-cache instruments' values for tiny-lm, from this host's own meter (several DevHosts share the
    /// test process).</summary>
    private Dictionary<string, long> Read()
    {
        var factory = fixture.Host.Services.GetRequiredService<IMeterFactory>();
        var seen = new Dictionary<string, long>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter.Scope, factory) && instrument.Name.StartsWith("inference_prefix_cache_", StringComparison.Ordinal))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag is { Key: "model", Value: "tiny-lm" })
                {
                    seen[instrument.Name] = value;
                }
            }
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return seen;
    }
}
