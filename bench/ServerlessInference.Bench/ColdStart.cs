using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Azure.Models;
using ServerlessInference.Models;
using ServerlessInference.Onnx;

namespace ServerlessInference.Bench;

/// <summary>One model's start-up times in milliseconds (medians): cold = blob download + sha256 verify + engine
/// session creation on an empty weights cache; warm = the same with the file already cached (re-hashed); raw = a plain
/// <c>new InferenceSession(path)</c> with default options from the same file.</summary>
internal sealed record ColdStartResult(string Model, long Bytes, double ColdMs, double ColdFetchMs, double WarmMs, double WarmFetchMs, double RawMs);

/// <summary>Measures what a worker does to bring a model up, in this process, over the bench's Azurite: the
/// platform's own <see cref="BlobModelStore"/>, <see cref="WeightsCache"/> and <see cref="OnnxInferenceEngine"/>.
/// Interleaved (raw, cold, warm) per repetition; one unmeasured pass first (ONNX Runtime's one-time set-up).</summary>
internal static class ColdStart
{
    public static async Task<IReadOnlyList<ColdStartResult>> MeasureAsync(string blobConnectionString, string root, int intraOpThreads, string[] models, int repetitions = 3)
    {
        var store = new BlobModelStore(new BlobModelStoreOptions { ConnectionString = blobConnectionString });
        var engine = new OnnxInferenceEngine(Options.Create(new OnnxEngineOptions { IntraOpThreads = intraOpThreads, AllowSpinning = false }), NullLogger<OnnxInferenceEngine>.Instance);
        var results = new List<ColdStartResult>();
        var run = 0;
        foreach (var name in models)
        {
            var manifest = await store.GetManifestAsync(name, null, CancellationToken.None).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"model '{name}' is not in the blob store");
            var warmCache = new WeightsCache(store, Path.Combine(root, $"cold-warm-{name}"), NullLogger<WeightsCache>.Instance);
            var path = await warmCache.GetLocalPathAsync(manifest, CancellationToken.None).ConfigureAwait(false);
            async Task<(double Total, double Fetch)> Start(WeightsCache cache)
            {
                var started = Stopwatch.GetTimestamp();
                var local = await cache.GetLocalPathAsync(manifest, CancellationToken.None).ConfigureAwait(false);
                var fetched = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                using var model = await engine.LoadAsync(manifest, local, CancellationToken.None).ConfigureAwait(false);
                return (Stopwatch.GetElapsedTime(started).TotalMilliseconds, fetched);
            }

            double Raw()
            {
                var started = Stopwatch.GetTimestamp();
                using var session = new InferenceSession(path);
                return Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            }

            var cold = new List<double>();
            var coldFetch = new List<double>();
            var warm = new List<double>();
            var warmFetch = new List<double>();
            var raw = new List<double>();
            for (var i = 0; i <= repetitions; i++)
            {
                var r = Raw();
                var c = await Start(new WeightsCache(store, Path.Combine(root, $"cold-{++run}"), NullLogger<WeightsCache>.Instance)).ConfigureAwait(false);
                var w = await Start(warmCache).ConfigureAwait(false);
                if (i > 0)
                {
                    raw.Add(r);
                    cold.Add(c.Total);
                    coldFetch.Add(c.Fetch);
                    warm.Add(w.Total);
                    warmFetch.Add(w.Fetch);
                }
            }

            results.Add(new ColdStartResult(name, new FileInfo(path).Length, Median(cold), Median(coldFetch), Median(warm), Median(warmFetch), Median(raw)));
        }

        return results;
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values.Count % 2 == 1 ? values[values.Count / 2] : (values[values.Count / 2 - 1] + values[values.Count / 2]) / 2;
    }
}
