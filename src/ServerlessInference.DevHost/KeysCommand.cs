using System.Globalization;
using ServerlessInference.Hosting;
using ServerlessInference.Hosting.Providers;
using ServerlessInference.Protocol;
using ServerlessInference.Security;

namespace ServerlessInference.DevHost;

/// <summary><c>keys create --tenant NAME [--admin] [--rps N] [--burst N] [--max-concurrent-jobs N]</c>, <c>keys list</c>,
/// <c>keys revoke ID</c>: API keys where the gateway configured by the same settings reads them. Redis when the results
/// live there (<c>--profile services</c>, Kubernetes, Azure): the key is stored (hashed) at once. Otherwise configuration:
/// <c>create</c> prints the settings that hold the hash, to paste into the gateway's configuration. Other arguments are
/// configuration, as for the host (<c>--profile services</c>, <c>--Inference:Redis:ConnectionString=HOST:PORT</c>).</summary>
public static class KeysCommand
{
    public const string Name = "keys";

    private const string Usage = """
        usage: keys create --tenant NAME [--admin] [--rps N] [--burst N] [--max-concurrent-jobs N] [settings...]
               keys list [settings...]
               keys revoke ID [settings...]
        settings: as for the host, e.g. --profile services or --Inference:Redis:ConnectionString=127.0.0.1:6379
        """;

    public static bool IsCommand(string[] args) => args.Length > 0 && args[0] == Name;

    /// <summary>Runs the command in <paramref name="args"/> (starting with <c>keys</c>); returns the exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (args.Length < 2 || args[1] is not ("create" or "list" or "revoke"))
        {
            await error.WriteLineAsync(Usage).ConfigureAwait(false);
            return 2;
        }

        var verb = args[1];
        var parsed = Parse(args[2..]);
        if (parsed.Problem is { } problem)
        {
            await error.WriteLineAsync(problem + Environment.NewLine + Usage).ConfigureAwait(false);
            return 2;
        }

        var (host, _) = DevHostSetup.CommandHost(parsed.Settings, services => services.AddGatewayAuth());
        using var _ = host;
        var store = host.Services.GetRequiredService<IApiKeyStore>();
        var where = store.IsWritable ? $"Redis ({host.Services.GetRequiredService<IConfiguration>()["Inference:Redis:ConnectionString"]})" : "configuration";
        try
        {
            switch (verb)
            {
                case "create":
                    if (parsed.Tenant is not { Length: > 0 } tenant)
                    {
                        await error.WriteLineAsync("keys create needs --tenant NAME" + Environment.NewLine + Usage).ConfigureAwait(false);
                        return 2;
                    }

                    var (key, record) = ApiKeys.Create(tenant, parsed.Admin, parsed.RequestsPerSecond, parsed.Burst, parsed.MaxConcurrentJobs, TimeProvider.System.GetUtcNow());
                    if (store.IsWritable)
                    {
                        await store.AddAsync(record, cancellationToken).ConfigureAwait(false);
                        await output.WriteLineAsync($"Created key {record.Id} for tenant {tenant}{(record.Admin ? " (admin)" : "")} in {where}.").ConfigureAwait(false);
                    }
                    else
                    {
                        await output.WriteLineAsync($"Key {record.Id} for tenant {tenant}{(record.Admin ? " (admin)" : "")}. No Redis holds keys for this configuration " +
                            $"({ProviderSettings.Results.Key} is not {ProviderSettings.Redis}): add these settings to the gateway's configuration " +
                            "(appsettings.json, or environment variables with __ for :), then restart it:").ConfigureAwait(false);
                        foreach (var line in ApiKeys.ConfigurationLines(record))
                        {
                            await output.WriteLineAsync("  " + line).ConfigureAwait(false);
                        }
                    }

                    await output.WriteLineAsync("The key, shown this once (send it as 'Authorization: Bearer KEY' or 'api-key: KEY'):").ConfigureAwait(false);
                    await output.WriteLineAsync(key).ConfigureAwait(false);
                    return 0;

                case "list":
                    var keys = await store.ListAsync(cancellationToken).ConfigureAwait(false);
                    await output.WriteLineAsync($"{keys.Count} key(s) in {where}").ConfigureAwait(false);
                    await output.WriteLineAsync("id                tenant            admin  rps      burst  max-jobs  created").ConfigureAwait(false);
                    foreach (var k in keys)
                    {
                        await output.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                            $"{k.Id,-17} {k.Tenant,-17} {(k.Admin ? "yes" : "no"),-6} {Show(k.RequestsPerSecond),-8} {Show(k.Burst),-6} {Show(k.MaxConcurrentJobs),-9} {k.CreatedAt?.ToString("u", CultureInfo.InvariantCulture) ?? "-"}")).ConfigureAwait(false);
                    }

