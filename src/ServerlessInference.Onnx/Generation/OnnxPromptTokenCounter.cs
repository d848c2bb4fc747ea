using System.Collections.Concurrent;
using Google.Protobuf;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Generation;
using ServerlessInference.Models;

namespace ServerlessInference.Onnx.Generation;

/// <summary>The gateway's prompt-token counter: loads each text-generation model's tokenizer once, from the files its
/// engine would use, i.e. the ONNX file's metadata properties, read without creating a session (the graph's bytes are
/// skipped, not loaded).</summary>
/// <remarks>The weights come through a <see cref="WeightsCache"/> of the gateway's own (downloaded and sha256-verified
/// once; in the DevHost it is the workers' cache, already warm).</remarks>
public sealed class OnnxPromptTokenCounter(IModelStore store, IOptions<WarmPoolOptions> options, ILogger<WeightsCache> logger) : IPromptTokenCounter
{
    private readonly WeightsCache _weights = new(store, options.Value.CacheDirectory, logger);
    private readonly ConcurrentDictionary<string, Lazy<Task<ITextTokenizer>>> _tokenizers = new(StringComparer.Ordinal);

    public async ValueTask<int> CountAsync(ModelManifest manifest, string prompt, CancellationToken cancellationToken)
    {
        var key = $"{manifest.Key}@{manifest.Sha256}";
        var load = _tokenizers.GetOrAdd(key, _ => new Lazy<Task<ITextTokenizer>>(() => LoadAsync(manifest)));
        try
        {
            var tokenizer = await load.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
            return tokenizer.Encode(prompt).Count;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Not cached: the next request tries again (the store may have been down).
            _tokenizers.TryRemove(new KeyValuePair<string, Lazy<Task<ITextTokenizer>>>(key, load));
            throw;
        }
    }

    private async Task<ITextTokenizer> LoadAsync(ModelManifest manifest)
    {
        var spec = manifest.Generation ?? throw new InferenceException(InferenceError.BadRequest, $"model '{manifest.Name}' is not a text-generation model");
        var path = await _weights.GetLocalPathAsync(manifest, CancellationToken.None).ConfigureAwait(false);
        Dictionary<string, string> properties;
        await using (var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16))
        {
            properties = ReadMetadataProperties(file);
        }

        try
        {
            return TextTokenizer.Load(spec.Tokenizer, name => properties.TryGetValue(name, out var content)
                ? new MemoryStream(System.Text.Encoding.UTF8.GetBytes(content), writable: false)
                : null);
        }
        catch (Exception ex) when (ex is not InferenceException)
        {
            throw new InferenceException(InferenceError.ModelFailure, $"the tokenizer of '{manifest.Name}' cannot be loaded: {ex.Message}", ex);
        }
    }

    /// <summary>An ONNX file's <c>metadata_props</c> (ModelProto field 14), every other field skipped as it streams by.</summary>
    public static Dictionary<string, string> ReadMetadataProperties(Stream onnx)
    {
        const int MetadataProps = 14;
        var properties = new Dictionary<string, string>(StringComparer.Ordinal);
        var input = new CodedInputStream(onnx, leaveOpen: true);
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) != MetadataProps || WireFormat.GetTagWireType(tag) != WireFormat.WireType.LengthDelimited)
            {
                input.SkipLastField();
                continue;
            }

            var entry = global::Onnx.StringStringEntryProto.Parser.ParseFrom(input.ReadBytes());
            properties[entry.Key] = entry.Value;
        }

        return properties;
    }
}
