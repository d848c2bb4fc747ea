using Microsoft.Extensions.Options;

namespace ServerlessInference.Security;

/// <summary>Where the gateway finds API keys: Redis when the results live there (<c>RedisApiKeyStore</c>), else
/// configuration (<see cref="ConfigurationApiKeyStore"/>). Only hashes are stored.</summary>
/// <remarks>Thread-safe. A backing service that is down throws <see cref="InferenceException"/> (Unavailable).</remarks>
public interface IApiKeyStore
{
    /// <summary>Whether the store can add and revoke keys (configuration cannot: edit the configuration).</summary>
    bool IsWritable { get; }

    /// <summary>The record of key <paramref name="id"/>, or null.</summary>
    ValueTask<ApiKey?> GetAsync(string id, CancellationToken cancellationToken);

    /// <summary>Whether any key exists; a host with none may run open (the loopback rule).</summary>
    ValueTask<bool> AnyAsync(CancellationToken cancellationToken);

    ValueTask<IReadOnlyList<ApiKey>> ListAsync(CancellationToken cancellationToken);

    /// <exception cref="NotSupportedException">The store is not writable.</exception>
    ValueTask AddAsync(ApiKey key, CancellationToken cancellationToken);

    /// <summary>Removes key <paramref name="id"/>; false when there was none.</summary>
    /// <exception cref="NotSupportedException">The store is not writable.</exception>
    ValueTask<bool> RevokeAsync(string id, CancellationToken cancellationToken);
}

/// <summary>Keys from <c>Inference:Auth:Keys</c>, read-only (they change with the configuration).</summary>
public sealed class ConfigurationApiKeyStore(IOptionsMonitor<AuthOptions> options) : IApiKeyStore
{
    public bool IsWritable => false;

    public ValueTask<ApiKey?> GetAsync(string id, CancellationToken cancellationToken) =>
        ValueTask.FromResult(options.CurrentValue.Keys.TryGetValue(id, out var key) ? ToRecord(id, key) : null);

    public ValueTask<bool> AnyAsync(CancellationToken cancellationToken) => ValueTask.FromResult(options.CurrentValue.Keys.Count > 0);

    public ValueTask<IReadOnlyList<ApiKey>> ListAsync(CancellationToken cancellationToken) =>
        ValueTask.FromResult<IReadOnlyList<ApiKey>>(options.CurrentValue.Keys.OrderBy(k => k.Key, StringComparer.Ordinal).Select(k => ToRecord(k.Key, k.Value)).ToList());

    public ValueTask AddAsync(ApiKey key, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"keys in configuration are added by adding {AuthOptions.Section}:Keys:{key.Id}:* to it");

    public ValueTask<bool> RevokeAsync(string id, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"keys in configuration are revoked by removing {AuthOptions.Section}:Keys:{id}:* from it");

    private static ApiKey ToRecord(string id, ApiKeyOptions key) => new()
    {
        Id = id,
        Tenant = key.Tenant ?? "",
        Sha256 = key.Sha256 ?? "",
        Admin = key.Admin,
        RequestsPerSecond = key.RequestsPerSecond,
        Burst = key.Burst,
        MaxConcurrentJobs = key.MaxConcurrentJobs,
    };
}
