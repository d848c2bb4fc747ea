namespace ServerlessInference.Models;

/// <summary>Version ordering shared by model stores: numeric versions by value, others after them by name.</summary>
public static class ModelVersions
{
    public static string? Latest(IEnumerable<string> versions) =>
        versions.OrderBy(v => long.TryParse(v, out var n) ? n : long.MinValue)
            .ThenBy(v => v, StringComparer.Ordinal)
            .LastOrDefault();
}
