using System.Text.Json;
using Microsoft.Extensions.Options;
using ServerlessInference.Webhooks;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

/// <summary>An <see cref="IWebhookOutbox"/> in Redis: entries in a hash (<c>{prefix}webhooks</c>, job id → delivery JSON),
/// due times in a sorted set (<c>{prefix}webhooks:due</c>, score = due Unix ms), counters beside them and the recent dead
/// letters in a capped list (<c>{prefix}webhooks:failed:recent</c>).</summary>
/// <remarks>A claim is one script that takes the due entries and moves their score to the claim's end, so two gateways
/// never claim the same entry while a claim runs; a claim whose gateway died lapses and the entry is due again.
/// Thread-safe.</remarks>
public sealed class RedisWebhookOutbox(IConnectionMultiplexer redis, IOptions<RedisOptions> options) : IWebhookOutbox
{
    /// <summary>KEYS: due, entries. ARGV: now ms, claim end ms, max. Returns the claimed entries' JSON.</summary>
    private const string ClaimScript = """
        local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[3]))
        local out = {}
        for _, id in ipairs(ids) do
          local entry = redis.call('HGET', KEYS[2], id)
          if entry then
            redis.call('ZADD', KEYS[1], 'XX', ARGV[2], id)
            out[#out + 1] = entry
          else
            redis.call('ZREM', KEYS[1], id)
          end
        end
        return out
        """;

    /// <summary>KEYS: due, entries. ARGV: id, json, due ms. Only while the entry exists (not settled meanwhile).</summary>
    private const string RescheduleScript = """
        if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
        redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
        redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
        return 1
        """;

    /// <summary>KEYS: due, entries, counter[, recent]. ARGV: id[, failure json, recent length]. Counts once.</summary>
    private const string SettleScript = """
        if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
        redis.call('ZREM', KEYS[1], ARGV[1])
        redis.call('INCR', KEYS[3])
        if KEYS[4] then
          redis.call('LPUSH', KEYS[4], ARGV[2])
          redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[3]) - 1)
        end
        return 1
        """;

    private readonly RedisKey _entries = options.Value.KeyPrefix + "webhooks";
    private readonly RedisKey _due = options.Value.KeyPrefix + "webhooks:due";
    private readonly RedisKey _delivered = options.Value.KeyPrefix + "webhooks:delivered";
    private readonly RedisKey _failed = options.Value.KeyPrefix + "webhooks:failed";
    private readonly RedisKey _recent = options.Value.KeyPrefix + "webhooks:failed:recent";
    private readonly RedisUnavailable _unavailable = new("the webhook outbox", options.Value.UnavailableRetryAfterSeconds);

    /// <summary>The sorted set of due times (for tests and operators).</summary>
    public string DueKey => _due.ToString();

    private IDatabase Database => redis.GetDatabase();

    public async ValueTask AddAsync(WebhookDelivery delivery, DateTimeOffset due, CancellationToken cancellationToken)
    {
        var json = JsonSerializer.Serialize(delivery, RedisJson.Default.WebhookDelivery);
        var transaction = Database.CreateTransaction();
        _ = transaction.HashSetAsync(_entries, delivery.JobId, json);
        _ = transaction.SortedSetAddAsync(_due, delivery.JobId, due.ToUnixTimeMilliseconds());
        await _unavailable.RunAsync(() => transaction.ExecuteAsync()).ConfigureAwait(false);
    }

    public async ValueTask<IReadOnlyList<WebhookDelivery>> ClaimDueAsync(DateTimeOffset now, TimeSpan claimFor, int max, CancellationToken cancellationToken)
    {
        var result = await _unavailable.RunAsync(() => Database.ScriptEvaluateAsync(ClaimScript, [_due, _entries],
            [now.ToUnixTimeMilliseconds(), (now + claimFor).ToUnixTimeMilliseconds(), max])).ConfigureAwait(false);
        var claimed = new List<WebhookDelivery>();
        foreach (var entry in (RedisResult[])result!)
        {
            if (JsonSerializer.Deserialize((byte[])entry!, RedisJson.Default.WebhookDelivery) is { } delivery)
            {
                claimed.Add(delivery);
            }
        }

        return claimed;
    }

    public async ValueTask RescheduleAsync(WebhookDelivery delivery, DateTimeOffset due, CancellationToken cancellationToken) =>
        await _unavailable.RunAsync(() => Database.ScriptEvaluateAsync(RescheduleScript, [_due, _entries],
            [delivery.JobId, JsonSerializer.Serialize(delivery, RedisJson.Default.WebhookDelivery), due.ToUnixTimeMilliseconds()])).ConfigureAwait(false);

    public async ValueTask DeliveredAsync(WebhookDelivery delivery, CancellationToken cancellationToken) =>
        await _unavailable.RunAsync(() => Database.ScriptEvaluateAsync(SettleScript, [_due, _entries, _delivered], [delivery.JobId])).ConfigureAwait(false);

    public async ValueTask FailedAsync(WebhookFailure failure, CancellationToken cancellationToken) =>
        await _unavailable.RunAsync(() => Database.ScriptEvaluateAsync(SettleScript, [_due, _entries, _failed, _recent],
            [failure.JobId, JsonSerializer.Serialize(failure, RedisJson.Default.WebhookFailure), InMemoryWebhookOutbox.RecentFailures])).ConfigureAwait(false);

    public async ValueTask<WebhookStats> GetStatsAsync(CancellationToken cancellationToken)
    {
        var batch = Database.CreateBatch();
        var pending = batch.HashLengthAsync(_entries);
        var delivered = batch.StringGetAsync(_delivered);
        var failed = batch.StringGetAsync(_failed);
        var recent = batch.ListRangeAsync(_recent, 0, InMemoryWebhookOutbox.RecentFailures - 1);
        batch.Execute();
        await _unavailable.RunAsync(() => Task.WhenAll(pending, delivered, failed, recent)).ConfigureAwait(false);
        var failures = new List<WebhookFailure>();
        foreach (var entry in recent.Result)
        {
            if (JsonSerializer.Deserialize((byte[])entry!, RedisJson.Default.WebhookFailure) is { } failure)
            {
                failures.Add(failure);
            }
        }

        return new WebhookStats(pending.Result, (long?)delivered.Result ?? 0, (long?)failed.Result ?? 0, failures);
    }
}
