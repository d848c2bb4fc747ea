using System.ComponentModel.DataAnnotations;
using Azure.Messaging.ServiceBus;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Azure.Jobs;

/// <summary>Settings of the Service Bus job queue (section <c>Inference:ServiceBus</c>).</summary>
/// <remarks>Set exactly one of <see cref="ConnectionString"/> (the emulator, or a SAS key) and
/// <see cref="FullyQualifiedNamespace"/> (Azure, signed in with <c>DefaultAzureCredential</c>). The queue itself must
/// exist; its <c>MaxDeliveryCount</c> must be greater than <c>Inference:Queue:MaxDeliveryCount</c> (see
/// <see cref="ServiceBusJobQueue"/>).</remarks>
public sealed class ServiceBusJobQueueOptions : IValidatableObject
{
    public const string Section = "Inference:ServiceBus";

    /// <summary>A Service Bus connection string: the emulator's
    /// (<c>Endpoint=sb://localhost;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;</c>)
    /// or a namespace's SAS string.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>The namespace's host name, <c>NAME.servicebus.windows.net</c>; signs in with <c>DefaultAzureCredential</c>
    /// (managed identity in Azure, the developer's login locally).</summary>
    public string? FullyQualifiedNamespace { get; set; }

    public string QueueName { get; set; } = "jobs";

    /// <summary>Connection string of the administration (HTTP) endpoint, used only to read the queue depth. Default:
    /// <see cref="ConnectionString"/>. The emulator serves it on another port:
    /// <c>Endpoint=sb://localhost:5300;...;UseDevelopmentEmulator=true;</c>.</summary>
    public string? AdministrationConnectionString { get; set; }

    /// <summary>Client id of a user-assigned managed identity (with <see cref="FullyQualifiedNamespace"/>); when
    /// empty, <c>DefaultAzureCredential</c> reads <c>AZURE_CLIENT_ID</c>.</summary>
    public string? ManagedIdentityClientId { get; set; }

    /// <summary>Retries of one failed Service Bus call before it reports <c>Unavailable</c> (503).</summary>
    public int MaxRetries { get; set; } = 2;

