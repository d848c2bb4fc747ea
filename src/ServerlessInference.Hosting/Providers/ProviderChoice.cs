using Microsoft.Extensions.Configuration;

namespace ServerlessInference.Hosting.Providers;

/// <summary>The provider of every contract, read from the configuration once at start-up, in canonical spelling.</summary>
public sealed record ProviderChoice(string Queue, string Results, string Registry, string ModelStore, string Orchestrator)
{
    /// <summary>Reads every <c>Inference:*:Provider</c> setting.</summary>
    /// <exception cref="InvalidOperationException">A setting names no known provider; the message names the setting and the
    /// providers it accepts.</exception>
    public static ProviderChoice Read(IConfiguration configuration) => new(
        Provider(configuration, ProviderSettings.Queue),
        Provider(configuration, ProviderSettings.Results),
        Provider(configuration, ProviderSettings.Registry),
        Provider(configuration, ProviderSettings.ModelStore),
        Provider(configuration, ProviderSettings.Orchestrator));

    /// <summary>Whether workers of this orchestrator run outside the host's process, so they can only reach a shared
    /// queue, result store and registry (not the embedded, in-memory ones).</summary>
    public bool WorkersRunElsewhere => Orchestrator != ProviderSettings.InProcess;

    /// <summary>Throws naming the settings when a contract that workers in other processes share (queue, results,
    /// registry) is configured as in-process, where those workers would never see the jobs.</summary>
    /// <param name="why">Why workers run elsewhere here, e.g. "workers do not run inside the Functions app".</param>
    /// <param name="hint">Another way out, appended to the advice (e.g. ", or run with --profile services").</param>
    public void RequireSharedProviders(string why, string hint = "")
    {
        var embedded = new[] { (ProviderSettings.Queue, Queue), (ProviderSettings.Results, Results), (ProviderSettings.Registry, Registry) }
            .Where(s => s.Item2 == ProviderSettings.Embedded)
            .Select(s => s.Item1)
            .ToList();
        if (embedded.Count > 0)
        {
            throw new InvalidOperationException(
                $"{string.Join(", ", embedded.Select(s => s.Key))} {(embedded.Count == 1 ? "is" : "are")} {ProviderSettings.Embedded}, but {why}: " +
                $"choose {ProviderSettings.Redis} (the queue may also be {ProviderSettings.ServiceBus}){hint} " +
                $"(app settings / environment: {string.Join(", ", embedded.Select(s => s.EnvironmentKey))})");
        }
    }

    /// <summary>The configured provider of one contract, in its canonical spelling; throws naming the setting when unknown.</summary>
    public static string Provider(IConfiguration configuration, ProviderSetting setting)
    {
        var value = configuration[setting.Key];
        if (string.IsNullOrWhiteSpace(value))
        {
            return setting.Default;
        }

        return setting.Known.FirstOrDefault(k => string.Equals(k, value.Trim(), StringComparison.OrdinalIgnoreCase))
            ?? throw new InvalidOperationException($"{setting.Key} is '{value}'; known providers: {string.Join(", ", setting.Known)}");
    }
}
