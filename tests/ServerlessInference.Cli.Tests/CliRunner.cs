using System.Diagnostics;
using System.Text.Json;

namespace ServerlessInference.Cli.Tests;

/// <summary>What one <c>si</c> invocation wrote and returned.</summary>
public sealed record CliRun(int ExitCode, string Stdout, string Stderr)
{
    public JsonElement Json()
    {
        using var doc = JsonDocument.Parse(Stdout);
        return doc.RootElement.Clone();
    }

    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}";
}

/// <summary>Runs <c>si</c> in this process (output not a terminal, an empty environment), or as its own process.</summary>
public static class CliRunner
{
    public static Task<CliRun> RunAsync(params string[] args) => RunAsync(args, null);

    /// <param name="environment">The only environment variables si sees.</param>
    /// <param name="errorIsTerminal">Treat stderr as a terminal (progress bars drawn there).</param>
    public static async Task<CliRun> RunAsync(string[] args, IReadOnlyDictionary<string, string>? environment, bool errorIsTerminal = false)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var console = new CliConsole(stdout, stderr, outputIsTerminal: false, errorIsTerminal, environment: name => environment?.GetValueOrDefault(name));
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var code = await SiApp.RunAsync(args, console, timeout.Token);
        return new CliRun(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Runs the built <c>si</c> as a child process with stdout and stderr redirected (not terminals), as a
    /// script would; killed if it outlives <paramref name="timeout"/>.</summary>
    public static async Task<CliRun> RunProcessAsync(string executable, IReadOnlyList<string> args, TimeSpan timeout, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(executable.EndsWith(".dll", StringComparison.Ordinal) ? "dotnet" : executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (executable.EndsWith(".dll", StringComparison.Ordinal))
        {
            start.ArgumentList.Add(executable);
        }

        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment.Remove("SI_URL");
        start.Environment.Remove("SI_API_KEY");
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        using var process = Process.Start(start)!;
        try
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var cancel = new CancellationTokenSource(timeout);
            await process.WaitForExitAsync(cancel.Token);
            return new CliRun(process.ExitCode, await stdout, await stderr);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    /// <summary>si.dll beside the tests (the project reference copies it with its runtimeconfig and deps files).</summary>
    public static string SiDll => Path.Combine(AppContext.BaseDirectory, "si.dll");
}
