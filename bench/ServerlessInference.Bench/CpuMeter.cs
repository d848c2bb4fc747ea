using System.Diagnostics;
using System.Globalization;

namespace ServerlessInference.Bench;

/// <summary>How much CPU other programs took while a scenario ran: the machine's busy time (<c>/proc/stat</c>) minus
/// this process's and the measured server's (<c>/proc/PID/stat</c>), in cores. Other builds on the machine inflate
/// every figure, so each scenario reports it. Linux only; elsewhere it reads nothing.</summary>
internal sealed class CpuMeter
{
    private static readonly double s_ticksPerSecond = 100; // USER_HZ on Linux
    private readonly int[] _pids;
    private readonly int[] _siblings;
    private readonly long _siblingStart;
    private long _siblingLast;
    private readonly long _startedAt = Stopwatch.GetTimestamp();
    private readonly long _machine;
    private readonly long _ours;
    private long _lastMachine;
    private long _lastOurs;
    private long _lastAt;
    private readonly long[] _processes;
    private long[] _lastProcesses;

    /// <param name="pids">The measured processes (besides this one).</param>
    /// <param name="siblings">Other children of the bench (idle servers), reported apart from other programs.</param>
    public CpuMeter(int[] pids, int[] siblings)
    {
        _pids = [Environment.ProcessId, .. pids];
        _siblings = [.. siblings.Except(_pids)];
        _siblingStart = _siblingLast = Sum(_siblings);
        _machine = _lastMachine = MachineBusy();
        _ours = _lastOurs = Ours();
        _lastAt = _startedAt;
        _processes = _lastProcesses = [.. _pids.Select(ProcessTicks)];
    }

    /// <summary>Takes a reading; call it while the measured processes are still alive.</summary>
    public void Sample()
    {
        var machine = MachineBusy();
        var ours = Ours();
        var siblings = Sum(_siblings);
        var processes = _pids.Select(ProcessTicks).ToArray();
        if (machine >= 0 && ours >= 0)
        {
            // A child that has just exited reads as missing: keep the previous reading.
            _lastMachine = machine;
            _lastOurs = ours;
            _lastAt = Stopwatch.GetTimestamp();
            _lastProcesses = processes;
            _siblingLast = siblings >= 0 ? siblings : _siblingLast;
        }
    }

    /// <summary>CPU seconds used by the process at <paramref name="index"/> of the constructor's list (0 is this
    /// process) between construction and the last <see cref="Sample"/>; null if unknown.</summary>
    public double? ProcessSeconds(int index)
    {
        var start = _processes[index + 1];
        var last = _lastProcesses[index + 1];
        return start < 0 || last < 0 ? null : (last - start) / s_ticksPerSecond;
    }

    /// <summary>CPU seconds used by this process between construction and the last <see cref="Sample"/>.</summary>
    public double? OwnSeconds
    {
        get
        {
            var start = _processes[0];
            var last = _lastProcesses[0];
            return start < 0 || last < 0 ? null : (last - start) / s_ticksPerSecond;
        }
    }

    /// <summary>Cores used by other programs between construction and the last <see cref="Sample"/>; null if unknown.</summary>
    public double? OtherCores
    {
        get
        {
            var seconds = (double)(_lastAt - _startedAt) / Stopwatch.Frequency;
            if (_machine < 0 || _lastMachine < 0 || _ours < 0 || _lastOurs < 0 || seconds <= 0)
            {
                return null;
            }

            var other = ((_lastMachine - _machine) - (_lastOurs - _ours) - (_siblingLast - _siblingStart)) / s_ticksPerSecond / seconds;
            return Math.Max(0, other);
        }
    }

    /// <summary>Cores the bench's other (idle) children used meanwhile.</summary>
    public double? SiblingCores
    {
        get
        {
            var seconds = (double)(_lastAt - _startedAt) / Stopwatch.Frequency;
            return _siblingStart < 0 || _siblingLast < 0 || seconds <= 0 ? null : (_siblingLast - _siblingStart) / s_ticksPerSecond / seconds;
        }
    }

    /// <summary>Busy cores of the whole machine over <paramref name="window"/> (a load check before measuring).</summary>
    public static async Task<double?> MachineBusyCoresAsync(TimeSpan window)
    {
        var before = MachineBusy();
        await Task.Delay(window).ConfigureAwait(false);
        var after = MachineBusy();
        return before < 0 || after < 0 ? null : (after - before) / s_ticksPerSecond / window.TotalSeconds;
    }

    /// <summary>VmRSS of a process in bytes (0 when unknown).</summary>
    public static long ResidentBytes(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
        }

        return 0;
    }

    private long Ours() => Sum(_pids);

    private static long Sum(int[] pids)
    {
        long sum = 0;
        foreach (var pid in pids)
        {
            var ticks = ProcessTicks(pid);
            if (ticks < 0)
            {
                return -1;
            }

            sum += ticks;
        }

        return sum;
    }

    private static long MachineBusy()
    {
        try
        {
            using var reader = new StreamReader("/proc/stat");
            var fields = reader.ReadLine()!.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // cpu user nice system idle iowait irq softirq steal ...
            long total = 0;
            for (var i = 1; i < Math.Min(fields.Length, 9); i++)
            {
                total += long.Parse(fields[i], CultureInfo.InvariantCulture);
            }

            return total - long.Parse(fields[4], CultureInfo.InvariantCulture) - long.Parse(fields[5], CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return -1;
        }
    }

    private static long ProcessTicks(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            // After "pid (comm) ": state is field 3, utime 14, stime 15.
            return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return -1;
        }
    }
}
