using ServerlessInference.Generation;
using ServerlessInference.Protocol;

namespace ServerlessInference.Models;

/// <summary>What the platform knows about one version of a model: its file, checksum, size and tensors.</summary>
/// <remarks>Shapes include the batch dim; <c>-1</c> marks a dim that may vary (the batch dim of a dynamic-batch model).</remarks>
public sealed record ModelManifest
{
    public required string Name { get; init; }

    public string Version { get; init; } = "1";

    /// <summary>File name of the weights beside the manifest.</summary>
    public string File { get; init; } = "model.onnx";

    /// <summary>Lower-case hex SHA-256 of the weights; verified before a session is created.</summary>
    public required string Sha256 { get; init; }

    public required long SizeBytes { get; init; }

    public string Platform { get; init; } = "onnxruntime_onnx";

    public required IReadOnlyList<TensorSpec> Inputs { get; init; }

    public required IReadOnlyList<TensorSpec> Outputs { get; init; }

    /// <summary>Most rows one engine call may take. 1 for a fixed-batch model.</summary>
    public int MaxBatchSize { get; init; } = 1;

    /// <summary>True when dim 0 of every input and output is a batch dim that may be stacked.</summary>
    public bool DynamicBatch { get; init; }

    /// <summary>What the model does: null for a tensor model (the default), <see cref="ModelTasks.TextGeneration"/>
    /// for a decoder-only language model, which then needs <see cref="Generation"/>.</summary>
    public string? Task { get; init; }

    /// <summary>Tokenizer, end tokens, context length and chat template of a <c>text-generation</c> model.</summary>
    public GenerationSpec? Generation { get; init; }

    /// <summary>The model's share when a worker serves several models with queued work (fair sharing); default 1.</summary>
    public double Weight { get; init; } = 1;

    /// <summary>Most jobs of this model queued or in flight at once; more get 429 for this model alone. Null: only the
    /// queue's own capacity applies.</summary>
    public int? MaxQueued { get; init; }

    /// <summary>Keep at least this many workers with the model warm, even with no traffic (default 0).</summary>
    public int MinWarm { get; init; }

    /// <summary>Most workers that may hold the model warm and serve it at once. Null: no limit.</summary>
    public int? MaxWorkers { get; init; }

    /// <summary>The variant this version is (<see cref="ModelVariants.Int8"/>), null for an original.</summary>
    public string? Variant { get; init; }

    /// <summary>The version a variant was made from; set exactly when <see cref="Variant"/> is.</summary>
    public string? SourceVersion { get; init; }

    /// <summary>Rules for switching to this version's variants by queue depth (see <see cref="ModelVariants"/>).</summary>
    public IReadOnlyDictionary<string, VariantRule>? Variants { get; init; }

    public bool IsTextGeneration => Task == ModelTasks.TextGeneration;

    public string Key => $"{Name}/{Version}";
}

/// <summary>Name, datatype and shape of a model input or output.</summary>
public sealed record TensorSpec(string Name, TensorDatatype Datatype, long[] Shape);
