using System.Text;

namespace ServerlessInference.IntegrationTests;

/// <summary>Cuts the tail off a stopped redis-server's append-only file, as a crash under <c>appendfsync everysec</c>
/// can: Redis comes back with a prefix of what it acknowledged.</summary>
/// <remarks>Redis 7 keeps the file as parts under <c>appendonlydir</c>; commands after the last rewrite are RESP arrays in
/// the newest <c>*.incr.aof</c>. Effects of a Lua script are written as <c>MULTI</c> ... <c>EXEC</c>; a cut is made
/// before the <c>MULTI</c>, so no transaction is left half.</remarks>
internal static class AppendOnlyFileTail
{
    /// <summary>Cuts the file just before the last first-time <c>XADD</c> to <paramref name="stream"/> whose job id is one of
    /// <paramref name="jobIds"/>: that job keeps its record (written earlier) and loses its queue entry. Returns the job
    /// id, or null when no such entry is in the file.</summary>
    public static string? CutBeforeLastEnqueue(string dataDirectory, string stream, IReadOnlySet<string> jobIds)
    {
        var file = Directory.EnumerateFiles(Path.Combine(dataDirectory, "appendonlydir"), "*.incr.aof")
            .OrderBy(f => int.Parse(Path.GetFileName(f).Split('.')[^3], System.Globalization.CultureInfo.InvariantCulture))
            .Last();
        var bytes = File.ReadAllBytes(file);
        var commands = Parse(bytes);
        for (var i = commands.Count - 1; i >= 0; i--)
        {
            var (offset, args) = commands[i];
            if (args.Count < 5 || !args[0].Equals("XADD", StringComparison.OrdinalIgnoreCase) || args[1] != stream)
            {
                continue;
            }

            var jobId = JobId(args);
            if (jobId is null || !jobIds.Contains(jobId))
            {
                continue;
            }

            // The enqueue script writes other effects before its XADD (the partition's index entry, maybe its group):
            // cut before the MULTI that opens its transaction.
            var cut = offset;
            for (var j = i - 1; j >= 0 && !commands[j].Args[0].Equals("EXEC", StringComparison.OrdinalIgnoreCase); j--)
            {
                if (commands[j].Args[0].Equals("MULTI", StringComparison.OrdinalIgnoreCase))
                {
                    cut = commands[j].Offset;
                    break;
                }
            }

            using (var stream1 = new FileStream(file, FileMode.Open, FileAccess.Write))
            {
                stream1.SetLength(cut);
            }

            return jobId;
        }

        return null;
    }

    /// <summary>The job id of a first enqueue; null for an abandoned job's re-add (it carries its delivery count
    /// <c>n</c>), whose cut would bring back the entry it replaced.</summary>
    private static string? JobId(List<string> xadd)
    {
        // XADD key id field value ...
        string? jobId = null;
        for (var f = 3; f + 1 < xadd.Count; f += 2)
        {
            switch (xadd[f])
            {
                case "id": jobId = xadd[f + 1]; break;
                case "n": return null;
            }
        }

        return jobId;
    }

    /// <summary>The commands of a RESP command stream with the offset each starts at; a torn last command is left out.</summary>
    private static List<(long Offset, List<string> Args)> Parse(byte[] bytes)
    {
        var commands = new List<(long, List<string>)>();
        var at = 0;
        while (at < bytes.Length)
        {
            var start = at;
            if (bytes[at] != (byte)'*' || !TryLine(bytes, ref at, out var count))
            {
                break;
            }

            var args = new List<string>(count);
            for (var a = 0; a < count; a++)
            {
                if (at >= bytes.Length || bytes[at] != (byte)'$' || !TryLine(bytes, ref at, out var length) || at + length + 2 > bytes.Length)
                {
                    return commands;
                }

                // Binary values (requests) decode to junk text; only names, keys and ids are compared.
                args.Add(Encoding.Latin1.GetString(bytes, at, length));
                at += length + 2;
            }

            commands.Add((start, args));
        }

        return commands;
    }

    /// <summary>Reads the number after a <c>*</c> or <c>$</c> up to CRLF.</summary>
    private static bool TryLine(byte[] bytes, ref int at, out int number)
    {
        number = 0;
        var i = at + 1;
        while (i < bytes.Length && bytes[i] != (byte)'\r')
        {
            number = (number * 10) + (bytes[i] - '0');
            i++;
        }

        if (i + 1 >= bytes.Length)
        {
            return false;
        }

        at = i + 2;
        return true;
    }
}
