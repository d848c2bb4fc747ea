namespace ServerlessInference.Protocol;

/// <summary>What kind of failure an <see cref="InferenceException"/> is; the gateway maps it to an HTTP status.</summary>
public enum InferenceError
{
    /// <summary>The request body or a tensor is malformed or does not match the model (400).</summary>
    BadRequest,
    /// <summary>Unknown model, version or job (404).</summary>
    NotFound,
    /// <summary>The body is larger than the configured limit (413).</summary>
    PayloadTooLarge,
    /// <summary>The queue is full (429 with Retry-After).</summary>
    QueueFull,
    /// <summary>A backing service is unavailable (503 with Retry-After).</summary>
    Unavailable,
    /// <summary>The state does not allow the operation, e.g. cancelling a running job (409).</summary>
    Conflict,
    /// <summary>The model failed while running (500 on the job).</summary>
    ModelFailure,
    /// <summary>No API key, or one the gateway does not know (401 with <c>WWW-Authenticate: Bearer</c>).</summary>
    Unauthorized,
    /// <summary>A valid key that may not do this, e.g. a tenant key on <c>/status</c> (403).</summary>
    Forbidden,
    /// <summary>The key's request rate or concurrent-jobs limit is reached (429 with Retry-After).</summary>
    RateLimited,
}

/// <summary>A failure with a message safe to show the client as an OIP <c>{"error": ...}</c> body.</summary>
public sealed class InferenceException(InferenceError error, string message, Exception? inner = null)
    : Exception(message, inner)
{
    public InferenceError Error { get; } = error;

    /// <summary>Seconds a client should wait before retrying (429/503).</summary>
    public int? RetryAfterSeconds { get; init; }
}
