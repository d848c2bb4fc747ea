using ServerlessInference.Jobs;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

public sealed partial class RedisJobQueue : IJobQueueInventory
{
    /// <summary>Entries read per round trip of <see cref="ListJobIdsAsync"/>.</summary>
    private const int InventoryPageSize = 500;

    /// <summary>KEYS: partition stream. ARGV: start (exclusive id, or '-'), count. Returns <c>{entry id, job id}</c> per
    /// entry, so the requests stay on the server.</summary>
    private const string InventoryScript = """
        local r = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
        local out = {}
        for _, e in ipairs(r) do
          local f, id = e[2], ''
          for i = 1, #f, 2 do
            if f[i] == 'id' then id = f[i + 1] break end
          end
          out[#out + 1] = {e[1], id}
        end
        return out
        """;

    /// <summary>KEYS: index. ARGV: base, then pairs of affinity key and the last entry id already listed. Returns the job
    /// ids of every entry added since: past the listed id of a known partition, all of a partition not listed yet.</summary>
    private const string InventoryTailsScript = """
        local seen = {}
        for i = 2, #ARGV, 2 do seen[ARGV[i]] = ARGV[i + 1] end
        local out = {}
        for _, k in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
          local start = seen[k] and ('(' .. seen[k]) or '-'
          for _, e in ipairs(redis.call('XRANGE', ARGV[1] .. ':q:' .. k, start, '+')) do
            local f = e[2]
            for i = 1, #f, 2 do
              if f[i] == 'id' then
                out[#out + 1] = f[i + 1]
                break
              end
            end
          end
        end
        return out
        """;

    /// <summary>The affinity keys of the live partitions (for tests and operators).</summary>
    public async ValueTask<IReadOnlyList<string>> ListPartitionsAsync(CancellationToken cancellationToken)
    {
        var keys = await _unavailable.RunAsync(() => Database.SortedSetRangeByRankAsync(_parts)).ConfigureAwait(false);
        return [.. keys.Select(k => (string)k!)];
    }

    /// <summary>Every job id in the partitions: they hold exactly the jobs not yet acknowledged, waiting or pending
    /// (settling deletes the entry). Each partition is read in pages from its head; then one script reads, atomically,
    /// every entry added since each partition's last page (and the partitions created meanwhile). An abandoned or
    /// reclaimed job is re-added at its partition's tail, so a job that stays in the queue throughout is never missed.</summary>
    public async ValueTask<IReadOnlySet<string>> ListJobIdsAsync(CancellationToken cancellationToken)
    {
        var ids = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            var tails = new List<RedisValue> { _base };
            foreach (var key in await Database.SortedSetRangeByRankAsync(_parts).ConfigureAwait(false))
            {
                var stream = PartitionStream((string)key!);
                RedisValue start = "-";
                RedisValue last = "0-0";
                while (true)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var page = (RedisResult[])(await Database.ScriptEvaluateAsync(InventoryScript, [stream], [start, InventoryPageSize]).ConfigureAwait(false))!;
                    foreach (var entry in page)
                    {
                        var pair = (RedisResult[])entry!;
                        ids.Add((string)pair[1]!);
                        last = (string)pair[0]!;
                        start = "(" + last;
                    }

                    if (page.Length < InventoryPageSize)
                    {
                        break;
                    }
                }

                tails.Add(key);
                tails.Add(last);
            }

            var added = (RedisResult[])(await Database.ScriptEvaluateAsync(InventoryTailsScript, [_parts], [.. tails]).ConfigureAwait(false))!;
            foreach (var id in added)
            {
                ids.Add((string)id!);
            }

            return ids;
        }
        catch (Exception ex) when (RedisUnavailable.IsOutage(ex))
        {
            throw _unavailable.Wrap(ex);
        }
    }
}
