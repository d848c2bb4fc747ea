using ServerlessInference.Protocol;

namespace ServerlessInference.Models;

/// <summary>Creates runnable models from verified weights on local disk.</summary>
public interface IInferenceEngine
{
    /// <summary>The execution provider this process got (<c>CUDA</c> or <c>CPU</c>), decided once.</summary>
    string ExecutionProvider { get; }

    /// <summary>Creates a session for <paramref name="manifest"/> from <paramref name="weightsPath"/>.</summary>
    /// <exception cref="InferenceException">The file is not a model the engine can load.</exception>
    ValueTask<ILoadedModel> LoadAsync(ModelManifest manifest, string weightsPath, CancellationToken cancellationToken);
}

/// <summary>A model ready to run. Owned by the <see cref="WarmPool"/>, disposed on eviction.</summary>
/// <remarks><see cref="RunBatchAsync"/> may be called from several threads at once.</remarks>
public interface ILoadedModel : IDisposable
{
    ModelManifest Manifest { get; }

    /// <summary>Bytes this model holds in memory (weights and session), counted against the pool budget.</summary>
    long SizeBytes { get; }

    /// <summary>Runs requests that were validated against the manifest. A dynamic-batch model stacks them along
    /// dim 0 into one call; a fixed-batch model runs them one by one. Returns one result per request, in order;
    /// a request that fails gets its own error and does not fail the others.</summary>
    ValueTask<IReadOnlyList<BatchItemResult>> RunBatchAsync(IReadOnlyList<InferenceRequest> requests, CancellationToken cancellationToken);
}

/// <summary>The outcome of one request of a batch: a response, or an error message and whose fault it is
/// (<see cref="InferenceError.BadRequest"/>: the request's, answered 400; otherwise the model's, answered 500).</summary>
public readonly record struct BatchItemResult(InferenceResponse? Response, string? Error, InferenceError ErrorKind = InferenceError.ModelFailure)
{
    public static BatchItemResult Success(InferenceResponse response) => new(response, null);

    public static BatchItemResult Failure(string error, InferenceError kind = InferenceError.ModelFailure) => new(null, error, kind);
}
