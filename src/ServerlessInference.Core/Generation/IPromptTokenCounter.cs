using ServerlessInference.Models;

namespace ServerlessInference.Generation;

/// <summary>Counts a prompt's tokens with a model's own tokenizer, so the gateway can refuse a prompt that does not fit
/// the context before it is queued.</summary>
/// <remarks>Thread-safe; implementations cache each model's tokenizer.</remarks>
public interface IPromptTokenCounter
{
    /// <summary>The number of tokens <paramref name="prompt"/> is for <paramref name="manifest"/>'s tokenizer.</summary>
    /// <exception cref="InferenceException">The tokenizer cannot be loaded (the model's fault, or its store is down).</exception>
    ValueTask<int> CountAsync(ModelManifest manifest, string prompt, CancellationToken cancellationToken);
}
