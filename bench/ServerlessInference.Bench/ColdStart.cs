using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Azure.Models;
using ServerlessInference.Models;
using ServerlessInference.Onnx;
using ServerlessInference.Onnx.Demo;

namespace ServerlessInference.Bench;

/// <summary>One model's start-up times in milliseconds (medians). Cold = blob download + sha256 + a session on an empty
/// weights cache (the optimized graph saved on the way). Warm before = the file cached, hashed again, the graph
/// optimized again (what every warm restart did before the proof and the optimized-graph cache). Warm = the file
/// cached with its proof of verification (not read) and the session made from the cached optimized graph. Hash and
/// proof are the weights step alone; session and cached session are the engine's load alone, from the cached file;
/// raw = a plain <c>new InferenceSession(path)</c> with default options.</summary>
internal sealed record ColdStartResult(string Model, long Bytes, double ColdMs, double ColdFetchMs, double WarmBeforeMs, double WarmMs,
    double HashMs, double ProofMs, double SessionMs, double CachedSessionMs, double RawMs);

/// <summary>Measures what a worker does to bring a model up, in this process, over the bench's Azurite: the
/// platform's own <see cref="BlobModelStore"/>, <see cref="WeightsCache"/> and <see cref="OnnxInferenceEngine"/>.
/// Interleaved (raw, cold, warm before, warm) per repetition; one unmeasured pass first (ONNX Runtime's one-time
/// set-up, and the proof and the optimized graph written). Each warm path checks it took the route it is named for.</summary>
internal static class ColdStart
{
    public const string Command = "cold-start";

    public static async Task<IReadOnlyList<ColdStartResult>> MeasureAsync(string blobConnectionString, string root, int intraOpThreads, string[] models, int repetitions = 3)
    {
        var store = new BlobModelStore(new BlobModelStoreOptions { ConnectionString = blobConnectionString });
        OnnxInferenceEngine Engine(bool cacheGraphs) => new(
            Options.Create(new OnnxEngineOptions { IntraOpThreads = intraOpThreads, AllowSpinning = false, CacheOptimizedModels = cacheGraphs }),
            NullLogger<OnnxInferenceEngine>.Instance);
        var plain = Engine(cacheGraphs: false);
        var cached = Engine(cacheGraphs: true);
        var results = new List<ColdStartResult>();
        var run = 0;
        foreach (var name in models)
        {
            var manifest = await store.GetManifestAsync(name, null, CancellationToken.None).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"model '{name}' is not in the blob store");
            var warmCache = new WeightsCache(store, Path.Combine(root, $"cold-warm-{name}"), NullLogger<WeightsCache>.Instance);
            var path = await warmCache.GetLocalPathAsync(manifest, CancellationToken.None).ConfigureAwait(false);

            async Task<(double Total, double Fetch)> Start(WeightsCache cache, OnnxInferenceEngine engine, WeightsVerification? expectedWeights, OptimizedModelUse expectedGraph)
            {
                var started = Stopwatch.GetTimestamp();
                var weights = await cache.GetVerifiedAsync(manifest, CancellationToken.None).ConfigureAwait(false);
                var fetched = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                using var model = (OnnxLoadedModel)await engine.LoadAsync(manifest, weights.Path, CancellationToken.None).ConfigureAwait(false);
                var total = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                Expect(expectedWeights is null || weights.Verification == expectedWeights, $"weights {weights.Verification}, expected {expectedWeights}");
                Expect(model.OptimizedModel == expectedGraph, $"session {model.OptimizedModel}, expected {expectedGraph}");
                return (total, fetched);
            }

            async Task<double> Verify(bool proof)
            {
                if (!proof)
                {
                    File.Delete(path + ".verified");
                }

                var started = Stopwatch.GetTimestamp();
                var weights = await warmCache.GetVerifiedAsync(manifest, CancellationToken.None).ConfigureAwait(false);
                var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                Expect(weights.Verification == (proof ? WeightsVerification.Proof : WeightsVerification.Hashed), $"weights {weights.Verification} (proof {proof})");
                return elapsed;
            }

            async Task<double> Session(OnnxInferenceEngine engine, OptimizedModelUse expected)
            {
                var started = Stopwatch.GetTimestamp();
                using var model = (OnnxLoadedModel)await engine.LoadAsync(manifest, path, CancellationToken.None).ConfigureAwait(false);
                var elapsed = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                Expect(model.OptimizedModel == expected, $"session {model.OptimizedModel}, expected {expected}");
                return elapsed;
            }

            double Raw()
            {
                var started = Stopwatch.GetTimestamp();
                using var session = new InferenceSession(path);
                return Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            }

            var samples = new Dictionary<string, List<double>>();
            void Add(int i, string key, double value)
            {
                if (i > 0)
                {
                    (samples.TryGetValue(key, out var list) ? list : samples[key] = []).Add(value);
                }
            }

            // The unmeasured pass (i = 0) writes the proof and the optimized graph; later passes find them.
            for (var i = 0; i <= repetitions; i++)
            {
                Add(i, "raw", Raw());
                var c = await Start(new WeightsCache(store, Path.Combine(root, $"cold-{++run}"), NullLogger<WeightsCache>.Instance), cached,
                    WeightsVerification.Downloaded, OptimizedModelUse.Saved).ConfigureAwait(false);
                Add(i, "cold", c.Total);
                Add(i, "coldFetch", c.Fetch);
                File.Delete(path + ".verified");
                Add(i, "warmBefore", (await Start(warmCache, plain, WeightsVerification.Hashed, OptimizedModelUse.NotCached).ConfigureAwait(false)).Total);
                Add(i, "warm", (await Start(warmCache, cached, i == 0 ? null : WeightsVerification.Proof, i == 0 ? OptimizedModelUse.Saved : OptimizedModelUse.Loaded).ConfigureAwait(false)).Total);
                Add(i, "hash", await Verify(proof: false).ConfigureAwait(false));
                Add(i, "proof", await Verify(proof: true).ConfigureAwait(false));
                Add(i, "session", await Session(plain, OptimizedModelUse.NotCached).ConfigureAwait(false));
                Add(i, "cachedSession", await Session(cached, OptimizedModelUse.Loaded).ConfigureAwait(false));
            }

            double M(string key) => Median(samples[key]);
            results.Add(new ColdStartResult(name, new FileInfo(path).Length, M("cold"), M("coldFetch"), M("warmBefore"), M("warm"),
                M("hash"), M("proof"), M("session"), M("cachedSession"), M("raw")));
        }

