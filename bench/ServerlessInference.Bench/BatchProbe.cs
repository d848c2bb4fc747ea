using System.Globalization;
using System.Text.Json;

namespace ServerlessInference.Bench;

/// <summary>Reads how many engine calls and rows a server has run so far, to report the mean batch size of a scenario
/// (warm-up included): the DevHost's <c>inference_batch_size</c> histogram on <c>/metrics</c>, the baseline's
/// <c>/stats</c>.</summary>
internal static class BatchProbe
{
    public static async Task<(double Batches, double Rows)?> ReadAsync(HttpClient client, Uri baseUri, bool devHost)
    {
        try
        {
            if (!devHost)
            {
                using var stats = JsonDocument.Parse(await client.GetStringAsync(new Uri(baseUri, "stats")).ConfigureAwait(false));
                return (stats.RootElement.GetProperty("batches").GetDouble(), stats.RootElement.GetProperty("rows").GetDouble());
            }

            double batches = 0, rows = 0;
            var text = await client.GetStringAsync(new Uri(baseUri, "metrics")).ConfigureAwait(false);
            foreach (var line in text.Split('\n'))
            {
                if (line.StartsWith("inference_batch_size_count{", StringComparison.Ordinal))
                {
                    batches += Value(line);
                }
                else if (line.StartsWith("inference_batch_size_sum{", StringComparison.Ordinal))
                {
                    rows += Value(line);
                }
            }

            return (batches, rows);
        }
        catch (Exception ex) when (ex is HttpRequestException or JsonException or KeyNotFoundException or FormatException)
        {
            return null;
        }
    }

    private static double Value(string line)
    {
        var fields = line.TrimEnd().Split(' ');
        // "name{labels} value [timestamp]": the value follows the closing brace.
        var close = Array.FindIndex(fields, f => f.EndsWith('}'));
        return double.Parse(fields[close + 1], CultureInfo.InvariantCulture);
    }
}
