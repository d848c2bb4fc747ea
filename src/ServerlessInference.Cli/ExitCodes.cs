namespace ServerlessInference.Cli;

/// <summary>The exit codes of <c>si</c>, so scripts can tell a mistake on their side from a fault on the server's.</summary>
public static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>The job (or a bench request) ended failed, cancelled or expired.</summary>
    public const int Failed = 1;

    /// <summary>The command line or a local input is wrong (unknown option, unreadable file, bad .npy).</summary>
    public const int Usage = 2;

    /// <summary>The server refused the request (4xx: unknown model or job, bad tensor, missing key, queue full), or
    /// the model store holds no such model.</summary>
    public const int Refused = 3;

    /// <summary>The server failed (5xx) or could not be reached.</summary>
    public const int ServerError = 4;

    /// <summary><c>jobs wait</c> gave up before the job ended.</summary>
    public const int Timeout = 5;
}

/// <summary>Ends a command with one line on stderr and <see cref="ExitCode"/>.</summary>
public sealed class CliException(int exitCode, string message, Exception? inner = null) : Exception(message, inner)
{
    public int ExitCode { get; } = exitCode;

    public static CliException Usage(string message) => new(ExitCodes.Usage, message);
}
