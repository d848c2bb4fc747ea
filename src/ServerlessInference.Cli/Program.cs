namespace ServerlessInference.Cli;

/// <summary>The <c>si</c> tool's entry point (a named class, so tests can reference this project beside a host's
/// top-level <c>Program</c>).</summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        using var cancel = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            // The first Ctrl+C stops the command (a watch, a bench, a wait) cleanly; a second one kills the process.
            if (!cancel.IsCancellationRequested)
            {
                e.Cancel = true;
                cancel.Cancel();
            }
        };
        return await SiApp.RunAsync(args, CliConsole.FromProcess(), cancel.Token).ConfigureAwait(false);
    }
}
