using System.CommandLine;
using System.Text.Json;
using ServerlessInference.Cli.Bench;
using ServerlessInference.Cli.Generation;
using ServerlessInference.Cli.Jobs;
using ServerlessInference.Cli.Models;
using ServerlessInference.Cli.Status;

namespace ServerlessInference.Cli;

/// <summary>The <c>si</c> command tree: global options, the commands, and one place that turns every failure into
/// one line on stderr and an exit code (<see cref="ExitCodes"/>).</summary>
public static class SiApp
{
    /// <summary>Where the DevHost listens by default.</summary>
    public const string DefaultUrl = "http://127.0.0.1:7071";

    public const string UrlVariable = "SI_URL";
    public const string ApiKeyVariable = "SI_API_KEY";

    public static readonly Option<string?> UrlOption = new("--url")
    {
        Description = $"The platform's address (env {UrlVariable}; default {DefaultUrl})",
        Recursive = true,
    };

    public static readonly Option<string?> ApiKeyOption = new("--api-key")
    {
        Description = $"API key, sent as a bearer token (env {ApiKeyVariable})",
        Recursive = true,
    };

    public static readonly Option<bool> JsonOption = new("--json")
    {
        Description = "Write JSON to stdout instead of tables",
        Recursive = true,
    };

    public static async Task<int> RunAsync(string[] args, CliConsole console, CancellationToken cancellationToken)
    {
        var root = new RootCommand("si: the ServerlessInference command line")
        {
            ModelsCommands.Create(console),
            InferCommand.Create(console),
            JobsCommands.Create(console),
            GenerateCommand.Create(console),
            StatusCommand.Create(console),
            BenchCommand.Create(console),
        };
        root.Options.Add(UrlOption);
        root.Options.Add(ApiKeyOption);
        root.Options.Add(JsonOption);

        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0 && parsed.Action is not System.CommandLine.Help.HelpAction)
        {
            await console.Error.WriteLineAsync($"si: {parsed.Errors[0].Message} (si --help for usage)").ConfigureAwait(false);
            return ExitCodes.Usage;
        }

        return await parsed.InvokeAsync(new InvocationConfiguration { Output = console.Out, Error = console.Error, EnableDefaultExceptionHandler = false }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>An action that runs <paramref name="run"/> and reports its failures as one line and an exit code.</summary>
    public static Func<ParseResult, CancellationToken, Task<int>> Action(CliConsole console, Func<CliContext, CancellationToken, Task<int>> run) =>
        async (parseResult, cancellationToken) =>
        {
            try
            {
                var context = CliContext.From(parseResult, console);
                return await run(context, cancellationToken).ConfigureAwait(false);
            }
            catch (CliException ex)
            {
                return await FailAsync(console, ex.ExitCode, ex.Message).ConfigureAwait(false);
            }
            catch (InferenceException ex)
            {
                // The model store and the manifest reader speak the platform's error kinds.
                var code = ex.Error switch
                {
                    InferenceError.BadRequest => ExitCodes.Usage,
                    InferenceError.NotFound => ExitCodes.Refused,
                    InferenceError.Unavailable or InferenceError.ModelFailure => ExitCodes.ServerError,
                    _ => ExitCodes.Failed,
                };
                return await FailAsync(console, code, ex.Message).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return await FailAsync(console, 130, "cancelled").ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return await FailAsync(console, ExitCodes.Usage, ex.Message).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                return await FailAsync(console, ExitCodes.Failed, $"unexpected {ex.GetType().Name}: {ex.Message.ReplaceLineEndings(" ")}").ConfigureAwait(false);
            }
        };

    private static async Task<int> FailAsync(CliConsole console, int code, string message)
    {
        await console.Error.WriteLineAsync("si: " + message.ReplaceLineEndings(" ")).ConfigureAwait(false);
        return code;
    }

    /// <summary>Writes <paramref name="document"/> to stdout as indented JSON.</summary>
    public static async Task WriteJsonAsync(CliConsole console, JsonElement document)
    {
        await console.Out.WriteLineAsync(JsonSerializer.Serialize(document, s_indented)).ConfigureAwait(false);
        await console.Out.FlushAsync().ConfigureAwait(false);
    }

    private static readonly JsonSerializerOptions s_indented = new()
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}

/// <summary>The global options of one invocation, resolved (option, then environment, then default).</summary>
public sealed record CliContext(CliConsole Console, Uri Url, string? ApiKey, bool Json, ParseResult Parse)
{
    public static CliContext From(ParseResult parse, CliConsole console)
    {
        var url = parse.GetValue(SiApp.UrlOption) ?? Nonempty(console.Environment(SiApp.UrlVariable)) ?? SiApp.DefaultUrl;
        if (!Uri.TryCreate(url.TrimEnd('/') + "/", UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            throw CliException.Usage($"--url must be an absolute http(s) URL, got '{url}'");
        }

        var key = parse.GetValue(SiApp.ApiKeyOption) ?? Nonempty(console.Environment(SiApp.ApiKeyVariable));
        return new CliContext(console, uri, key, parse.GetValue(SiApp.JsonOption), parse);
    }

    public GatewayClient Gateway() => new(Url, ApiKey);

    public T? Get<T>(Option<T> option) => Parse.GetValue(option);

    public T Get<T>(Argument<T> argument) => Parse.GetValue(argument)!;

    private static string? Nonempty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();
}
