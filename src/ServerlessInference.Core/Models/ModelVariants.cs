namespace ServerlessInference.Models;

/// <summary>Quantized variants of a model version: how they are named, stored and chosen.</summary>
/// <remarks>
/// <para>A variant is a version of its own in the model store, named <c>{source version}-{variant}</c> (<c>1-int8</c>),
/// with its own file, sha256 and manifest; the manifest records <c>"variant"</c> and <c>"source_version"</c>. A variant
/// version is never a model's latest: a request without a version keeps getting the original.</para>
/// <para>A request picks one with the OIP parameter <c>"variant": "int8"</c> (<c>"none"</c> pins the original), and a
/// source manifest's <c>"variants": {"int8": {"when_queue_depth_at_least": N}}</c> lets the gateway pick it by itself
/// while the model's queue is deep (<see cref="VariantSwitch"/>).</para>
/// </remarks>
public static class ModelVariants
{
    /// <summary>INT8 weights (MatMul/Gemm), per output channel, symmetric.</summary>
    public const string Int8 = "int8";

    /// <summary>The request parameter's value that pins the original version (no automatic switch).</summary>
    public const string None = "none";

    /// <summary>The OIP request parameter that names a variant.</summary>
    public const string Parameter = "variant";

    /// <summary>Variants the platform can make and serve.</summary>
    public static IReadOnlyList<string> Known { get; } = [Int8];

    /// <summary>The version a variant of <paramref name="sourceVersion"/> is stored as.</summary>
    public static string VersionOf(string sourceVersion, string variant) => $"{sourceVersion}-{variant}";

    /// <summary>Whether <paramref name="version"/> is named as a variant (<c>*-int8</c>), so it is never the latest.</summary>
    public static bool IsVariantVersion(string version) =>
        Known.Any(variant => version.EndsWith("-" + variant, StringComparison.Ordinal) && version.Length > variant.Length + 1);
}

/// <summary>When the gateway switches a model's requests to a variant by itself.</summary>
/// <param name="WhenQueueDepthAtLeast">Switch on once this many of the model's jobs are queued (waiting for a worker);
/// switch back once they are at or below half of it. Null: only requests that ask for the variant get it.</param>
public sealed record VariantRule(int? WhenQueueDepthAtLeast);
