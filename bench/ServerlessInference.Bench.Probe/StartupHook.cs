using System.Globalization;

/// <summary>Loaded by the runtime before <c>Main</c> when the process has <c>DOTNET_STARTUP_HOOKS</c> pointing here and
/// <c>SI_BENCH_PROBE_FILE</c> naming a file: every 100 ms it replaces that file with one line of cumulative counters
/// (see <see cref="Line"/>). Costs one timer tick per 100 ms.</summary>
#pragma warning disable CA1050 // The runtime looks for a type named StartupHook in no namespace.
internal static class StartupHook
#pragma warning restore CA1050
{
    private static Timer? s_timer;

    public static void Initialize()
    {
        var path = Environment.GetEnvironmentVariable("SI_BENCH_PROBE_FILE");
        if (string.IsNullOrEmpty(path))
        {
            return;
        }

        var temp = path + ".tmp";
        s_timer = new Timer(_ =>
        {
            try
            {
                File.WriteAllText(temp, Line());
                File.Move(temp, path, overwrite: true);
            }
            catch (IOException)
            {
                // Next tick.
            }
        }, null, TimeSpan.Zero, TimeSpan.FromMilliseconds(100));
    }

    /// <summary>allocated bytes, gen0, gen1, gen2 collections, GC pause ms, heap bytes after the last GC, thread-pool
    /// work items completed, thread-pool threads, lock contentions.</summary>
    private static string Line()
    {
        var info = GC.GetGCMemoryInfo(GCKind.Any);
        return string.Join(' ',
            GC.GetTotalAllocatedBytes(false).ToString(CultureInfo.InvariantCulture),
            GC.CollectionCount(0).ToString(CultureInfo.InvariantCulture),
            GC.CollectionCount(1).ToString(CultureInfo.InvariantCulture),
            GC.CollectionCount(2).ToString(CultureInfo.InvariantCulture),
            GC.GetTotalPauseDuration().TotalMilliseconds.ToString("R", CultureInfo.InvariantCulture),
            info.HeapSizeBytes.ToString(CultureInfo.InvariantCulture),
            ThreadPool.CompletedWorkItemCount.ToString(CultureInfo.InvariantCulture),
            ThreadPool.ThreadCount.ToString(CultureInfo.InvariantCulture),
            Monitor.LockContentionCount.ToString(CultureInfo.InvariantCulture));
    }
}
