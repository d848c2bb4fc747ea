using Spectre.Console;

namespace ServerlessInference.Cli;

/// <summary>Where <c>si</c> writes: results to <see cref="Out"/> (tables, or JSON with <c>--json</c>), progress and
/// errors to <see cref="Error"/>.</summary>
/// <remarks>Escape codes, progress bars and live displays only where the stream is a terminal: redirected output is
/// plain text (or plain JSON), so scripts can read it.</remarks>
public sealed class CliConsole
{
    /// <summary>Width of tables written to something that is not a terminal.</summary>
    public const int RedirectedWidth = 160;

    public CliConsole(TextWriter output, TextWriter error, bool outputIsTerminal, bool errorIsTerminal, Func<string, string?>? environment = null)
    {
        Out = output;
        Error = error;
        OutputIsTerminal = outputIsTerminal;
        ErrorIsTerminal = errorIsTerminal;
        Environment = environment ?? System.Environment.GetEnvironmentVariable;
        Tables = Create(output, outputIsTerminal);
        Progress = Create(error, errorIsTerminal);
    }

    public TextWriter Out { get; }

    public TextWriter Error { get; }

    public bool OutputIsTerminal { get; }

    public bool ErrorIsTerminal { get; }

    /// <summary>Reads an environment variable (a test passes its own).</summary>
    public Func<string, string?> Environment { get; }

    /// <summary>Spectre over <see cref="Out"/>: tables and live displays.</summary>
    public IAnsiConsole Tables { get; }

    /// <summary>Spectre over <see cref="Error"/>: progress bars, drawn only when <see cref="ErrorIsTerminal"/>.</summary>
    public IAnsiConsole Progress { get; }

    /// <summary>The process's own console.</summary>
    public static CliConsole FromProcess() =>
        new(Console.Out, Console.Error, !Console.IsOutputRedirected, !Console.IsErrorRedirected);

    private static IAnsiConsole Create(TextWriter writer, bool terminal)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = terminal ? InteractionSupport.Yes : InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        if (!terminal)
        {
            console.Profile.Width = RedirectedWidth;
        }

        return console;
    }
}
