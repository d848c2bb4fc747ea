using System.Diagnostics;
using System.Reflection;

namespace ServerlessInference.Deploy.Tests;

/// <summary>The Bicep CLI that restore downloaded (NuGet package <c>Azure.Bicep.CommandLine.linux-x64</c>).</summary>
public static class BicepCli
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(5);

    /// <summary>Path of the <c>bicep</c> binary, recorded at build time from the NuGet package folder.</summary>
    public static string Path { get; } = typeof(BicepCli).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
        .Single(a => a.Key == "BicepCliPath").Value
        ?? throw new InvalidOperationException("the test assembly does not record BicepCliPath");

    /// <summary>Runs <c>bicep</c> with <paramref name="arguments"/> in <paramref name="workingDirectory"/>.</summary>
    public static async Task<BicepRun> RunAsync(string workingDirectory, params string[] arguments)
    {
        EnsureExecutable();
        var start = new ProcessStartInfo(Path)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {Path}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(s_timeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"bicep {string.Join(' ', arguments)} ran longer than {s_timeout}");
        }

        return new BicepRun(string.Join(' ', arguments), process.ExitCode, await stdout, await stderr);
    }

    // NuGet extracts the binary without its execute bit.
    private static void EnsureExecutable()
    {
        if (!OperatingSystem.IsLinux() || System.Runtime.InteropServices.RuntimeInformation.OSArchitecture != System.Runtime.InteropServices.Architecture.X64)
        {
            throw new PlatformNotSupportedException("the deploy tests use the linux-x64 Bicep CLI package");
        }

        if (!File.Exists(Path))
        {
            throw new FileNotFoundException($"the Bicep CLI is not at {Path}; restore the test project (PackageDownload Azure.Bicep.CommandLine.linux-x64)", Path);
        }

        var mode = File.GetUnixFileMode(Path);
        if ((mode & UnixFileMode.UserExecute) == 0)
        {
            File.SetUnixFileMode(Path, mode | UnixFileMode.UserExecute);
        }
    }
}

/// <summary>What one <c>bicep</c> command printed and returned.</summary>
public sealed record BicepRun(string Command, int ExitCode, string StandardOutput, string StandardError)
{
    public override string ToString() => $"bicep {Command} exited {ExitCode}\n{StandardError}";
}
