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

        Signal(measured, SigCont);
        foreach (var pid in ServerProcess.LivePids())
        {
            if (pid != measured)
            {
                Signal(pid, SigStop);
            }
        }
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
            Signal(pid, SigCont);
        }
    }

    private static void Signal(int pid, int signal) => _ = Kill(pid, signal);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
