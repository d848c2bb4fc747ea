using System.Runtime.CompilerServices;
using System.Text;
using ServerlessInference.Jobs;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

public sealed partial class RedisResultStore : IUnfinishedJobScan
{
    /// <summary>Records read per pipelined round of <see cref="ListUnfinishedAsync"/>.</summary>
    private const int ScanBatch = 256;

    private static readonly RedisValue[] s_scanFields = ["id", "model", "version", "status", "submitted", "started"];

    /// <summary>Walks the record keys with <c>SCAN</c> on every primary (no blocking <c>KEYS</c>) and reads each record's
    /// status fields (<c>HMGET</c>, pipelined; results stay on the server). A record that expires or ends meanwhile is
    /// skipped or reported as it was read.</summary>
    public async IAsyncEnumerable<JobRecord> ListUnfinishedAsync([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var database = _redis.GetDatabase();
        var pattern = GlobEscape(_keyPrefix) + "*";
        foreach (var server in _redis.GetServers())
        {
            if (server.IsReplica || !server.IsConnected)
            {
                continue;
            }

            var batch = new List<RedisKey>(ScanBatch);
            var keys = server.KeysAsync(database.Database, pattern, ScanBatch).WithCancellation(cancellationToken).ConfigureAwait(false);
            await using var scan = keys.GetAsyncEnumerator();
            while (true)
            {
                bool more;
                try
                {
                    more = await scan.MoveNextAsync();
                }
                catch (Exception ex) when (RedisUnavailable.IsOutage(ex))
                {
                    throw _unavailable.Wrap(ex);
                }

                if (more)
                {
                    batch.Add(scan.Current);
                }

                if (batch.Count == ScanBatch || (!more && batch.Count > 0))
                {
                    foreach (var record in await ReadUnfinishedAsync(database, batch).ConfigureAwait(false))
                    {
                        yield return record;
                    }

                    batch.Clear();
                }

                if (!more)
                {
                    break;
                }
            }
        }
    }

    private async Task<List<JobRecord>> ReadUnfinishedAsync(IDatabase database, List<RedisKey> keys)
    {
        var reads = keys.Select(k => database.HashGetAsync(k, s_scanFields)).ToArray();
        try
        {
            await Task.WhenAll(reads).ConfigureAwait(false);
        }
        catch (RedisServerException)
        {
            // A key of another kind under the prefix (WRONGTYPE): the other reads are fine.
        }
        catch (Exception ex) when (RedisUnavailable.IsOutage(ex))
        {
            throw _unavailable.Wrap(ex);
        }

        var records = new List<JobRecord>();
        foreach (var read in reads)
        {
            if (!read.IsCompletedSuccessfully)
            {
                continue;
            }

            var f = read.Result;
            if (f[0].IsNull || f[3].IsNull || f[4].IsNull || !f[3].TryParse(out int status))
            {
                continue;
            }

            if ((JobStatus)status is not (JobStatus.Queued or JobStatus.Running))
            {
                continue;
            }

            records.Add(new JobRecord
            {
                Id = f[0].ToString(),
                Model = f[1].ToString(),
                Version = f[2].ToString(),
                Status = (JobStatus)status,
                SubmittedAt = Instant(f[4])!.Value,
                StartedAt = Instant(f[5]),
            });
        }

        return records;
    }

    private static string GlobEscape(string text)
    {
        var escaped = new StringBuilder(text.Length + 4);
        foreach (var c in text)
        {
            if (c is '*' or '?' or '[' or ']' or '\\')
            {
                escaped.Append('\\');
            }

            escaped.Append(c);
        }

        return escaped.ToString();
    }
}
