using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace ServerlessInference.Redis;

/// <summary>Settings of the Redis providers (section <c>Inference:Redis</c>). One connection serves all of them.</summary>
public sealed class RedisOptions : IValidatableObject
{
    public const string Section = "Inference:Redis";

    /// <summary>A StackExchange.Redis configuration string, e.g. <c>127.0.0.1:6379</c> or
    /// <c>host:6380,password=...,ssl=true</c>. Required when any provider is <c>Redis</c>.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>Prefix of every key and channel, so several platforms can share one Redis.</summary>
    public string KeyPrefix { get; set; } = "si:";

    /// <summary>Name of the job stream (<c>{KeyPrefix}{QueueName}</c>, hash-tagged so a queue's keys share a cluster slot).</summary>
    public string QueueName { get; set; } = "jobs";

    /// <summary>The consumer group every worker reads the job stream through.</summary>
    public string ConsumerGroup { get; set; } = "workers";

    /// <summary>This process's consumer in the group; defaults to <c>{machine}-{pid}</c>, so a restarted process
    /// never inherits the leases of the one before it (those are reclaimed when they expire).</summary>
    public string ConsumerName { get; set; } = $"{Environment.MachineName}-{Environment.ProcessId}";

    /// <summary>How often a receiving worker looks for expired leases (<c>XAUTOCLAIM</c>) and, at the same time, polls
    /// for jobs whose pub/sub notification it may have missed. Bounds the extra delay of a redelivery.</summary>
    public TimeSpan ReclaimInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A request whose encoded size reaches this many bytes travels in its own string key beside the stream
    /// entry (<c>SET</c>/<c>MGET</c>) instead of inside it: the stream scripts copy an entry's fields through Lua
    /// several times, which costs Redis about 2 ms per 600 KB image, against 0.6 ms as a plain string. 0 keeps every
    /// request in the stream.</summary>
    public int InlineRequestMaxBytes { get; set; } = 64 * 1024;

    /// <summary>Approximate number of dead-lettered jobs kept (<c>XADD MAXLEN ~</c>).</summary>
    public int DeadLetterMaxLength { get; set; } = 10_000;

    /// <summary>How often a follower of a job's token stream re-reads it when no notification came: covers a pub/sub
    /// message lost while the connection was re-made. Notifications wake followers at once otherwise.</summary>
    public TimeSpan StreamPollInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>A worker that has not heartbeated for this long disappears from the registry.</summary>
    public TimeSpan WorkerTtl { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Approximate number of scaling decisions kept (<c>XADD MAXLEN ~</c>).</summary>
    public int ScalingLogLength { get; set; } = 500;

    /// <summary>Seconds a client is told to wait (Retry-After) while Redis cannot be reached.</summary>
    public int UnavailableRetryAfterSeconds { get; set; } = 1;

    /// <summary>How connections authenticate: <see cref="RedisAuthentication.Password"/> (whatever the connection
    /// string says, default) or <see cref="RedisAuthentication.EntraId"/> (a Microsoft Entra ID token, no key).</summary>
    public RedisAuthentication Authentication { get; set; } = RedisAuthentication.Password;

    /// <summary>With <see cref="RedisAuthentication.EntraId"/>: the object (principal) id of the identity, which is its
    /// Redis user name. Required then.</summary>
    public string? EntraPrincipalId { get; set; }

    /// <summary>With <see cref="RedisAuthentication.EntraId"/>: the client id of a user-assigned managed identity;
    /// unset, <c>DefaultAzureCredential</c> reads <c>AZURE_CLIENT_ID</c> or uses the system-assigned identity.</summary>
    public string? ManagedIdentityClientId { get; set; }

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        var parsable = ConnectionString is not null && IsParsable(ConnectionString);
        if (string.IsNullOrWhiteSpace(ConnectionString))
        {
            yield return Invalid(nameof(ConnectionString),
                $"{Section}:ConnectionString is required when a provider is Redis (Inference:Queue:Provider, Inference:Results:Provider or Inference:Registry:Provider)");
        }
        else if (!parsable)
        {
            yield return Invalid(nameof(ConnectionString), $"{Section}:ConnectionString is not a valid StackExchange.Redis configuration string");
        }

        if (string.IsNullOrEmpty(QueueName) || string.IsNullOrEmpty(ConsumerGroup) || string.IsNullOrEmpty(ConsumerName))
        {
            yield return Invalid(nameof(QueueName), $"{Section}:QueueName, ConsumerGroup and ConsumerName must not be empty");
        }

        if (ReclaimInterval <= TimeSpan.Zero)
        {
            yield return Invalid(nameof(ReclaimInterval), $"{Section}:ReclaimInterval must be positive");
        }

        if (StreamPollInterval <= TimeSpan.Zero)
        {
            yield return Invalid(nameof(StreamPollInterval), $"{Section}:StreamPollInterval must be positive");
        }

        if (WorkerTtl <= TimeSpan.Zero)
        {
            yield return Invalid(nameof(WorkerTtl), $"{Section}:WorkerTtl must be positive");
        }

        if (DeadLetterMaxLength <= 0 || ScalingLogLength <= 0)
        {
            yield return Invalid(nameof(DeadLetterMaxLength), $"{Section}:DeadLetterMaxLength and ScalingLogLength must be positive");
        }

        if (InlineRequestMaxBytes < 0)
        {
            yield return Invalid(nameof(InlineRequestMaxBytes), $"{Section}:InlineRequestMaxBytes must not be negative");
        }

        if (!Enum.IsDefined(Authentication))
        {
            yield return Invalid(nameof(Authentication), $"{Section}:Authentication must be Password or EntraId");
        }
        else if (Authentication == RedisAuthentication.EntraId)
        {
            if (string.IsNullOrWhiteSpace(EntraPrincipalId))
            {
                yield return Invalid(nameof(EntraPrincipalId),
                    $"{Section}:EntraPrincipalId is required when {Section}:Authentication is EntraId (the object id of the identity, which is its Redis user name)");
            }

            if (parsable && HoldsCredentials(ConnectionString!))
            {
                yield return Invalid(nameof(ConnectionString),
                    $"{Section}:ConnectionString must hold no password or user when {Section}:Authentication is EntraId (only host:port,ssl=true)");
            }
        }
    }

    private static ValidationResult Invalid(string member, string message) => new(message, [member]);

    private static bool HoldsCredentials(string connectionString)
    {
        var configuration = ConfigurationOptions.Parse(connectionString);
        return !string.IsNullOrEmpty(configuration.Password) || !string.IsNullOrEmpty(configuration.User);
    }

    private static bool IsParsable(string connectionString)
    {
        try
        {
            ConfigurationOptions.Parse(connectionString);
            return true;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}

[OptionsValidator]
public sealed partial class RedisOptionsValidator : IValidateOptions<RedisOptions>;

/// <summary>How the Redis connection authenticates (<c>Inference:Redis:Authentication</c>).</summary>
public enum RedisAuthentication
{
    /// <summary>As the connection string says: a password (access key), or none for a local Redis.</summary>
    Password,

    /// <summary>Microsoft Entra ID (Azure Managed Redis, Azure Cache for Redis): user = the identity's object id,
    /// password = an access token for <c>https://redis.azure.com/.default</c>, renewed before it expires.</summary>
    EntraId,
}
