using ServerlessInference.Jobs;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

// The byte budget (Inference:Queue:MaxQueuedBytes), kept apart from the queue's own scripts: a counter beside the
// partitions ({prefix}{queue}:bytes, the same slot) holds the bytes of the requests queued or in flight. An enqueue reserves
// its request's bytes before its entry is added and gives them back if the entry is not added; completing or
// dead-lettering a job gives them back once the settle script took it. Every change is one atomic script, so the
// budget is never overrun; a gateway that dies between its reservation and its entry leaves the counter too high
// until the queue is next empty (no partition left), when the reservation resets it.
public sealed partial class RedisJobQueue
{
    /// <summary>KEYS: partition index, counter. ARGV: bytes, max. Returns 0 when the bytes do not fit.</summary>
    private const string ReserveBytesScript = """
        if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SET', KEYS[2], 0) end
        local total = redis.call('INCRBY', KEYS[2], ARGV[1])
        if total > tonumber(ARGV[2]) then
          redis.call('DECRBY', KEYS[2], ARGV[1])
          return 0
        end
        return 1
        """;

    /// <summary>KEYS: counter. ARGV: bytes. Never below zero (after a reset the counter may owe less than is given back).</summary>
    private const string ReleaseBytesScript = """
        local v = redis.call('DECRBY', KEYS[1], ARGV[1])
        if v < 0 then redis.call('SET', KEYS[1], 0) end
        return 1
        """;

    /// <summary>The byte counter's key (for tests and operators).</summary>
    public string BytesKey => BytesCounterKey.ToString();

    private RedisKey BytesCounterKey => (RedisKey)(_base + ":bytes");

    /// <summary>Refuses a request larger than the whole budget (413).</summary>
    private void CheckFitsAtAll(long bytes)
    {
        if (bytes > _options.MaxQueuedBytes)
        {
            throw new InferenceException(InferenceError.PayloadTooLarge,
                $"the job is {bytes} bytes, more than the whole queue may hold ({JobQueueOptions.Section}:MaxQueuedBytes = {_options.MaxQueuedBytes})");
        }
    }

    /// <summary>Reserves <paramref name="bytes"/> of the budget, or throws QueueFull (429).</summary>
    private async ValueTask ReserveBytesAsync(long bytes)
    {
        var reserved = await Database.ScriptEvaluateAsync(ReserveBytesScript, [_parts, BytesCounterKey], [bytes, _options.MaxQueuedBytes]).ConfigureAwait(false);
        if ((long)reserved == 0)
        {
            throw new InferenceException(InferenceError.QueueFull, $"the job queue is full ({_options.MaxQueuedBytes} bytes of requests)")
            {
                RetryAfterSeconds = _options.RetryAfterSeconds,
            };
        }
    }

    private async ValueTask ReleaseBytesAsync(long bytes)
    {
        if (bytes > 0)
        {
            await Database.ScriptEvaluateAsync(ReleaseBytesScript, [BytesCounterKey], [bytes]).ConfigureAwait(false);
        }
    }

    /// <summary>Best effort after a failed enqueue: the counter heals when the stream next empties anyway.</summary>
    private async ValueTask TryReleaseBytesAsync(long bytes)
    {
        try
        {
            await ReleaseBytesAsync(bytes).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisUnavailable.IsOutage(ex))
        {
            Log.ReleaseFailed(_logger, ex);
        }
    }

    /// <summary>Runs a settle script that takes the job off the queue and, if it did, gives its bytes back.</summary>
    private async ValueTask SettleLeavingAsync(string script, RedisKey[] keys, RedisValue[] args, long bytes)
    {
        try
        {
            var result = await Database.ScriptEvaluateAsync(script, keys, args).ConfigureAwait(false);
            if ((long)result == 1)
            {
                await ReleaseBytesAsync(bytes).ConfigureAwait(false);
            }
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOGROUP", StringComparison.Ordinal))
        {
            // The stream was lost with its group (a Redis without persistence restarted): the lease is gone too.
        }
        catch (Exception ex) when (RedisUnavailable.IsOutage(ex))
        {
            throw _unavailable.Wrap(ex);
        }
    }
}
