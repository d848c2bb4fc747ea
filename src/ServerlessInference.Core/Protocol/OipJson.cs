using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using ServerlessInference.Generation;
using ServerlessInference.Models;

namespace ServerlessInference.Protocol;

/// <summary>The OIP error body: <c>{"error": "..."}</c>.</summary>
public sealed record ErrorBody(string Error);

/// <summary>OIP server metadata (<c>GET /v2</c>): <c>{name, version, extensions}</c>.</summary>
public sealed record ServerMetadata(string Name, string Version, IReadOnlyList<string> Extensions);

/// <summary>Name, datatype and shape of a tensor in OIP model metadata; -1 marks a variable dim.</summary>
public sealed record TensorMetadata(string Name, TensorDatatype Datatype, long[] Shape);

/// <summary>OIP model metadata (<c>GET /v2/models/{model}</c>): <c>{name, versions, platform, inputs, outputs}</c>.</summary>
public sealed record ModelMetadata(
    string Name,
    IReadOnlyList<string> Versions,
    string Platform,
    IReadOnlyList<TensorMetadata> Inputs,
    IReadOnlyList<TensorMetadata> Outputs)
{
    /// <summary>Describes one model from the manifests of its versions; platform and tensors come from the latest
    /// version (the order of <see cref="ModelVersions"/>).</summary>
    /// <exception cref="ArgumentException">No manifests, or manifests of different models.</exception>
    public static ModelMetadata From(IEnumerable<ModelManifest> versionsOfOneModel)
    {
        var manifests = versionsOfOneModel.ToList();
        if (manifests.Count == 0)
        {
            throw new ArgumentException("at least one manifest is needed", nameof(versionsOfOneModel));
        }

        var name = manifests[0].Name;
        if (manifests.Any(manifest => manifest.Name != name))
        {
            throw new ArgumentException($"manifests of different models: {string.Join(", ", manifests.Select(m => m.Name).Distinct())}", nameof(versionsOfOneModel));
        }

        var byVersion = manifests.GroupBy(m => m.Version).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var ordered = ModelVersions.Order(byVersion.Keys).Select(v => byVersion[v]).ToList();
        var latest = ordered[^1];
        return new ModelMetadata(
            name,
            [.. ordered.Select(manifest => manifest.Version).Distinct()],
            latest.Platform,
            [.. latest.Inputs.Select(ToMetadata)],
            [.. latest.Outputs.Select(ToMetadata)]);
    }

    /// <summary>Describes one version of a model, listing all of its versions.</summary>
    public static ModelMetadata From(ModelManifest manifest, IEnumerable<string> versions) => new(
        manifest.Name,
        [.. versions.Distinct()],
        manifest.Platform,
        [.. manifest.Inputs.Select(ToMetadata)],
        [.. manifest.Outputs.Select(ToMetadata)]);

    /// <summary>The UTF-8 JSON body of <c>GET /v2/models/{model}[/versions/{v}]</c> for <paramref name="manifest"/>.</summary>
    public static byte[] Serialize(ModelManifest manifest, IEnumerable<string> versions) =>
        JsonSerializer.SerializeToUtf8Bytes(From(manifest, versions), OipJsonContext.Default.ModelMetadata);

    private static TensorMetadata ToMetadata(TensorSpec spec) => new(spec.Name, spec.Datatype, spec.Shape);
}

/// <summary>Writes <see cref="TensorDatatype"/> as its protocol name (<c>"FP32"</c>) and reads it back (any case).</summary>
public sealed class TensorDatatypeJsonConverter : JsonConverter<TensorDatatype>
{
    public override TensorDatatype Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String)
        {
            throw new JsonException($"a datatype must be a string, one of {string.Join(", ", TensorDatatypes.AllNames)}");
        }

        var name = reader.GetString()!;
        return TensorDatatypes.TryParse(name, out var datatype)
            ? datatype
            : throw new JsonException($"unknown datatype '{name}'; expected one of {string.Join(", ", TensorDatatypes.AllNames)}");
    }

    public override void Write(Utf8JsonWriter writer, TensorDatatype value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.Name());
}

