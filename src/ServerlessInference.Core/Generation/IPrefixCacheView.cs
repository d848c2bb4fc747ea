namespace ServerlessInference.Generation;

/// <summary>What a text-generation model's prefix cache holds, in the gateway's terms: the
/// <see cref="PromptPrefix"/> keys of prompts whose first block is cached, so a worker can prefer the jobs whose
/// <see cref="Jobs.InferenceJob.PrefixKey"/> it holds.</summary>
/// <remarks>Thread-safe: read from any thread; a snapshot that the engine replaces as blocks come and go.</remarks>
public interface IPrefixCacheView
{
    /// <summary>Prefix keys (not <c>model#prefix</c>: the model's name is the caller's to add) held now.</summary>
    IReadOnlyCollection<string> HeldPrefixKeys { get; }
}
