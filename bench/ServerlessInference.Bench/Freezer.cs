using System.Runtime.InteropServices;

namespace ServerlessInference.Bench;

/// <summary>Stops (SIGSTOP) the bench's children that are not being measured and continues (SIGCONT) the one that
/// is, so an idle server's background work (timers, lease-expiry wake-ups, tiered JIT) never runs beside another
/// scenario's measurement. Linux only; elsewhere it does nothing.</summary>
internal static partial class Freezer
{
    private const int SigCont = 18;
    private const int SigStop = 19;

    public static bool Enabled { get; set; } = OperatingSystem.IsLinux();

    /// <summary>Continues <paramref name="measured"/> and stops every other live child.</summary>
    public static void Isolate(int measured)
    {
        if (!Enabled)
        {
            return;
        }

        // A services-profile DevHost's workers are its child processes: they stop and continue with it.
        foreach (var pid in Tree(measured))
        {
            Signal(pid, SigCont);
        }

        foreach (var pid in ServerProcess.LivePids())
        {
            if (pid != measured)
            {
                foreach (var member in Tree(pid))
                {
                    Signal(member, SigStop);
                }
            }
        }
    }

    /// <summary>Stops every live child and its descendants (for in-process measurements on a quiet machine).</summary>
    public static void StopAll()
    {
        if (!Enabled)
        {
            return;
        }

        foreach (var pid in ServerProcess.LivePids())
        {
            foreach (var member in Tree(pid))
            {
                Signal(member, SigStop);
            }
        }
    }

    /// <summary><paramref name="root"/> and its descendants (from the parent pid in /proc/*/stat), parents first.</summary>
    public static int[] Tree(int root)
    {
        var children = new Dictionary<int, List<int>>();
        if (OperatingSystem.IsLinux())
        {
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out var pid))
                {
                    continue;
                }

                try
                {
                    var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                    // "pid (comm) state ppid ...": comm may hold spaces, so parse after the last ')'.
                    var ppid = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
                    if (!children.TryGetValue(ppid, out var list))
                    {
                        children[ppid] = list = [];
                    }

                    list.Add(pid);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
                {
                    // Gone meanwhile.
                }
            }
        }

        var tree = new List<int> { root };
        for (var i = 0; i < tree.Count; i++)
        {
            if (children.TryGetValue(tree[i], out var list))
            {
                tree.AddRange(list);
            }
        }

        return [.. tree];
    }

    /// <summary>Continues every live child (before reports and shutdown).</summary>
    public static void ThawAll()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        foreach (var pid in ServerProcess.LivePids())
        {
            foreach (var member in Tree(pid))
            {
                Signal(member, SigCont);
            }
        }
    }

    private static void Signal(int pid, int signal) => _ = Kill(pid, signal);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
