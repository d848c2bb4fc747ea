using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ServerlessInference.Onnx;
using Spectre.Console;

namespace ServerlessInference.Cli.Models;

/// <summary><c>si models push | ls | rm</c>: the model store, through the same <see cref="IModelStore"/> providers the
/// platform reads.</summary>
public static class ModelsCommands
{
    public static Command Create(CliConsole console)
    {
        var models = new Command("models", "Push, list and remove models in the model store");
        models.Subcommands.Add(Push(console));
        models.Subcommands.Add(List(console));
        models.Subcommands.Add(Remove(console));
        return models;
    }

    private static Command Push(CliConsole console)
    {
        var name = new Argument<string>("name") { Description = "The model's name" };
        var path = new Argument<string>("path") { Description = "The .onnx file" };
        var version = new Option<string?>("--version") { Description = "The version to write (default: one above the highest numeric version stored, else 1)" };
        var maxBatch = new Option<int?>("--max-batch-size") { Description = $"Rows per engine call of a dynamic-batch model (default {ManifestInference.DefaultMaxBatchSize})" };
        var command = new Command("push", "Upload an ONNX model with a manifest read from the file itself (inputs, outputs, dynamic batch)") { name, path, version, maxBatch };
        ModelStoreSelection.AddTo(command);
        command.SetAction(SiApp.Action(console, async (context, cancellationToken) =>
        {
            var file = context.Get(path);
            if (!File.Exists(file))
            {
                throw CliException.Usage($"no such file: {file}");
            }

            var modelName = context.Get(name);
            if (!ModelVersions.IsSafeSegment(modelName))
            {
                throw CliException.Usage($"model name '{modelName}' must be a plain path segment (no '/', '\\', '.' or '..')");
            }

            var (store, where) = ModelStoreSelection.Select(context);
            var modelVersion = context.Get(version) ?? await NextVersionAsync(store, modelName, cancellationToken).ConfigureAwait(false);
            var manifest = ManifestInference.Infer(file, modelName, modelVersion, context.Get(maxBatch));

            var length = new FileInfo(file).Length;
            ModelManifest stored;
            string localSha;
            if (console.ErrorIsTerminal)
            {
                (stored, localSha) = await console.Progress.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn())
                    .StartAsync(async progress =>
                    {
                        var task = progress.AddTask($"{manifest.Key} → {Markup.Escape(where)}", maxValue: Math.Max(length, 1));
                        var result = await UploadAsync(store, manifest, file, read => task.Value = read, cancellationToken).ConfigureAwait(false);
                        task.Value = task.MaxValue;
                        return result;
                    }).ConfigureAwait(false);
            }
            else
            {
                (stored, localSha) = await UploadAsync(store, manifest, file, _ => { }, cancellationToken).ConfigureAwait(false);
            }

            if (!string.Equals(stored.Sha256, localSha, StringComparison.OrdinalIgnoreCase))
            {
                throw new CliException(ExitCodes.ServerError, $"the store recorded sha256 {stored.Sha256} for {stored.Key}, but the file read as {localSha}");
            }

            if (context.Json)
            {
                using var doc = JsonDocument.Parse(ModelManifestJson.Serialize(stored));
                await SiApp.WriteJsonAsync(console, doc.RootElement).ConfigureAwait(false);
            }
            else
            {
                console.Tables.Write(ManifestTable([stored]));
                console.Tables.WriteLine($"pushed {stored.Key} to {where}");
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command List(CliConsole console)
    {
        var command = new Command("ls", "List the models in the model store");
        ModelStoreSelection.AddTo(command);
        command.SetAction(SiApp.Action(console, async (context, cancellationToken) =>
        {
            var (store, _) = ModelStoreSelection.Select(context);
            var listing = await store.ListAsync(cancellationToken).ConfigureAwait(false);
            var ordered = listing.OrderBy(m => m.Name, StringComparer.Ordinal).ThenBy(m => m.Version, VersionComparer.Instance).ToList();
            if (context.Json)
            {
                using var doc = JsonDocument.Parse(ListJson(ordered, listing.Invalid));
                await SiApp.WriteJsonAsync(console, doc.RootElement).ConfigureAwait(false);
                return ExitCodes.Ok;
            }

            console.Tables.Write(ManifestTable(ordered));
            foreach (var invalid in listing.Invalid)
            {
                console.Tables.WriteLine($"unreadable manifest {invalid.Model}/{invalid.Version}: {invalid.Error}");
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Remove(CliConsole console)
    {
        var name = new Argument<string>("name") { Description = "The model's name" };
        var version = new Option<string?>("--version") { Description = "Only this version (default: every version)" };
        var command = new Command("rm", "Remove a model (or one version of it) from the model store") { name, version };
        ModelStoreSelection.AddTo(command);
        command.SetAction(SiApp.Action(console, async (context, cancellationToken) =>
        {
            var (store, where) = ModelStoreSelection.Select(context);
            var modelName = context.Get(name);
            var modelVersion = context.Get(version);
            var removed = await store.DeleteAsync(modelName, modelVersion, cancellationToken).ConfigureAwait(false);
            if (removed.Count == 0)
            {
                throw new CliException(ExitCodes.Refused, $"{where} holds no model '{modelName}'{(modelVersion is null ? "" : $" version '{modelVersion}'")}");
            }

            if (context.Json)
            {
                using var doc = JsonDocument.Parse(JsonSerializer.Serialize(new { removed = removed.Select(m => m.Key).ToArray() }));
                await SiApp.WriteJsonAsync(console, doc.RootElement).ConfigureAwait(false);
            }
            else
            {
                foreach (var manifest in removed)
                {
                    console.Tables.WriteLine($"removed {manifest.Key} from {where}");
                }
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    private static async Task<(ModelManifest Stored, string LocalSha)> UploadAsync(IModelStore store, ModelManifest manifest, string file, Action<long> progress, CancellationToken cancellationToken)
    {
        var source = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, useAsync: true);
        await using var hashing = new HashingProgressStream(source, progress);
        var stored = await store.UploadAsync(manifest, hashing, cancellationToken).ConfigureAwait(false);
        return (stored, hashing.Sha256());
    }

    private static async Task<string> NextVersionAsync(IModelStore store, string name, CancellationToken cancellationToken)
    {
        var latest = await store.GetManifestAsync(name, null, cancellationToken).ConfigureAwait(false);
        return latest is null ? "1"
            : long.TryParse(latest.Version, NumberStyles.None, CultureInfo.InvariantCulture, out var number) ? (number + 1).ToString(CultureInfo.InvariantCulture)
            : throw CliException.Usage($"model '{name}' has version '{latest.Version}', which is not a number; give --version");
    }

    private static byte[] ListJson(IReadOnlyList<ModelManifest> models, IReadOnlyList<InvalidManifest> invalid)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteStartArray("models");
            foreach (var manifest in models)
            {
                using var doc = JsonDocument.Parse(ModelManifestJson.Serialize(manifest));
                doc.RootElement.WriteTo(writer);
            }

            writer.WriteEndArray();
            writer.WriteStartArray("invalid");
            foreach (var bad in invalid)
            {
                writer.WriteStartObject();
                writer.WriteString("model", bad.Model);
                writer.WriteString("version", bad.Version);
                writer.WriteString("error", bad.Error);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        }

        return buffer.ToArray();
    }

    private static Table ManifestTable(IEnumerable<ModelManifest> manifests)
    {
        var table = new Table().AddColumns("MODEL", "VERSION", "SIZE", "SHA256", "INPUTS", "OUTPUTS", "BATCH");
        foreach (var m in manifests)
        {
            table.AddRow(
                Markup.Escape(m.Name),
                Markup.Escape(m.Version),
                Format.Bytes(m.SizeBytes),
                m.Sha256.Length > 12 ? m.Sha256[..12] : m.Sha256,
                Markup.Escape(m.IsTextGeneration ? "(text-generation)" : string.Join(", ", m.Inputs.Select(Format.Tensor))),
                Markup.Escape(m.IsTextGeneration ? "" : string.Join(", ", m.Outputs.Select(Format.Tensor))),
                m.DynamicBatch ? $"dynamic ≤{m.MaxBatchSize}" : "fixed");
        }

        return table;
    }

    private sealed class VersionComparer : IComparer<string>
    {
        public static VersionComparer Instance { get; } = new();

        public int Compare(string? x, string? y)
        {
            var order = ModelVersions.Order([x ?? "", y ?? ""]).ToList();
            return x == y ? 0 : order[0] == x ? -1 : 1;
        }
    }
}
