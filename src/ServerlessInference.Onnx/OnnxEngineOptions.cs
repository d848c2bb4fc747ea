using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Onnx;

/// <summary>Settings of the ONNX Runtime engine, bound from <c>Inference:Onnx</c> and validated at start-up.</summary>
/// <remarks>Thread settings shape the one ONNX Runtime environment of the process: the first engine created applies
/// them, later engines with other values keep the first ones (a warning is logged).</remarks>
public sealed class OnnxEngineOptions
{
    /// <summary>The configuration section the hosts bind.</summary>
    public const string Section = "Inference:Onnx";

    /// <summary>Threads of the shared intra-op pool (the calling thread included). More threads than cores makes
    /// every run slower, so the default is the core count.</summary>
    [Range(1, 1024)]
    public int IntraOpThreads { get; set; } = Environment.ProcessorCount;

    /// <summary>Whether idle intra-op threads spin before sleeping. Off by default: measured on 2 cores, spinning gained
    /// at most ~15% on a quiet machine but doubled the CPU burnt between sparse runs, and beside a busy host thread
    /// (a stand-in for Kestrel) it cut both the model's and the host's throughput.</summary>
    public bool AllowSpinning { get; set; }

    /// <summary>Which execution provider to use. <see cref="OnnxExecutionProvider.Auto"/> takes CUDA when it loads
    /// and runs, else the CPU.</summary>
    [EnumDataType(typeof(OnnxExecutionProvider))]
    public OnnxExecutionProvider ExecutionProvider { get; set; } = OnnxExecutionProvider.Auto;

    /// <summary>The CUDA device ordinal used when the CUDA provider is chosen.</summary>
    [Range(0, 255)]
    public int CudaDeviceId { get; set; }

    /// <summary>Whether ONNX Runtime's optimized graph of each model is saved on the first load and used by later
    /// loads, so they skip graph optimization. Keyed by the model's sha256, the execution provider, the ONNX Runtime
    /// version and the CPU's instruction-set features (see <see cref="OptimizedModelCache"/>). On by default; applies to the
    /// CPU provider only (CUDA's saved graphs hold Memcpy nodes that do not load again).</summary>
    public bool CacheOptimizedModels { get; set; } = true;

    /// <summary>The folder of cached optimized graphs; empty means <c>optimized</c> beside the weights file (in the
    /// worker's weights cache, <c>Inference:WarmPool:CacheDirectory</c>).</summary>
    public string? OptimizedModelDirectory { get; set; }
}

/// <summary>The execution provider an <see cref="OnnxInferenceEngine"/> asks for.</summary>
public enum OnnxExecutionProvider
{
    /// <summary>CUDA when the provider library loads and a tiny probe model runs on it; otherwise the CPU.</summary>
    Auto,

    /// <summary>CUDA or fail: the engine's constructor throws when CUDA cannot be used.</summary>
    Cuda,

    /// <summary>The CPU, without probing for CUDA.</summary>
    Cpu,
}

[OptionsValidator]
public sealed partial class OnnxEngineOptionsValidator : IValidateOptions<OnnxEngineOptions>;
