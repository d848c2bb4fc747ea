using System.Text.Json;
using Microsoft.Extensions.Options;
using ServerlessInference.Security;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

/// <summary>API keys in Redis: one hash (<c>{prefix}auth:keys</c>), field = key id, value = the key's record as JSON
/// (tenant, SHA-256 of the key, admin, limits). Shared by every gateway instance; a revoke takes effect at the next
/// request. The key itself is never stored.</summary>
/// <remarks>Thread-safe. An outage throws <see cref="InferenceException"/> (Unavailable, 503).</remarks>
public sealed class RedisApiKeyStore(IConnectionMultiplexer redis, IOptions<RedisOptions> options) : IApiKeyStore
{
    private readonly RedisKey _key = options.Value.KeyPrefix + "auth:keys";
    private readonly RedisUnavailable _unavailable = new("the API key store", options.Value.UnavailableRetryAfterSeconds);

    public bool IsWritable => true;

    public async ValueTask<ApiKey?> GetAsync(string id, CancellationToken cancellationToken)
    {
        var value = await _unavailable.RunAsync(() => redis.GetDatabase().HashGetAsync(_key, id)).ConfigureAwait(false);
        return value.IsNullOrEmpty ? null : Parse(value);
    }

    public async ValueTask<bool> AnyAsync(CancellationToken cancellationToken) =>
        await _unavailable.RunAsync(() => redis.GetDatabase().HashLengthAsync(_key)).ConfigureAwait(false) > 0;

    public async ValueTask<IReadOnlyList<ApiKey>> ListAsync(CancellationToken cancellationToken)
    {
        var entries = await _unavailable.RunAsync(() => redis.GetDatabase().HashGetAllAsync(_key)).ConfigureAwait(false);
        return entries.Select(e => Parse(e.Value)).OrderBy(k => k.Tenant, StringComparer.Ordinal).ThenBy(k => k.Id, StringComparer.Ordinal).ToList();
    }

    public async ValueTask AddAsync(ApiKey key, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(key);
        var json = JsonSerializer.Serialize(key, RedisJson.Default.ApiKey);
        if (!await _unavailable.RunAsync(() => redis.GetDatabase().HashSetAsync(_key, key.Id, json, When.NotExists)).ConfigureAwait(false))
        {
            throw new InvalidOperationException($"a key with id {key.Id} exists already");
        }
    }

    public async ValueTask<bool> RevokeAsync(string id, CancellationToken cancellationToken) =>
        await _unavailable.RunAsync(() => redis.GetDatabase().HashDeleteAsync(_key, id)).ConfigureAwait(false);

    private static ApiKey Parse(RedisValue value) =>
        JsonSerializer.Deserialize((string)value!, RedisJson.Default.ApiKey) ?? throw new FormatException("an API key record is empty");
}
