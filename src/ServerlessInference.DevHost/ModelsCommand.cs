using System.Globalization;
using System.Security.Cryptography;
using ServerlessInference.Hosting.Providers;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Quantization;
using ServerlessInference.Protocol;

namespace ServerlessInference.DevHost;

/// <summary><c>models quantize NAME [--version V] [--when-queue-depth-at-least N]</c>: reads a model from the model store
/// the host's settings name (a folder, or Blob with <c>--profile services</c>), writes its INT8 weight-quantized variant
/// (<see cref="Int8WeightQuantizer"/>, MatMul/Gemm weights per output channel, symmetric, ONNX Runtime's dynamic form) and
/// stores it beside the original as version <c>{V}-int8</c> through the store's upload, which computes its sha256. With
/// <c>--when-queue-depth-at-least N</c> the source manifest gets the rule that switches requests to the variant while N or
/// more of the model's jobs are queued (see <see cref="ModelVariants"/>). <c>models demo lm-spec</c> builds and stores the
/// speculative-decoding demo, which start-up does not seed. Other arguments are configuration, as for the host.</summary>
public static class ModelsCommand
{
    public const string Name = "models";

    private const string Usage = """
        usage: models quantize NAME [--version V] [--when-queue-depth-at-least N] [settings...]
          writes NAME's INT8 variant as version V-int8 (V: the latest version when not given)
          --when-queue-depth-at-least N   also let the gateway switch to it while N or more of NAME's jobs are queued
        usage: models demo lm-spec [settings...]
          builds the speculative-decoding demo (lm-spec, 111 MB, with its draft lm-spec-draft, 23 MB) and stores both
        settings: as for the host, e.g. --profile services or --Inference:ModelStore:Root=PATH
        """;

    /// <summary>Demo models the start-up does not seed (too big to build on every fresh start), by name.</summary>
    private static readonly Dictionary<string, (DecoderLmConfig Target, DecoderLmConfig Draft)> OnDemandDemos = new(StringComparer.Ordinal)
    {
        [DecoderLmModel.LmSpec.Name] = (DecoderLmModel.LmSpec, DecoderLmModel.LmSpecDraft),
    };

    public static bool IsCommand(string[] args) => args.Length > 0 && args[0] == Name;

    /// <summary>Runs the command in <paramref name="args"/> (starting with <c>models</c>); returns the exit code: 0 done,
    /// 1 the model cannot be quantized or stored, 2 a usage error.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        var command = args.Length < 2 ? null : args[1];
        if (command is not ("quantize" or "demo"))
        {
            await error.WriteLineAsync(Usage).ConfigureAwait(false);
            return 2;
        }

        var parsed = Parse(args[2..]);
        if ((parsed.Problem ?? (parsed.Model is null ? $"models {command} needs the model's name" : null)) is { } problem)
        {
            await error.WriteLineAsync(problem + Environment.NewLine + Usage).ConfigureAwait(false);
            return 2;
        }

        if (command == "demo" && (parsed.Version is not null || parsed.SwitchAt is not null || !OnDemandDemos.ContainsKey(parsed.Model!)))
        {
            await error.WriteLineAsync($"models demo builds {string.Join(", ", OnDemandDemos.Keys)} and takes no options but settings" + Environment.NewLine + Usage).ConfigureAwait(false);
            return 2;
        }

