using ServerlessInference.Jobs;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

// The byte budget (Inference:Queue:MaxQueuedBytes): a counter beside the partitions ({prefix}{queue}:bytes, the same
// slot) holds the bytes of the requests queued or in flight. The enqueue script adds a request's bytes with its entry and
// the settle scripts that take a job off the queue (complete, dead-letter) give them back, so the budget is exact and
// costs no round trip of its own. The counter is deleted when it reaches zero or the last partition goes, so an empty
// queue leaves no key behind.
public sealed partial class RedisJobQueue
{
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

    /// <summary>Runs a settle script that takes the job off the queue (its last argument: the request's bytes, which the
    /// script gives back to the budget if it took the job).</summary>
    private async ValueTask SettleLeavingAsync(string script, RedisKey[] keys, RedisValue[] args)
    {
        try
        {
            await Database.ScriptEvaluateAsync(script, keys, args).ConfigureAwait(false);
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
