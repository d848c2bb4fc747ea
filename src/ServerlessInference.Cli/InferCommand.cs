using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using ServerlessInference.Cli.Jobs;
using ServerlessInference.Cli.Protocol;
using Spectre.Console;

namespace ServerlessInference.Cli;

/// <summary><c>si infer MODEL --input FILE</c>: an OIP request from a JSON file, or from <c>.npy</c> files sent as
/// binary tensors (Triton's extension), so large arrays skip JSON.</summary>
public static class InferCommand
{
    public const string InferenceHeaderContentLength = "Inference-Header-Content-Length";

    public static Command Create(CliConsole console)
    {
        var model = new Argument<string>("model") { Description = "The model's name" };
        var input = new Option<string[]>("--input", "-i")
        {
            Description = "An OIP request (.json), or one .npy file per model input ([NAME=]FILE.npy; without NAME, the model's inputs in order)",
            Required = true,
            Arity = ArgumentArity.OneOrMore,
        };
        var version = new Option<string?>("--version") { Description = "The model version (default: the highest)" };
        var respondAsync = new Option<bool>("--async") { Description = "Answer at once with the job id (Prefer: respond-async)" };
        var command = new Command("infer", "Run one inference request") { model, input, version, respondAsync };
        command.SetAction(SiApp.Action(console, async (context, cancellationToken) =>
        {
            using var gateway = context.Gateway();
            var name = context.Get(model);
            var modelVersion = context.Get(version);
            var route = $"v2/models/{Uri.EscapeDataString(name)}{(modelVersion is null ? "" : "/versions/" + Uri.EscapeDataString(modelVersion))}";
            using var request = new HttpRequestMessage(HttpMethod.Post, route + "/infer")
            {
                Content = await BuildContentAsync(gateway, route, context.Get(input) ?? [], cancellationToken).ConfigureAwait(false),
            };
            if (context.Get(respondAsync))
            {
                request.Headers.Add("Prefer", "respond-async");
            }

            using var response = await gateway.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
            var body = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            if (response.Headers.TryGetValues(InferenceHeaderContentLength, out var lengths)
                && int.TryParse(lengths.First(), NumberStyles.None, CultureInfo.InvariantCulture, out var jsonLength) && jsonLength <= body.Length)
            {
                // Binary outputs (asked for by the request file): show the JSON part; the tensors follow it.
                body = body[..jsonLength];
            }

            using var doc = JsonDocument.Parse(body);
            if (response.StatusCode == HttpStatusCode.Accepted)
            {
                if (context.Json)
                {
                    await SiApp.WriteJsonAsync(console, doc.RootElement).ConfigureAwait(false);
                }
                else
                {
                    JobsCommands.WriteJob(console, doc.RootElement);
                    console.Tables.WriteLine($"follow it with: si jobs wait {doc.RootElement.GetProperty("id").GetString()}");
                }

                return ExitCodes.Ok;
            }

            if (context.Json)
            {
                await SiApp.WriteJsonAsync(console, doc.RootElement).ConfigureAwait(false);
            }
            else
            {
                WriteResponse(console, doc.RootElement);
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>The request body: the JSON file as it is, or the .npy arrays as binary tensors.</summary>
    public static async Task<HttpContent> BuildContentAsync(GatewayClient gateway, string modelRoute, IReadOnlyList<string> inputs, CancellationToken cancellationToken)
    {
        if (inputs.Count == 0)
        {
            throw CliException.Usage("give --input FILE (an OIP .json request, or .npy files)");
        }

        var npy = inputs.Select(i => i.EndsWith(".npy", StringComparison.OrdinalIgnoreCase)).ToArray();
        if (!npy.Any(n => n))
        {
            if (inputs.Count > 1)
            {
                throw CliException.Usage("a JSON request is one file; several --input files must all be .npy");
            }

            return JsonContent(ReadFile(inputs[0]));
        }

        if (!npy.All(n => n))
        {
            throw CliException.Usage("--input files must be one .json request or only .npy files");
        }

        var named = inputs.Select(i => i.Split('=', 2) is [var n, var p] && n.Length > 0 && !n.Contains('/', StringComparison.Ordinal) ? (Name: (string?)n, Path: p) : (Name: null, Path: i)).ToList();
        var arrays = named.Select(n => NpyFile.Read(n.Path)).ToList();
        if (named.Any(n => n.Name is null))
        {
            var modelInputs = await ModelInputNamesAsync(gateway, modelRoute, cancellationToken).ConfigureAwait(false);
            if (modelInputs.Count < named.Count)
            {
                throw CliException.Usage($"{named.Count} .npy files for a model with {modelInputs.Count} input(s) ({string.Join(", ", modelInputs)})");
            }

            named = [.. named.Select((n, i) => (n.Name ?? modelInputs[i], n.Path))];
        }

        return BinaryContent(named.Select((n, i) => (n.Name!, arrays[i])).ToList());
    }

    /// <summary>Triton's binary tensor extension: a JSON header whose inputs carry <c>binary_data_size</c>, then the
    /// tensors' raw bytes in the same order.</summary>
    public static HttpContent BinaryContent(IReadOnlyList<(string Name, NpyArray Array)> inputs)
    {
        using var header = new MemoryStream();
        using (var writer = new Utf8JsonWriter(header))
        {
            writer.WriteStartObject();
            writer.WriteStartArray("inputs");
            foreach (var (name, array) in inputs)
            {
                writer.WriteStartObject();
                writer.WriteString("name", name);
                writer.WriteStartArray("shape");
                foreach (var dim in array.Shape)
                {
                    writer.WriteNumberValue(dim);
                }

                writer.WriteEndArray();
                writer.WriteString("datatype", array.Datatype.Name());
                writer.WriteStartObject("parameters");
                writer.WriteNumber("binary_data_size", array.Data.Length);
                writer.WriteEndObject();
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        var json = header.ToArray();
        var body = new byte[json.Length + inputs.Sum(i => i.Array.Data.Length)];
        json.CopyTo(body, 0);
        var offset = json.Length;
        foreach (var (_, array) in inputs)
        {
            array.Data.Span.CopyTo(body.AsSpan(offset));
            offset += array.Data.Length;
        }

        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add(InferenceHeaderContentLength, json.Length.ToString(CultureInfo.InvariantCulture));
        return content;
    }

    public static HttpContent JsonContent(byte[] json)
    {
        var content = new ByteArrayContent(json);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    public static byte[] ReadFile(string path)
    {
        try
        {
            return File.ReadAllBytes(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw CliException.Usage($"cannot read {path}: {ex.Message}");
        }
    }

    private static async Task<IReadOnlyList<string>> ModelInputNamesAsync(GatewayClient gateway, string modelRoute, CancellationToken cancellationToken)
    {
        using var metadata = await gateway.GetJsonAsync(modelRoute, cancellationToken).ConfigureAwait(false);
        return metadata.RootElement.TryGetProperty("inputs", out var inputs) && inputs.ValueKind == JsonValueKind.Array
            ? [.. inputs.EnumerateArray().Select(i => i.GetProperty("name").GetString()!)]
            : [];
    }

    private static void WriteResponse(CliConsole console, JsonElement response)
    {
        var table = new Table().AddColumns("OUTPUT", "DATATYPE", "SHAPE", "DATA");
        if (response.TryGetProperty("outputs", out var outputs))
        {
            foreach (var output in outputs.EnumerateArray())
            {
                var shape = output.TryGetProperty("shape", out var s) ? string.Join(",", s.EnumerateArray().Select(d => d.GetRawText())) : "";
                table.AddRow(
                    Markup.Escape(output.GetProperty("name").GetString() ?? ""),
                    Markup.Escape(output.TryGetProperty("datatype", out var dt) ? dt.GetString() ?? "" : ""),
                    Markup.Escape($"[{shape}]"),
                    Markup.Escape(Preview(output)));
            }
        }

        console.Tables.Write(table);
        var model = response.TryGetProperty("model_name", out var m) ? m.GetString() : null;
        var id = response.TryGetProperty("id", out var i) ? i.GetString() : null;
        console.Tables.WriteLine($"{model} {(id is null ? "" : "job " + id)}".Trim());
    }

    private static string Preview(JsonElement output)
    {
        if (!output.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Array)
        {
            return output.TryGetProperty("parameters", out var p) && p.TryGetProperty("binary_data_size", out var size) ? $"({size.GetRawText()} binary bytes)" : "";
        }

        var builder = new StringBuilder();
        var count = 0;
        foreach (var value in data.EnumerateArray())
        {
            if (count == 8)
            {
                builder.Append(CultureInfo.InvariantCulture, $", … ({data.GetArrayLength()} values)");
                break;
            }

            builder.Append(count == 0 ? "" : ", ").Append(value.GetRawText());
            count++;
        }

        return builder.ToString();
    }
}