        var (host, choice) = DevHostSetup.CommandHost(parsed.Settings);
        using var _ = host;
        var store = host.Services.GetRequiredService<IModelStore>();
        var where = choice.ModelStore == ProviderSettings.Blob
            ? "the Blob model store"
            : $"the model folder {host.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<ModelStoreOptions>>().Value.Root}";
        return command == "demo"
            ? await StoreDemoAsync(store, OnDemandDemos[parsed.Model!], where, output, error, cancellationToken).ConfigureAwait(false)
            : await QuantizeAsync(store, parsed, where, output, error, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Builds a demo target and its draft (the same bytes every time) and stores both, the draft first, so the
    /// target's manifest never names a draft the store lacks.</summary>
    private static async Task<int> StoreDemoAsync(IModelStore store, (DecoderLmConfig Target, DecoderLmConfig Draft) demo, string where, TextWriter output,
        TextWriter error, CancellationToken cancellationToken)
    {
        try
        {
            await StoreDemoModelsAsync(store, demo, where, output, cancellationToken).ConfigureAwait(false);
            return 0;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await error.WriteLineAsync($"cannot store {demo.Target.Name} in {where}: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    private static async Task StoreDemoModelsAsync(IModelStore store, (DecoderLmConfig Target, DecoderLmConfig Draft) demo, string where, TextWriter output,
        CancellationToken cancellationToken)
    {
        foreach (var (config, manifest) in new[]
        {
            (demo.Draft, DecoderLmModel.Manifest(demo.Draft)),
            (demo.Target, DecoderLmModel.SpeculativeManifest(demo.Target, demo.Draft)),
        })
        {
            using var weights = new MemoryStream(DecoderLmModel.Build(config), writable: false);
            var stored = await store.UploadAsync(manifest, weights, cancellationToken).ConfigureAwait(false);
            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"Stored {stored.Name} version {stored.Version} in {where}: {stored.SizeBytes / 1e6:0.0} MB, sha256 {stored.Sha256}.")).ConfigureAwait(false);
        }

        await output.WriteLineAsync($"{demo.Target.Name} speculates with {demo.Draft.Name} (generation.speculative.draft); try POST /v1/completions with \"model\": \"{demo.Target.Name}\".").ConfigureAwait(false);
    }

    private static async Task<int> QuantizeAsync(IModelStore store, Parsed parsed, string where, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        try
        {
            var source = await store.GetManifestAsync(parsed.Model!, parsed.Version, cancellationToken).ConfigureAwait(false);
            if (source is null)
            {
                await error.WriteLineAsync(parsed.Version is null
                    ? $"no model '{parsed.Model}' in {where} (the DevHost seeds its demo models on its first start)"
                    : $"model '{parsed.Model}' has no version '{parsed.Version}' in {where}").ConfigureAwait(false);
                return 1;
            }

            if (source.Variant is not null)
            {
                await error.WriteLineAsync($"version '{source.Version}' of '{source.Name}' is already the '{source.Variant}' variant of version '{source.SourceVersion}'").ConfigureAwait(false);
                return 1;
            }

            var weights = await ReadVerifiedAsync(store, source, cancellationToken).ConfigureAwait(false);
            var (quantized, report) = Int8WeightQuantizer.Quantize(weights);
            var variant = source with
            {
                Version = ModelVariants.VersionOf(source.Version, ModelVariants.Int8),
                Variant = ModelVariants.Int8,
                SourceVersion = source.Version,
                Variants = null,
                Sha256 = "",
                SizeBytes = 0,
            };
            using (var stream = new MemoryStream(quantized, writable: false))
            {
                variant = await store.UploadAsync(variant, stream, cancellationToken).ConfigureAwait(false);
            }

            await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"Stored {variant.Name} version {variant.Version} (variant {ModelVariants.Int8} of version {source.Version}) in {where}: " +
                $"{variant.SizeBytes / 1e6:0.0} MB (FP32 {source.SizeBytes / 1e6:0.0} MB), sha256 {variant.Sha256}.")).ConfigureAwait(false);
            await output.WriteLineAsync($"{report.QuantizedWeights} MatMul/Gemm weight(s) quantized to INT8, per output channel, symmetric; " +
                "activations quantized per tensor at run time (DynamicQuantizeLinear + MatMulInteger).").ConfigureAwait(false);
            foreach (var skipped in report.SkippedNodes)
            {
                await output.WriteLineAsync("  left in FP32: " + skipped).ConfigureAwait(false);
            }

            if (parsed.SwitchAt is { } threshold)
            {
                var rules = new Dictionary<string, VariantRule>(source.Variants ?? new Dictionary<string, VariantRule>(), StringComparer.Ordinal)
                {
                    [ModelVariants.Int8] = new VariantRule(threshold),
                };
                using var original = new MemoryStream(weights, writable: false);
                await store.UploadAsync(source with { Variants = rules }, original, cancellationToken).ConfigureAwait(false);
                await output.WriteLineAsync($"Version {source.Version} now switches to {variant.Version} while {threshold} or more of its jobs are queued " +
                    $"(and back at {threshold / 2} or fewer).").ConfigureAwait(false);
            }

            await output.WriteLineAsync($"Ask for it with \"parameters\": {{\"variant\": \"{ModelVariants.Int8}\"}} or POST /v2/models/{variant.Name}/versions/{variant.Version}/infer.").ConfigureAwait(false);
            return 0;
        }
        catch (InvalidDataException ex)
        {
            await error.WriteLineAsync($"cannot quantize '{parsed.Model}': {ex.Message}").ConfigureAwait(false);
            return 1;
        }
        catch (InferenceException ex)
        {
            await error.WriteLineAsync(ex.Message).ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>The source's weights, checked against its manifest's sha256 (a corrupt file must not become a variant).</summary>
    private static async Task<byte[]> ReadVerifiedAsync(IModelStore store, ModelManifest manifest, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream(manifest.SizeBytes is > 0 and < int.MaxValue ? (int)manifest.SizeBytes : 0);
        await using (var weights = await store.OpenWeightsAsync(manifest, cancellationToken).ConfigureAwait(false))
        {
            await weights.CopyToAsync(buffer, cancellationToken).ConfigureAwait(false);
        }

        var bytes = buffer.ToArray();
        var sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (sha != manifest.Sha256)
        {
            throw new InvalidDataException($"the weights of version '{manifest.Version}' fail the sha256 check: the manifest says {manifest.Sha256}, the file is {sha}");
        }

        return bytes;
    }

    private static Parsed Parse(string[] args)
    {
        var parsed = new Parsed();
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            string? Next() => i + 1 < args.Length ? args[++i] : null;
            switch (arg)
            {
                case "--version":
                    parsed.Version = Next();
                    if (parsed.Version is null || !ModelVersions.IsSafeSegment(parsed.Version))
                    {
                        parsed.Problem = "--version needs a version name";
                    }

                    break;
                case "--when-queue-depth-at-least":
                    if (int.TryParse(Next(), NumberStyles.None, CultureInfo.InvariantCulture, out var depth) && depth >= 1)
                    {
                        parsed.SwitchAt = depth;
                    }
                    else
                    {
                        parsed.Problem = "--when-queue-depth-at-least needs a whole number of at least 1";
                    }

                    break;
                default:
                    if (!arg.StartsWith('-') && parsed.Model is null)
                    {
                        parsed.Model = arg;
                    }
                    else
                    {
                        i = KeysCommand.TakeSetting(args, i, parsed.Settings);
                    }

                    break;
            }
        }

        return parsed;
    }

    private sealed class Parsed
    {
        public string? Model { get; set; }

        public string? Version { get; set; }

        public int? SwitchAt { get; set; }

        public string? Problem { get; set; }

        public List<string> Settings { get; } = [];
    }
}