/// <summary>Source-generated System.Text.Json metadata for the OIP bodies the gateway writes as plain objects
/// (errors, server and model metadata), with OIP's snake_case names.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    Converters = [typeof(TensorDatatypeJsonConverter)])]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(ServerMetadata))]
[JsonSerializable(typeof(ModelMetadata))]
public sealed partial class OipJsonContext : JsonSerializerContext;

/// <summary>Reads and writes the <c>manifest.json</c> stored beside a model's weights.</summary>
/// <remarks>
/// Snake_case, like OIP: <c>{"name","version","file","sha256","size_bytes","platform","inputs":[{"name","datatype":"FP32",
/// "shape":[-1,512]}],"outputs":[...],"max_batch_size","dynamic_batch","weight","max_queued","min_warm","max_workers","variant","source_version","variants"}</c>. Required: name, sha256, size_bytes, inputs,
/// outputs; the others default as <see cref="ModelManifest"/> does. Comments and trailing commas are allowed;
/// unknown properties are ignored. A <c>"task": "text-generation"</c> manifest needs <c>"generation"</c>
/// (<see cref="GenerationSpec"/>) and may omit inputs and outputs (the engine reads them from the model).
/// </remarks>
public static class ModelManifestJson
{
    private static readonly JsonWriterOptions s_indented = new() { Indented = true };

