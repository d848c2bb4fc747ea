namespace ServerlessInference.Models;

/// <summary>Version ordering shared by model stores and metadata: numeric versions by value, others after them by name.</summary>
public static class ModelVersions
{
    public static IEnumerable<string> Order(IEnumerable<string> versions) =>
        versions.Distinct(StringComparer.Ordinal)
            .OrderBy(v => long.TryParse(v, out _) ? 0 : 1)
            .ThenBy(v => long.TryParse(v, out var n) ? n : 0)
            .ThenBy(v => v, StringComparer.Ordinal);

    public static string? Latest(IEnumerable<string> versions) => Order(versions).LastOrDefault();
}
