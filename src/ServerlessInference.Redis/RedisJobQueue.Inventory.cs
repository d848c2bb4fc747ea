using ServerlessInference.Jobs;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

public sealed partial class RedisJobQueue : IJobQueueInventory
{
    /// <summary>Entries read per round trip of <see cref="ListJobIdsAsync"/>.</summary>
    private const int InventoryPageSize = 500;

    /// <summary>KEYS: stream. ARGV: start (exclusive id, or '-'), count. Returns <c>{entry id, job id}</c> per entry, so
    /// the requests stay on the server.</summary>
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

    /// <summary>Every job id in the stream: it holds exactly the jobs not yet acknowledged, waiting or pending (settling
    /// deletes the entry). Read in pages from the head; an abandoned job is re-added at the tail, which a later page
    /// reaches, so a job that stays in the queue throughout is never missed.</summary>
    public async ValueTask<IReadOnlySet<string>> ListJobIdsAsync(CancellationToken cancellationToken)
    {
        var ids = new HashSet<string>(StringComparer.Ordinal);
        RedisValue start = "-";
        try
        {
            while (true)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var page = (RedisResult[])(await Database.ScriptEvaluateAsync(InventoryScript, [_stream], [start, InventoryPageSize]).ConfigureAwait(false))!;
                foreach (var entry in page)
                {
                    var pair = (RedisResult[])entry!;
                    ids.Add((string)pair[1]!);
                    start = "(" + (string)pair[0]!;
                }

                if (page.Length < InventoryPageSize)
                {
                    return ids;
                }
            }
        }
        catch (Exception ex) when (RedisUnavailable.IsOutage(ex))
        {
            throw _unavailable.Wrap(ex);
        }
    }
}