    /// <summary>Longest wait for one attempt of a Service Bus call (connect, send, settle, renew).</summary>
    public TimeSpan TryTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The shortest wait a receive asks Service Bus for: even a receive that wants no wait needs a round trip
    /// to the broker to see what is queued.</summary>
    public TimeSpan MinimumReceiveWait { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>How long a queue depth read from Service Bus is reused (the scaler, <c>/status</c> and the capacity
    /// check all ask for it). Zero reads it every time.</summary>
    public TimeSpan DepthCacheDuration { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Most messages counted by peeking when the administration endpoint cannot be used; a deeper queue
    /// reports this many.</summary>
    public int DepthPeekLimit { get; set; } = 1000;

    /// <summary>How long to use the peek count before trying the administration endpoint again after it failed.</summary>
    public TimeSpan AdministrationRetryInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How long a message outlives its job's deadline. A worker that receives a job past its deadline marks it
    /// Expired without running it; a message that Service Bus expires first is dropped (or dead-lettered, with the
    /// queue's <c>DeadLetteringOnMessageExpiration</c>) and its job's status stays Queued until the result record
    /// expires. Zero makes the message live exactly until the deadline.</summary>
    public TimeSpan ExpiryGrace { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Seconds a client is told to wait (Retry-After) while Service Bus cannot be reached.</summary>
    public int UnavailableRetryAfterSeconds { get; set; } = 1;

    /// <summary>The rules of <see cref="ServiceBusJobQueueOptionsValidator.Failures"/>, run at start-up by the source-generated validator.</summary>
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext) =>
        ServiceBusJobQueueOptionsValidator.Failures(this).Select(failure => new ValidationResult(failure));
}

/// <summary>Validates <see cref="ServiceBusJobQueueOptions"/> at start-up, naming the settings in every message.</summary>
[OptionsValidator]
public sealed partial class ServiceBusJobQueueOptionsValidator : IValidateOptions<ServiceBusJobQueueOptions>
{
    private const string Prefix = ServiceBusJobQueueOptions.Section + ":";

    /// <summary>What is wrong with <paramref name="options"/>; empty when nothing. Never echoes a connection string.</summary>
    public static IReadOnlyList<string> Failures(ServiceBusJobQueueOptions options)
    {
        var failures = new List<string>();
        var hasConnectionString = !string.IsNullOrWhiteSpace(options.ConnectionString);
        var hasNamespace = !string.IsNullOrWhiteSpace(options.FullyQualifiedNamespace);
        if (hasConnectionString == hasNamespace)
        {
            failures.Add(
                $"Inference:Queue:Provider is ServiceBus, so set exactly one of {Prefix}ConnectionString (the emulator or a SAS connection string) " +
                $"or {Prefix}FullyQualifiedNamespace (NAME.servicebus.windows.net, signed in with DefaultAzureCredential); " +
                (hasConnectionString ? "both are set" : "neither is set"));
        }
        else if (hasConnectionString)
        {
            if (ConnectionStringProblem(options.ConnectionString!) is { } problem)
            {
                failures.Add($"{Prefix}ConnectionString {problem}");
            }
            else if (ServiceBusConnectionStringProperties.Parse(options.ConnectionString!).EntityPath is { Length: > 0 } entity
                && !string.Equals(entity, options.QueueName, StringComparison.OrdinalIgnoreCase))
            {
                failures.Add($"{Prefix}ConnectionString is scoped to the entity '{entity}' (EntityPath), but {Prefix}QueueName is '{options.QueueName}'");
            }
        }
        else if (!IsHostName(options.FullyQualifiedNamespace!.Trim()))
        {
            failures.Add($"{Prefix}FullyQualifiedNamespace must be a host name such as NAME.servicebus.windows.net (no scheme, port or path); got '{options.FullyQualifiedNamespace}'");
        }

        if (!string.IsNullOrWhiteSpace(options.AdministrationConnectionString) && ConnectionStringProblem(options.AdministrationConnectionString) is { } adminProblem)
        {
            failures.Add($"{Prefix}AdministrationConnectionString {adminProblem}");
        }

        if (string.IsNullOrWhiteSpace(options.QueueName) || options.QueueName.Length > 260 || options.QueueName.Any(char.IsWhiteSpace))
        {
            failures.Add($"{Prefix}QueueName must be 1-260 characters without spaces; got '{options.QueueName}'");
        }

        if (options.MaxRetries is < 0 or > 10)
        {
            failures.Add($"{Prefix}MaxRetries must be between 0 and 10");
        }

        if (options.TryTimeout <= TimeSpan.Zero)
        {
            failures.Add($"{Prefix}TryTimeout must be positive");
        }

        if (options.MinimumReceiveWait <= TimeSpan.Zero)
        {
            failures.Add($"{Prefix}MinimumReceiveWait must be positive (Service Bus needs a round trip to see what is queued)");
        }

        if (options.DepthCacheDuration < TimeSpan.Zero)
        {
            failures.Add($"{Prefix}DepthCacheDuration must not be negative");
        }

        if (options.DepthPeekLimit < 1)
        {
            failures.Add($"{Prefix}DepthPeekLimit must be at least 1");
        }

        if (options.AdministrationRetryInterval < TimeSpan.Zero)
        {
            failures.Add($"{Prefix}AdministrationRetryInterval must not be negative");
        }

        if (options.ExpiryGrace < TimeSpan.Zero)
        {
            failures.Add($"{Prefix}ExpiryGrace must not be negative");
        }

        if (options.UnavailableRetryAfterSeconds < 1)
        {
            failures.Add($"{Prefix}UnavailableRetryAfterSeconds must be at least 1");
        }

        return failures;
    }

    /// <summary>Why a connection string cannot be used, or null; says what is wrong, never what the value is.</summary>
    private static string? ConnectionStringProblem(string connectionString)
    {
        ServiceBusConnectionStringProperties properties;
        try
        {
            properties = ServiceBusConnectionStringProperties.Parse(connectionString);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException)
        {
            return $"is not a valid Service Bus connection string ({ex.GetType().Name})";
        }

        if (properties.Endpoint is null)
        {
            return "has no Endpoint (sb://HOST)";
        }

        var hasKey = !string.IsNullOrEmpty(properties.SharedAccessKeyName) && !string.IsNullOrEmpty(properties.SharedAccessKey);
        if (!hasKey && string.IsNullOrEmpty(properties.SharedAccessSignature))
        {
            return "has neither SharedAccessKeyName and SharedAccessKey nor SharedAccessSignature";
        }

        return null;
    }

    private static bool IsHostName(string value) =>
        Uri.CheckHostName(value) is UriHostNameType.Dns or UriHostNameType.IPv4 && !value.Contains(':', StringComparison.Ordinal);
}
