using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Models;

namespace ServerlessInference.Onnx;

/// <summary>Whether a session came from ONNX Runtime's optimized model cached on disk.</summary>
public enum OptimizedModelUse
{
    /// <summary>The cache is off (<see cref="OnnxEngineOptions.CacheOptimizedModels"/>), or the model is not cached
    /// (the CUDA provider, no sha256 in its manifest, a text-generation model, or a file too large to save as one
    /// ONNX file).</summary>
    NotCached,

    /// <summary>Optimized from the original file; the optimized graph was saved for the next load.</summary>
    Saved,

    /// <summary>Created from the cached optimized graph, with graph optimizations off: nothing optimized again.</summary>
    Loaded,
}

/// <summary>Where ONNX Runtime's optimized graph of a model is cached, and how sessions are made from it.</summary>
/// <remarks>
/// <para>The first load optimizes as usual (<c>ORT_ENABLE_ALL</c>) and lets ONNX Runtime write the result
/// (<c>SessionOptions.OptimizedModelFilePath</c>) to a temporary file that is renamed into place, so a reader never
/// sees half a file. Later loads create the session from that file with optimizations disabled.</para>
/// <para>ONNX Runtime documents that a graph saved at this level is only valid for the execution provider, runtime and
/// hardware it was made on (layout optimizations such as NCHWc pick a block size from the CPU's vector width; CUDA
/// graphs hold provider-specific nodes). Only the CPU provider's graphs are cached for now: a graph saved after CUDA
/// placement holds Memcpy nodes that fail to load again (microsoft/onnxruntime#11348). The file name carries the model's sha256 and length, the provider, the
/// ONNX Runtime version and the CPU's architecture and instruction-set features; anything else misses the cache.
/// Keying on the manifest's sha256 trusts that the caller loads the file the manifest names (the warm pool verifies
/// it first). A cached file that ONNX Runtime cannot load is deleted, the original is loaded and the cache rewritten.
/// The folder is the worker's own: a valid ONNX file put there under the right name is believed, as the weights are.</para>
/// </remarks>
internal static partial class OptimizedModelCache
{
    // One ONNX protobuf is limited to 2 GiB; a bigger model (external data) is not saved as one file.
    private const long MaxModelBytes = 1L << 30;

    private static readonly Lazy<string> s_runtimeVersion = new(() => Sanitize(OrtEnv.Instance().GetVersionString()));
    private static readonly Lazy<string> s_hardware = new(HardwareKey);

    /// <summary>The cached file for this model on this provider, runtime and hardware; null when it is not cached.</summary>
    public static string? PathFor(OnnxEngineOptions options, ModelManifest manifest, FileInfo weights, string executionProvider, string? runtimeVersion = null, string? hardware = null)
    {
        // CUDA: a graph saved after CUDA placement holds ONNX Runtime's own Memcpy nodes, which fail to load again
        // (microsoft/onnxruntime#11348, #17837); not cached until checked on a GPU.
        if (!options.CacheOptimizedModels || executionProvider != OnnxInferenceEngine.Cpu || manifest.IsTextGeneration || weights.Length > MaxModelBytes
            || manifest.Sha256.Length != 64 || !manifest.Sha256.All(char.IsAsciiHexDigit))
        {
            return null;
        }

        var directory = string.IsNullOrEmpty(options.OptimizedModelDirectory)
            ? Path.Combine(weights.DirectoryName!, "optimized")
            : options.OptimizedModelDirectory;
        var name = $"{manifest.Sha256.ToLowerInvariant()}.{weights.Length}.{Sanitize(executionProvider)}.ort-{runtimeVersion ?? s_runtimeVersion.Value}.{hardware ?? s_hardware.Value}.onnx";
        return Path.Combine(directory, name);
    }

    /// <summary>Creates the session: from the cached file when it is there and loads, else from
    /// <paramref name="weightsPath"/>, saving the optimized graph when <paramref name="cachePath"/> is set.</summary>
    public static InferenceSession CreateSession(string weightsPath, string? cachePath, Func<SessionOptions> createOptions, ILogger logger, string model, out OptimizedModelUse use)
    {
        if (cachePath is null)
        {
            use = OptimizedModelUse.NotCached;
            using var plain = createOptions();
            return new InferenceSession(weightsPath, plain);
        }

        if (File.Exists(cachePath))
        {
            try
            {
                using var cached = createOptions();
                cached.GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL;
                var session = new InferenceSession(cachePath, cached);
                use = OptimizedModelUse.Loaded;
                Log.Loaded(logger, model, cachePath);
                return session;
            }
            catch (OnnxRuntimeException ex)
            {
                Log.Unreadable(logger, model, cachePath, ex.Message);
                TryDelete(cachePath);
            }
        }

        var temp = cachePath + "." + Guid.NewGuid().ToString("N") + ".part";
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(cachePath)!);
            InferenceSession session;
            using (var saving = createOptions())
            {
                saving.OptimizedModelFilePath = temp;
                session = new InferenceSession(weightsPath, saving);
            }

            try
            {
                File.Move(temp, cachePath, overwrite: true);
                use = OptimizedModelUse.Saved;
                Log.Saved(logger, model, cachePath);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                use = OptimizedModelUse.NotCached;
                Log.NotSaved(logger, model, cachePath, ex.Message);
            }

            return session;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The cache folder cannot be made: load as if the cache were off.
            Log.NotSaved(logger, model, cachePath, ex.Message);
            use = OptimizedModelUse.NotCached;
            using var plain = createOptions();
            return new InferenceSession(weightsPath, plain);
        }
        finally
        {
            TryDelete(temp);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }

    private static string Sanitize(string text) =>
        string.Concat(text.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' ? c : '_'));

    // What ONNX Runtime's CPU kernels and layout choices depend on: the architecture and the vector extensions.
    private static string HardwareKey()
    {
        var features = new List<string> { RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant() };
        void Add(bool supported, string name)
        {
            if (supported)
            {
                features.Add(name);
            }
        }

        Add(Avx2.IsSupported, "avx2");
        Add(Fma.IsSupported, "fma");
        Add(Avx512F.IsSupported, "avx512f");
        Add(Avx512BW.IsSupported, "avx512bw");
        Add(Avx512Vbmi.IsSupported, "avx512vbmi");
        Add(AvxVnni.IsSupported, "avxvnni");
        Add(AdvSimd.IsSupported, "neon");
        Add(Dp.IsSupported, "dotprod");
        return string.Join('-', features);
    }

    private static partial class Log
    {
        [LoggerMessage(40, LogLevel.Debug, "Session of {Model} created from its cached optimized graph {Path}")]
        public static partial void Loaded(ILogger logger, string model, string path);

        [LoggerMessage(41, LogLevel.Information, "Saved the optimized graph of {Model} to {Path} for the next load")]
        public static partial void Saved(ILogger logger, string model, string path);

        [LoggerMessage(42, LogLevel.Warning, "The cached optimized graph of {Model} at {Path} cannot be loaded ({Reason}); loading the original and saving it again")]
        public static partial void Unreadable(ILogger logger, string model, string path, string reason);

        [LoggerMessage(43, LogLevel.Warning, "Could not save the optimized graph of {Model} to {Path} ({Reason}); the next load optimizes again")]
        public static partial void NotSaved(ILogger logger, string model, string path, string reason);
    }
}
