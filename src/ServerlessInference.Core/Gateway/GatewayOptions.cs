namespace ServerlessInference.Gateway;

/// <summary>Settings of the HTTP gateway (section <c>Inference:Gateway</c>).</summary>
public sealed class GatewayOptions
{
    /// <summary>Largest request body accepted; larger bodies get 413 (default 16 MiB).</summary>
    public long MaxBodyBytes { get; set; } = 16L << 20;

    /// <summary>How long an infer call waits for its result before answering 202 (default 60 s; <c>Prefer: wait=N</c> overrides).</summary>
    public TimeSpan DefaultWait { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Upper bound on <c>Prefer: wait=N</c>.</summary>
    public TimeSpan MaxWait { get; set; } = TimeSpan.FromSeconds(300);

    /// <summary>A job not started this long after submission expires instead of running.</summary>
    public TimeSpan JobDeadline { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Retry-After seconds on 503 when a backing service is down.</summary>
    public int UnavailableRetryAfterSeconds { get; set; } = 5;
}
