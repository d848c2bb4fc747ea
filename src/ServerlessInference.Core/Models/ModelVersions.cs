namespace ServerlessInference.Models;

/// <summary>Rules shared by model stores and metadata: version order (numeric versions by value, others after them by
/// name) and which names are safe as path segments.</summary>
public static class ModelVersions
{
    public static IEnumerable<string> Order(IEnumerable<string> versions) =>
        versions.Distinct(StringComparer.Ordinal)
            .OrderBy(v => long.TryParse(v, out _) ? 0 : 1)
            .ThenBy(v => long.TryParse(v, out var n) ? n : 0)
            .ThenBy(v => v, StringComparer.Ordinal);

    /// <summary>The highest version that is not a quantized variant (<see cref="ModelVariants.IsVariantVersion"/>): a
    /// variant stored beside its source never becomes what a request without a version gets.</summary>
    public static string? Latest(IEnumerable<string> versions) => LatestFirst(versions).FirstOrDefault();

    /// <summary>Candidates for the latest version, highest first, variants left out (a store reads them in turn while a
    /// manifest is not written yet).</summary>
    public static IEnumerable<string> LatestFirst(IEnumerable<string> versions) =>
        Order(versions.Where(v => !ModelVariants.IsVariantVersion(v))).Reverse();

    /// <summary>Whether a model name, version or file name is safe as one path segment of a store (a folder, a blob
    /// name): not empty, not <c>.</c> or <c>..</c>, no separator, no NUL. Every store uses this one rule, so a model that
    /// one store accepts the others accept too.</summary>
    public static bool IsSafeSegment(string segment) =>
        segment.Length > 0 && segment != "." && segment != ".." && segment.IndexOfAny(['/', '\\', '\0']) < 0;
}
