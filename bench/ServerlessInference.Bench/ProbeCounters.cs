using System.Globalization;

namespace ServerlessInference.Bench;

/// <summary>Cumulative counters of a server process, as written by the probe startup hook
/// (bench/ServerlessInference.Bench.Probe).</summary>
internal sealed record ProbeCounters(long AllocatedBytes, long Gen0, long Gen1, long Gen2, double PauseMs, long HeapBytes, long WorkItems, long ThreadCount, long LockContentions)
{
    public static ProbeCounters? Read(string? path)
    {
        if (path is null)
        {
            return null;
        }

        try
        {
            var f = File.ReadAllText(path).Trim().Split(' ');
            long L(int i) => long.Parse(f[i], CultureInfo.InvariantCulture);
            return new ProbeCounters(L(0), L(1), L(2), L(3), double.Parse(f[4], CultureInfo.InvariantCulture), L(5), L(6), L(7), L(8));
        }
        catch (Exception ex) when (ex is IOException or FormatException or IndexOutOfRangeException)
        {
            return null;
        }
    }

    public static ProbeCounters operator -(ProbeCounters a, ProbeCounters b) => new(
        a.AllocatedBytes - b.AllocatedBytes, a.Gen0 - b.Gen0, a.Gen1 - b.Gen1, a.Gen2 - b.Gen2, a.PauseMs - b.PauseMs,
        a.HeapBytes, a.WorkItems - b.WorkItems, a.ThreadCount, a.LockContentions - b.LockContentions);

    public static ProbeCounters operator +(ProbeCounters a, ProbeCounters b) => new(
        a.AllocatedBytes + b.AllocatedBytes, a.Gen0 + b.Gen0, a.Gen1 + b.Gen1, a.Gen2 + b.Gen2, a.PauseMs + b.PauseMs,
        Math.Max(a.HeapBytes, b.HeapBytes), a.WorkItems + b.WorkItems, Math.Max(a.ThreadCount, b.ThreadCount), a.LockContentions + b.LockContentions);

    public static ProbeCounters Zero { get; } = new(0, 0, 0, 0, 0, 0, 0, 0, 0);
}