        return results;
    }

    /// <summary><c>cold-start [--repetitions N] [--models a,b]</c>: the cold-start table alone, over an Azurite of its
    /// own seeded with the demo models (no DevHost, no load scenarios).</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        var repetitions = 10;
        string[] models = ["mlp-bench", "resnet18"];
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--repetitions": repetitions = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--models": models = args[i + 1].Split(','); break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 2;
            }
        }

        if (repetitions < 1 || args.Length % 2 == 1)
        {
            Console.Error.WriteLine("usage: cold-start [--repetitions N (at least 1)] [--models mlp-bench,resnet18]");
            return 2;
        }

        var root = Path.Combine(Path.GetTempPath(), $"si-bench-cold-{Environment.ProcessId}");
        var repo = typeof(ColdStart).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().First(a => a.Key == "RepositoryRoot").Value!;
        try
        {
            await using var services = await LocalServices.StartAsync(repo, Path.Combine(root, "services")).ConfigureAwait(false);
            var store = new BlobModelStore(new BlobModelStoreOptions { ConnectionString = services.BlobConnectionString });
            await DemoModels.SeedAsync(store, CancellationToken.None).ConfigureAwait(false);
            Console.WriteLine($"cold-start: {string.Join(", ", models)}; {repetitions} repetitions (medians), {Environment.ProcessorCount} intra-op threads; files under {root}");
            var results = await MeasureAsync(services.BlobConnectionString, root, Environment.ProcessorCount, models, repetitions).ConfigureAwait(false);
            new Report([], [], results).PrintColdStarts(repetitions);
            return 0;
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static void Expect(bool condition, string what)
    {
        if (!condition)
        {
            throw new InvalidOperationException($"cold-start measured the wrong path: {what}");
        }
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values.Count % 2 == 1 ? values[values.Count / 2] : (values[values.Count / 2 - 1] + values[values.Count / 2]) / 2;
    }
}
