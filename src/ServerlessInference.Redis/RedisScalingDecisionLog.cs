using System.Collections.Immutable;
using System.Text.Json;
using Microsoft.Extensions.Options;
using ServerlessInference.Scaling;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

/// <summary>An <see cref="IScalingDecisionLog"/> on a capped Redis stream (<c>{prefix}scaling</c>,
/// <c>XADD MAXLEN ~ </c><see cref="RedisOptions.ScalingLogLength"/>), shared by every gateway's <c>/status</c>.</summary>
/// <remarks>Like the in-process ring, a steady decision that repeats the last one replaces it, so a quiet hour does
/// not push the changes out. The scaler's state sits beside the stream (<c>{prefix}scaling:state</c>, one JSON
/// value), so every scaler instance that shares this Redis decides from the same windows. Thread-safe.</remarks>
public sealed class RedisScalingDecisionLog(IConnectionMultiplexer redis, IOptions<RedisOptions> options) : IScalingDecisionLog
{
    /// <summary>KEYS: stream. ARGV: json, max length, steady (1 when desired = current), current, desired.</summary>
    private const string AppendScript = """
        if ARGV[3] == '1' then
          local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
          if last then
            local f = {}
            for i = 1, #last[2], 2 do f[last[2][i]] = last[2][i + 1] end
            if f['current'] == ARGV[4] and f['desired'] == ARGV[5] then redis.call('XDEL', KEYS[1], last[1]) end
          end
        end
        redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'current', ARGV[4], 'desired', ARGV[5], 'decision', ARGV[1])
        return 1
        """;

    private readonly RedisKey _stream = options.Value.KeyPrefix + "scaling";
    private readonly RedisKey _state = options.Value.KeyPrefix + "scaling:state";
    private readonly RedisUnavailable _unavailable = new("the scaling log", options.Value.UnavailableRetryAfterSeconds);

    /// <summary>The stream key.</summary>
    public string StreamKey => _stream.ToString();

    public async ValueTask AppendAsync(ScalingDecision decision, CancellationToken cancellationToken)
    {
        // The same rule as InMemoryScalingDecisionLog.IsSteadyRepeat, checked against the stream's last entry.
        var steady = decision.DesiredReplicas == decision.CurrentReplicas;
        var json = JsonSerializer.Serialize(decision, RedisJson.Default.ScalingDecision);
        await _unavailable.RunAsync(() => redis.GetDatabase().ScriptEvaluateAsync(AppendScript, [_stream],
            [json, options.Value.ScalingLogLength, steady ? 1 : 0, decision.CurrentReplicas, decision.DesiredReplicas])).ConfigureAwait(false);
    }

    public async ValueTask<IReadOnlyList<ScalingDecision>> ReadRecentAsync(int count, CancellationToken cancellationToken)
    {
        if (count <= 0)
        {
            return [];
        }

        var entries = await _unavailable.RunAsync(() => redis.GetDatabase().StreamRangeAsync(_stream, "-", "+", count, Order.Descending)).ConfigureAwait(false);

        var decisions = new List<ScalingDecision>(entries.Length);
        foreach (var entry in entries)
        {
            if (JsonSerializer.Deserialize((byte[])entry["decision"]!, RedisJson.Default.ScalingDecision) is { } decision)
            {
                decisions.Add(decision);
            }
        }

        return decisions;
    }

    public async ValueTask<ScalingState?> ReadStateAsync(CancellationToken cancellationToken)
    {
        var json = await _unavailable.RunAsync(() => redis.GetDatabase().StringGetAsync(_state)).ConfigureAwait(false);
        if (json.IsNullOrEmpty || JsonSerializer.Deserialize((byte[])json!, RedisJson.Default.StoredScalingState) is not { } stored)
        {
            return null;
        }

        return new ScalingState(
            ImmutableQueue.CreateRange(stored.Recommendations.Select(r => (r.At, r.Replicas))), stored.LastBusyAt, stored.LowerSince);
    }

    public async ValueTask WriteStateAsync(ScalingState state, CancellationToken cancellationToken)
    {
        var stored = new StoredScalingState(state.Recommendations.Select(r => new StoredRecommendation(r.At, r.Replicas)).ToList(), state.LastBusyAt, state.LowerSince);
        var json = JsonSerializer.SerializeToUtf8Bytes(stored, RedisJson.Default.StoredScalingState);
        await _unavailable.RunAsync(() => redis.GetDatabase().StringSetAsync(_state, json)).ConfigureAwait(false);
    }
}

/// <summary><see cref="ScalingState"/> as stored in Redis.</summary>
internal sealed record StoredScalingState(IReadOnlyList<StoredRecommendation> Recommendations, DateTimeOffset? LastBusyAt, DateTimeOffset? LowerSince);

internal sealed record StoredRecommendation(DateTimeOffset At, int Replicas);
