using System.Globalization;
using System.Text.RegularExpressions;

namespace ServerlessInference.Bench;

/// <summary>Reads how many times workers loaded each model, from what the platform itself reports: the
/// <c>inference_model_loads_total{model}</c> counter of a worker's <c>/metrics</c>, or the warm pool's
/// <c>Loaded {model}/{version} ({bytes} bytes) in {ms} ms on {provider}</c> log line (one per load).</summary>
internal static partial class ModelLoadCounts
{
    public const string Metric = "inference_model_loads_total";

    /// <summary>Loads per model in a Prometheus text exposition (series of the same model summed); null when the text
    /// has no <see cref="Metric"/> series at all (a worker without the counter, or one that never loaded).</summary>
    public static Dictionary<string, double>? FromPrometheus(string text)
    {
        Dictionary<string, double>? counts = null;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (!line.StartsWith(Metric, StringComparison.Ordinal) || line.Length == Metric.Length || (line[Metric.Length] != '{' && line[Metric.Length] != ' '))
            {
                continue; // a comment, another metric, or one whose name only starts the same
            }

            var model = "";
            var valueStart = Metric.Length;
            if (line[Metric.Length] == '{')
            {
                var close = line.IndexOf('}', Metric.Length);
                if (close < 0)
                {
                    continue;
                }

                var labels = line[(Metric.Length + 1)..close];
                var match = ModelLabel().Match(labels);
                model = match.Success ? match.Groups["model"].Value : "";
                valueStart = close + 1;
            }

            var fields = line[valueStart..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length == 0 || !double.TryParse(fields[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var value))
            {
                continue;
            }

            counts ??= new Dictionary<string, double>(StringComparer.Ordinal);
            counts[model] = counts.GetValueOrDefault(model) + value;
        }

        return counts;
    }

    /// <summary>The model a warm-pool load line names, or null for any other line.</summary>
    public static string? ModelOfLogLine(string line)
    {
        var match = LoadedLine().Match(line);
        return match.Success ? match.Groups["model"].Value : null;
    }

    [GeneratedRegex(@"(?:^|,)model=""(?<model>[^""]*)""")]
    private static partial Regex ModelLabel();

    // WarmPool's "Loaded {Model} ({Bytes} bytes) in {Milliseconds:F0} ms on {Provider}", Model being "name/version".
    [GeneratedRegex(@"\bLoaded (?<model>[^\s/]+)/\S+ \(\d+ bytes\) in \d+ ms on ")]
    private static partial Regex LoadedLine();
}