    public static byte[] Serialize(ModelManifest manifest)
    {
        var document = new ManifestDocument
        {
            Name = manifest.Name,
            Version = manifest.Version,
            File = manifest.File,
            Sha256 = manifest.Sha256,
            SizeBytes = manifest.SizeBytes,
            Platform = manifest.Platform,
            Inputs = [.. manifest.Inputs.Select(ToDocument)],
            Outputs = [.. manifest.Outputs.Select(ToDocument)],
            MaxBatchSize = manifest.MaxBatchSize,
            DynamicBatch = manifest.DynamicBatch,
            Task = manifest.Task,
            Generation = manifest.Generation is null ? null : GenerationDocument.From(manifest.Generation),
            Weight = manifest.Weight == 1 ? null : manifest.Weight,
            MaxQueued = manifest.MaxQueued,
            MinWarm = manifest.MinWarm == 0 ? null : manifest.MinWarm,
            MaxWorkers = manifest.MaxWorkers,
            Variant = manifest.Variant,
            SourceVersion = manifest.SourceVersion,
            Variants = manifest.Variants?.ToDictionary(v => v.Key, v => (VariantRuleDocument?)new VariantRuleDocument { WhenQueueDepthAtLeast = v.Value.WhenQueueDepthAtLeast }, StringComparer.Ordinal),
        };
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer, s_indented))
        {
            JsonSerializer.Serialize(writer, document, ManifestJsonContext.Default.ManifestDocument);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <exception cref="InvalidDataException">The JSON is malformed or describes an invalid manifest; the message says what
    /// is wrong and where.</exception>
    public static ModelManifest Deserialize(ReadOnlySpan<byte> utf8Json)
    {
        ManifestDocument? document;
        try
        {
            document = JsonSerializer.Deserialize(utf8Json, ManifestJsonContext.Default.ManifestDocument);
        }
        catch (JsonException e)
        {
            // A converter's own message carries no location; the serializer records it in Path.
            var where = e.Path is not null && !e.Message.Contains(e.Path, StringComparison.Ordinal) ? $" (at {e.Path})" : "";
            throw new InvalidDataException($"invalid model manifest: {e.Message}{where}", e);
        }

        if (document is null)
        {
            throw Invalid("the document is null");
        }

        var name = Required(document.Name, "name");
        if (string.IsNullOrWhiteSpace(name))
        {
            throw Invalid("'name' is empty");
        }

        var sha256 = Required(document.Sha256, "sha256");
        if (sha256.Length != 64 || !sha256.All(char.IsAsciiHexDigit))
        {
            throw Invalid($"'sha256' must be 64 hex digits, got '{sha256}'");
        }

        var sizeBytes = Required(document.SizeBytes, "size_bytes");
        if (sizeBytes < 0)
        {
            throw Invalid($"'size_bytes' is negative ({sizeBytes})");
        }

        var maxBatchSize = document.MaxBatchSize ?? 1;
        if (maxBatchSize < 1)
        {
            throw Invalid($"'max_batch_size' must be at least 1, got {maxBatchSize}");
        }

        var dynamicBatch = document.DynamicBatch ?? false;
        GenerationSpec? generation = null;
        if (document.Task is not null && document.Task != ModelTasks.TextGeneration)
        {
            throw Invalid($"'task' must be '{ModelTasks.TextGeneration}' or absent, got '{document.Task}'");
        }

        var textGeneration = document.Task == ModelTasks.TextGeneration;
        if (textGeneration)
        {
            var (spec, problem) = Required(document.Generation, "generation").ToSpec();
            generation = spec ?? throw Invalid(problem!);
        }
        else if (document.Generation is not null)
        {
            throw Invalid($"'generation' needs \"task\": \"{ModelTasks.TextGeneration}\"");
        }

        var inputs = ToSpecs(textGeneration ? document.Inputs ?? [] : Required(document.Inputs, "inputs"), "inputs", dynamicBatch);
        var outputs = ToSpecs(textGeneration ? document.Outputs ?? [] : Required(document.Outputs, "outputs"), "outputs", dynamicBatch);
        if (!textGeneration && (inputs.Count == 0 || outputs.Count == 0))
        {
            throw Invalid("a model needs at least one input and one output");
        }

        var weight = document.Weight ?? 1;
        if (!double.IsFinite(weight) || weight <= 0)
        {
            throw Invalid($"'weight' must be a positive number, got {weight}");
        }

        if (document.MaxQueued is < 1)
        {
            throw Invalid($"'max_queued' must be at least 1, got {document.MaxQueued}");
        }

        var minWarm = document.MinWarm ?? 0;
        if (minWarm < 0)
        {
            throw Invalid($"'min_warm' must be 0 or more, got {minWarm}");
        }

        if (document.MaxWorkers is < 1)
        {
            throw Invalid($"'max_workers' must be at least 1, got {document.MaxWorkers}");
        }

        if (document.MaxWorkers is { } maxWorkers && minWarm > maxWorkers)
        {
            throw Invalid($"'min_warm' ({minWarm}) is more than 'max_workers' ({maxWorkers})");
        }

        var (variant, sourceVersion, variants) = ReadVariants(document);
        var defaults = new ModelManifest { Name = name, Sha256 = sha256, SizeBytes = sizeBytes, Inputs = inputs, Outputs = outputs };
        return defaults with
        {
            Version = NonEmpty(document.Version, "version") ?? defaults.Version,
            File = NonEmpty(document.File, "file") ?? defaults.File,
            Platform = NonEmpty(document.Platform, "platform") ?? defaults.Platform,
            Sha256 = sha256.ToLowerInvariant(),
            MaxBatchSize = maxBatchSize,
            DynamicBatch = dynamicBatch,
            Task = document.Task,
            Generation = generation,
            Weight = weight,
            MaxQueued = document.MaxQueued,
            MinWarm = minWarm,
            MaxWorkers = document.MaxWorkers,
            Variant = variant,
            SourceVersion = sourceVersion,
            Variants = variants,
        };
    }

    private static (string? Variant, string? SourceVersion, Dictionary<string, VariantRule>? Rules) ReadVariants(ManifestDocument document)
    {
        var known = string.Join(", ", ModelVariants.Known);
        if (document.Variant is { } variant && !ModelVariants.Known.Contains(variant))
        {
            throw Invalid($"'variant' must be one of {known}, got '{variant}'");
        }

        if ((document.Variant is null) != (document.SourceVersion is null))
        {
            throw Invalid("'variant' and 'source_version' go together: a variant names the version it was made from");
        }

        if (document.Variant is not null && document.Variants is not null)
        {
            throw Invalid("a variant cannot have 'variants' of its own");
        }

        Dictionary<string, VariantRule>? rules = null;
        foreach (var (name, rule) in document.Variants ?? [])
        {
            if (!ModelVariants.Known.Contains(name))
            {
                throw Invalid($"'variants' has '{name}'; known variants are {known}");
            }

            if (rule?.WhenQueueDepthAtLeast is < 1)
            {
                throw Invalid($"'variants.{name}.when_queue_depth_at_least' must be at least 1, got {rule.WhenQueueDepthAtLeast}");
            }

            rules ??= new Dictionary<string, VariantRule>(StringComparer.Ordinal);
            rules[name] = new VariantRule(rule?.WhenQueueDepthAtLeast);
        }

        return (document.Variant, NonEmpty(document.SourceVersion, "source_version"), rules);
    }

    private static List<TensorSpec> ToSpecs(List<TensorSpecDocument?> documents, string list, bool dynamicBatch)
    {
        var specs = new List<TensorSpec>(documents.Count);
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < documents.Count; i++)
        {
            var document = documents[i] ?? throw Invalid($"{list}[{i}] is null");
            var name = Required(document.Name, $"{list}[{i}].name");
            if (name.Length == 0 || !names.Add(name))
            {
                throw Invalid($"{list}[{i}] has an empty or repeated name '{name}'");
            }

            var datatype = Required(document.Datatype, $"{list}[{i}].datatype");
            var shape = Required(document.Shape, $"{list}[{i}].shape");
            if (shape.Any(dim => dim < -1))
            {
                throw Invalid($"{list}[{i}] '{name}' has shape [{string.Join(",", shape)}]; dims must be -1 (variable) or at least 0");
            }

            if (dynamicBatch && (shape.Length == 0 || shape[0] != -1))
            {
                throw Invalid($"{list}[{i}] '{name}' has shape [{string.Join(",", shape)}]; a dynamic_batch model needs -1 as dim 0");
            }

            specs.Add(new TensorSpec(name, datatype, shape));
        }

        return specs;
    }

    private static TensorSpecDocument ToDocument(TensorSpec spec) =>
        new() { Name = spec.Name, Datatype = spec.Datatype, Shape = spec.Shape };

    private static T Required<T>(T? value, string property) where T : class =>
        value ?? throw Invalid($"'{property}' is missing");

    private static T Required<T>(T? value, string property) where T : struct =>
        value ?? throw Invalid($"'{property}' is missing");

    private static string? NonEmpty(string? value, string property) =>
        value is { Length: 0 } ? throw Invalid($"'{property}' is empty") : value;

    private static InvalidDataException Invalid(string problem) => new($"invalid model manifest: {problem}");
}