                    return 0;

                default:
                    if (parsed.Id is not { } id)
                    {
                        await error.WriteLineAsync("keys revoke needs the key's id (keys list shows it)" + Environment.NewLine + Usage).ConfigureAwait(false);
                        return 2;
                    }

                    if (!store.IsWritable)
                    {
                        await error.WriteLineAsync($"keys in configuration are revoked by removing {AuthOptions.Section}:Keys:{id}:* from the gateway's configuration and restarting it").ConfigureAwait(false);
                        return 1;
                    }

                    if (!await store.RevokeAsync(id, cancellationToken).ConfigureAwait(false))
                    {
                        await error.WriteLineAsync($"no key {id} in {where}").ConfigureAwait(false);
                        return 1;
                    }

                    await output.WriteLineAsync($"Revoked key {id} in {where}.").ConfigureAwait(false);
                    return 0;
            }
        }
        catch (InferenceException ex)
        {
            await error.WriteLineAsync(ex.Message).ConfigureAwait(false);
            return 1;
        }
    }

    private static string Show<T>(T? value) where T : struct, IFormattable => value?.ToString(null, CultureInfo.InvariantCulture) ?? "default";

    private static Parsed Parse(string[] args)
    {
        var parsed = new Parsed();
        for (var i = 0; i < args.Length; i++)
        {
            var arg = args[i];
            string? Next() => i + 1 < args.Length ? args[++i] : null;
            switch (arg)
            {
                case "--tenant":
                    parsed.Tenant = Next();
                    break;
                case "--admin":
                    parsed.Admin = true;
                    break;
                case "--rps":
                    if (!double.TryParse(Next(), NumberStyles.Float, CultureInfo.InvariantCulture, out var rps) || rps < 0 || !double.IsFinite(rps))
                    {
                        parsed.Problem = "--rps needs a number of requests per second (0 = no limit)";
                    }

                    parsed.RequestsPerSecond = rps;
                    break;
                case "--burst":
                    parsed.Burst = Count(Next(), 1, "--burst", parsed);
                    break;
                case "--max-concurrent-jobs":
                    parsed.MaxConcurrentJobs = Count(Next(), 0, "--max-concurrent-jobs", parsed);
                    break;
                default:
                    if (!arg.StartsWith('-') && parsed.Id is null)
                    {
                        parsed.Id = arg;
                    }
                    else
                    {
                        i = KeysCommand.TakeSetting(args, i, parsed.Settings);
                    }

                    break;
            }
        }

        return parsed;
    }

    /// <summary>Adds the host setting at <paramref name="i"/> (<c>--key=value</c>, or <c>--key value</c>) to
    /// <paramref name="settings"/>, as the host's command-line configuration reads it; returns the index of its last
    /// argument. The <c>keys</c> and <c>models</c> commands pass these on to the host they build.</summary>
    internal static int TakeSetting(string[] args, int i, List<string> settings)
    {
        var arg = args[i];
        settings.Add(arg);
        if (arg.StartsWith("--", StringComparison.Ordinal) && !arg.Contains('=', StringComparison.Ordinal) && i + 1 < args.Length && !args[i + 1].StartsWith('-'))
        {
            settings.Add(args[++i]);
        }

        return i;
    }

    private static int? Count(string? text, int min, string name, Parsed parsed)
    {
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value >= min)
        {
            return value;
        }

        parsed.Problem = $"{name} needs a whole number of at least {min}";
        return null;
    }

    private sealed class Parsed
    {
        public string? Tenant { get; set; }

        public bool Admin { get; set; }

        public double? RequestsPerSecond { get; set; }

        public int? Burst { get; set; }

        public int? MaxConcurrentJobs { get; set; }

        public string? Id { get; set; }

        public string? Problem { get; set; }

        public List<string> Settings { get; } = [];
    }
}
