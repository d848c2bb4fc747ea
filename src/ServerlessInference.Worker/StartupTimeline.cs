using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace ServerlessInference.Worker;

/// <summary>How long the worker process took to reach each step of its start, counted from the OS's start of the
/// process, for one log line when the worker loop starts (so a slow start says where its time went).</summary>
/// <remarks>The OS's start time has the clock tick's resolution (10 ms on Linux); the steps after it are
/// <see cref="Stopwatch"/> readings. Thread-safe.</remarks>
internal static class StartupTimeline
{
    private static readonly Lock s_lock = new();
    private static readonly List<(string Step, double Milliseconds)> s_steps = [];
    private static readonly long s_mainAt = Stopwatch.GetTimestamp();
    private static readonly double s_runtimeMs = RuntimeMilliseconds();

    /// <summary>Records that <paramref name="step"/> is done now.</summary>
    public static void Mark(string step)
    {
        var at = s_runtimeMs + Stopwatch.GetElapsedTime(s_mainAt).TotalMilliseconds;
        lock (s_lock)
        {
            s_steps.Add((step, at));
        }
    }

    /// <summary><c>runtime 85 ms, host-built 190 ms, ...</c>: each step at its time since the process started.</summary>
    public static string Describe()
    {
        var text = new StringBuilder().Append(CultureInfo.InvariantCulture, $"runtime {s_runtimeMs:F0} ms");
        lock (s_lock)
        {
            foreach (var (step, ms) in s_steps)
            {
                text.Append(CultureInfo.InvariantCulture, $", {step} {ms:F0} ms");
            }
        }

        return text.ToString();
    }

    private static double RuntimeMilliseconds()
    {
        try
        {
            using var process = Process.GetCurrentProcess();
            return Math.Max(0, (DateTime.Now - process.StartTime).TotalMilliseconds);
        }
        catch (InvalidOperationException)
        {
            return 0;
        }
    }
}