/// <summary>The on-disk shape of a manifest; nullable so that missing properties get precise errors.</summary>
internal sealed class ManifestDocument
{
    public string? Name { get; set; }

    public string? Version { get; set; }

    public string? File { get; set; }

    public string? Sha256 { get; set; }

    public long? SizeBytes { get; set; }

    public string? Platform { get; set; }

    public List<TensorSpecDocument?>? Inputs { get; set; }

    public List<TensorSpecDocument?>? Outputs { get; set; }

    public int? MaxBatchSize { get; set; }

    public bool? DynamicBatch { get; set; }

    public string? Task { get; set; }

    public GenerationDocument? Generation { get; set; }

    public double? Weight { get; set; }

    public int? MaxQueued { get; set; }

    public int? MinWarm { get; set; }

    public int? MaxWorkers { get; set; }

    public string? Variant { get; set; }

    public string? SourceVersion { get; set; }

    public Dictionary<string, VariantRuleDocument?>? Variants { get; set; }
}

internal sealed class VariantRuleDocument
{
    public int? WhenQueueDepthAtLeast { get; set; }
}

internal sealed class TensorSpecDocument
{
    public string? Name { get; set; }

    public TensorDatatype? Datatype { get; set; }

    public long[]? Shape { get; set; }
}

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    ReadCommentHandling = JsonCommentHandling.Skip,
    AllowTrailingCommas = true,
    Converters = [typeof(TensorDatatypeJsonConverter)])]
[JsonSerializable(typeof(ManifestDocument))]
internal sealed partial class ManifestJsonContext : JsonSerializerContext;
