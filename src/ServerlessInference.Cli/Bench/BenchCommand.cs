using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;

namespace ServerlessInference.Cli.Bench;

/// <summary><c>si bench URL-or-MODEL</c>: closed-loop load with a progress bar, ending with latency percentiles and
/// throughput.</summary>
/// <remarks>A model name posts to <c>{--url}/v2/models/{model}/infer</c>: the <c>--input</c> request (JSON or .npy,
/// as <c>si infer</c> takes it), or else one made from the model's metadata (zeros, every open dim 1). A URL is called
/// as it is: a POST of <c>--input</c>'s bytes, or a GET without one.</remarks>
public static class BenchCommand
{
    public static Command Create(CliConsole console)
    {
        var target = new Argument<string>("target") { Description = "A model name, or an http(s) URL to call" };
        var concurrency = new Option<int>("--concurrency", "-c") { Description = "Requests in flight at once", DefaultValueFactory = _ => 8 };
        var seconds = new Option<double?>("--seconds", "-s") { Description = "Run this long (default 10 unless --requests)" };
        var requests = new Option<int?>("--requests", "-n") { Description = "Send this many requests" };
        var input = new Option<string[]>("--input", "-i") { Description = "The request: an OIP .json, or .npy files (model target); a body to POST (URL target)", Arity = ArgumentArity.ZeroOrMore };
        var command = new Command("bench", "Drive closed-loop load and report latency (p50/p90/p99) and throughput; exit 1 if any request failed") { target, concurrency, seconds, requests, input };
        command.SetAction(SiApp.Action(console, async (context, cancellationToken) =>
        {
            var c = context.Get(concurrency);
            var s = context.Get(seconds);
            var n = context.Get(requests);
            if (c is < 1 or > 10_000)
            {
                throw CliException.Usage("--concurrency must be between 1 and 10000");
            }

            if (s is not null && n is not null)
            {
                throw CliException.Usage("give --seconds or --requests, not both");
            }

            if (s is { } sec && (double.IsNaN(sec) || sec <= 0 || sec > 86_400))
            {
                throw CliException.Usage("--seconds must be between 0 and 86400");
            }

            if (n is < 1)
            {
                throw CliException.Usage("--requests must be at least 1");
            }

            var duration = n is null ? TimeSpan.FromSeconds(s ?? 10) : (TimeSpan?)null;
            using var gateway = context.Gateway();
            var (method, uri, content) = await RequestAsync(gateway, context.Get(target), context.Get(input) ?? [], cancellationToken).ConfigureAwait(false);
            var body = content is null ? null : await content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            var run = new LoadRun(gateway.Http, method, uri, body, content is null ? [] : LoadRun.HeadersOf(content.Headers));
            content?.Dispose();

            LoadResult result;
            if (console.ErrorIsTerminal)
            {
                result = await console.Progress.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                    .StartAsync(async progress =>
                    {
                        var task = progress.AddTask(Markup.Escape($"{method} {uri.AbsolutePath} c={c}"), maxValue: n ?? duration!.Value.TotalMilliseconds);
                        var clock = System.Diagnostics.Stopwatch.StartNew();
                        var r = await run.RunAsync(c, n, duration, done => task.Value = n is null ? Math.Min(clock.Elapsed.TotalMilliseconds, task.MaxValue) : done, cancellationToken).ConfigureAwait(false);
                        task.Value = task.MaxValue;
                        return r;
                    }).ConfigureAwait(false);
            }
            else
            {
                result = await run.RunAsync(c, n, duration, _ => { }, cancellationToken).ConfigureAwait(false);
            }

            if (context.Json)
            {
                using var doc = JsonDocument.Parse(Json(uri, result));
                await SiApp.WriteJsonAsync(console, doc.RootElement).ConfigureAwait(false);
            }
            else
            {
                console.Tables.Write(Table(method, uri, result));
            }

            if (result.Failed > 0)
            {
                throw new CliException(ExitCodes.Failed, $"{result.Failed} of {result.Requests} requests failed (first: {result.FirstError})");
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private static async Task<(HttpMethod Method, Uri Uri, HttpContent? Content)> RequestAsync(GatewayClient gateway, string target, IReadOnlyList<string> inputs, CancellationToken cancellationToken)
    {
        if (target.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || target.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
        {
            if (!Uri.TryCreate(target, UriKind.Absolute, out var url))
            {
                throw CliException.Usage($"'{target}' is not a URL");
            }

            if (inputs.Count == 0)
            {
                return (HttpMethod.Get, url, null);
            }

            if (inputs.Count > 1)
            {
                throw CliException.Usage("a URL target takes one --input body");
            }

            var bytes = InferCommand.ReadFile(inputs[0]);
            HttpContent content = inputs[0].EndsWith(".json", StringComparison.OrdinalIgnoreCase)
                ? InferCommand.JsonContent(bytes)
                : new ByteArrayContent(bytes) { Headers = { ContentType = new("application/octet-stream") } };
            return (HttpMethod.Post, url, content);
        }

        var route = $"v2/models/{Uri.EscapeDataString(target)}";
        var infer = new Uri(gateway.BaseUrl, route + "/infer");
        if (inputs.Count > 0)
        {
            return (HttpMethod.Post, infer, await InferCommand.BuildContentAsync(gateway, route, inputs, cancellationToken).ConfigureAwait(false));
        }

        using var metadata = await gateway.GetJsonAsync(route, cancellationToken).ConfigureAwait(false);
        return (HttpMethod.Post, infer, InferCommand.JsonContent(ZeroRequest(metadata.RootElement)));
    }

    /// <summary>An OIP request of zeros for the model whose metadata is <paramref name="metadata"/>; every open dim is 1.</summary>
    public static byte[] ZeroRequest(JsonElement metadata)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteStartArray("inputs");
            foreach (var input in metadata.GetProperty("inputs").EnumerateArray())
            {
                var shape = input.GetProperty("shape").EnumerateArray().Select(d => Math.Max(1, d.GetInt64())).ToArray();
                var count = shape.Aggregate(1L, (a, b) => a * b);
                if (count > 16_000_000)
                {
                    throw CliException.Usage($"input '{input.GetProperty("name").GetString()}' has {count} elements; give --input");
                }

                var datatype = input.GetProperty("datatype").GetString();
                writer.WriteStartObject();
                writer.WriteString("name", input.GetProperty("name").GetString());
                writer.WriteStartArray("shape");
                foreach (var dim in shape)
                {
                    writer.WriteNumberValue(dim);
                }

                writer.WriteEndArray();
                writer.WriteString("datatype", datatype);
                writer.WriteStartArray("data");
                for (long i = 0; i < count; i++)
                {
                    switch (datatype)
                    {
                        case "BOOL":
                            writer.WriteBooleanValue(false);
                            break;
                        case "BYTES":
                            writer.WriteStringValue("");
                            break;
                        default:
                            writer.WriteNumberValue(0);
                            break;
                    }
                }

                writer.WriteEndArray();
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }

    private static byte[] Json(Uri uri, LoadResult r)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("target", uri.ToString());
            w.WriteNumber("concurrency", r.Concurrency);
            w.WriteNumber("requests", r.Requests);
            w.WriteNumber("succeeded", r.Succeeded);
            w.WriteNumber("failed", r.Failed);
            w.WriteNumber("duration_seconds", Math.Round(r.Seconds, 3));
            w.WriteNumber("throughput_rps", Math.Round(r.RequestsPerSecond, 2));
            w.WriteStartObject("latency_ms");
            w.WriteNumber("mean", Math.Round(r.Latency.Mean, 3));
            w.WriteNumber("p50", Math.Round(r.Latency.P50, 3));
            w.WriteNumber("p90", Math.Round(r.Latency.P90, 3));
            w.WriteNumber("p99", Math.Round(r.Latency.P99, 3));
            w.WriteNumber("max", Math.Round(r.Latency.Max, 3));
            w.WriteEndObject();
            w.WriteStartObject("status_codes");
            foreach (var (code, count) in r.StatusCodes.OrderBy(p => p.Key))
            {
                w.WriteNumber(code.ToString(CultureInfo.InvariantCulture), count);
            }

            w.WriteEndObject();
            if (r.FirstError is not null)
            {
                w.WriteString("first_error", r.FirstError);
            }

            w.WriteEndObject();
        }

        return buffer.ToArray();
    }

    private static Table Table(HttpMethod method, Uri uri, LoadResult r)
    {
        var table = new Table().Title(Markup.Escape($"{method} {uri}")).AddColumns(
            "CONCURRENCY", "REQUESTS", "FAILED", "SECONDS", "REQ/S", "P50 MS", "P90 MS", "P99 MS", "MAX MS");
        table.AddRow(
            r.Concurrency.ToString(CultureInfo.InvariantCulture),
            r.Requests.ToString(CultureInfo.InvariantCulture),
            r.Failed.ToString(CultureInfo.InvariantCulture),
            r.Seconds.ToString("0.00", CultureInfo.InvariantCulture),
            r.RequestsPerSecond.ToString("0.0", CultureInfo.InvariantCulture),
            Format.Milliseconds(r.Latency.P50),
            Format.Milliseconds(r.Latency.P90),
            Format.Milliseconds(r.Latency.P99),
            Format.Milliseconds(r.Latency.Max));
        return table;
    }
}
