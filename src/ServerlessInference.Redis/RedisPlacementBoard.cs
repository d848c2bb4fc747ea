using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using ServerlessInference.Scaling;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

/// <summary>An <see cref="IPlacementBoard"/> on one Redis key beside the scaling log (<c>{prefix}scaling:placement</c>,
/// a JSON value that expires with the plan), read by every worker that shares this Redis.</summary>
/// <remarks>Thread-safe. A publish replaces the plan; the key's expiry removes a plan that no scaler renews.</remarks>
public sealed class RedisPlacementBoard(IConnectionMultiplexer redis, IOptions<RedisOptions> options) : IPlacementBoard
{
    private readonly RedisKey _key = options.Value.KeyPrefix + "scaling:placement";
    private readonly RedisUnavailable _unavailable = new("the placement board", options.Value.UnavailableRetryAfterSeconds);

    /// <summary>The key.</summary>
    public string Key => _key.ToString();

    public async ValueTask PublishAsync(PlacementPlan plan, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(plan);
        cancellationToken.ThrowIfCancellationRequested();
        var json = JsonSerializer.SerializeToUtf8Bytes(plan, PlacementJson.Default.PlacementPlan);
        var lifetime = plan.ExpiresAt - plan.At;
        var expiry = lifetime > TimeSpan.Zero ? lifetime : TimeSpan.FromMilliseconds(1);
        await _unavailable.RunAsync(() => redis.GetDatabase().StringSetAsync(_key, json, expiry)).ConfigureAwait(false);
    }

    public async ValueTask<PlacementPlan?> ReadAsync(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var json = await _unavailable.RunAsync(() => redis.GetDatabase().StringGetAsync(_key)).ConfigureAwait(false);
        return json.IsNullOrEmpty ? null : JsonSerializer.Deserialize((byte[])json!, PlacementJson.Default.PlacementPlan);
    }
}

/// <summary>Source-generated JSON of the placement plan.</summary>
[JsonSerializable(typeof(PlacementPlan))]
internal sealed partial class PlacementJson : JsonSerializerContext;
