using System.Text.Json;
using System.Xml;
using ServerlessInference.Jobs;
using ServerlessInference.Gateway;
using ServerlessInference.Workers;

namespace ServerlessInference.Worker.Tests.Deployment;

/// <summary><c>infra/docker-compose.yml</c> and the Service Bus emulator's <c>infra/servicebus/Config.json</c>,
/// checked against the code's defaults so neither drifts silently.</summary>
public sealed class ComposeTests
{
    /// <summary>The default of <c>Inference:ServiceBus:QueueName</c>.</summary>
    private const string ServiceBusQueueName = "jobs";

    private static readonly string s_compose = RepositoryFiles.Read("infra/docker-compose.yml");

    [Fact]
    public void EmulatorConfig_Namespace_IsTheOneTheEmulatorAccepts()
    {
        using var config = JsonDocument.Parse(RepositoryFiles.Read("infra/servicebus/Config.json"));
        var user = config.RootElement.GetProperty("UserConfig");

        var ns = Assert.Single(user.GetProperty("Namespaces").EnumerateArray());
        Assert.Equal("sbemulatorns", ns.GetProperty("Name").GetString());
        Assert.Equal(JsonValueKind.Array, ns.GetProperty("Topics").ValueKind);
        Assert.Equal(JsonValueKind.String, user.GetProperty("Logging").GetProperty("Type").ValueKind);
    }

    [Fact]
    public void EmulatorConfig_JobsQueue_AgreesWithTheCodeDefaults()
    {
        var properties = JobsQueue().GetProperty("Properties");

        // The worker runs deliveries 1..MaxDeliveryCount and, on the next one, records the failure (the client sees the
        // reason) and dead-letters the job itself: the broker must deliver once more before its own dead-lettering.
        var maxDeliveryCount = properties.GetProperty("MaxDeliveryCount").GetInt32();
        Assert.Equal(new JobQueueOptions().MaxDeliveryCount + 1, maxDeliveryCount);
        Assert.InRange(maxDeliveryCount, 1, 10);

        // The lock is the job's lease: the worker renews it well before it lapses.
        var lockDuration = XmlConvert.ToTimeSpan(properties.GetProperty("LockDuration").GetString()!);
        Assert.InRange(lockDuration, TimeSpan.FromSeconds(5), TimeSpan.FromMinutes(5));
        Assert.True(lockDuration >= 2 * new WorkerOptions().LeaseRenewInterval, $"LockDuration {lockDuration} is too short for the lease renewals");

        // A job lives until its deadline; an expired message goes to the dead-letter queue, not away.
        var ttl = XmlConvert.ToTimeSpan(properties.GetProperty("DefaultMessageTimeToLive").GetString()!);
        Assert.InRange(ttl, new GatewayOptions().JobDeadline, TimeSpan.FromHours(1));
        Assert.True(properties.GetProperty("DeadLetteringOnMessageExpiration").GetBoolean());
        Assert.False(properties.GetProperty("RequiresSession").GetBoolean());
    }

    [Fact]
    public void Compose_Emulator_MountsTheConfigAndNamesTheQueue()
    {
        Assert.Contains("- ./servicebus/Config.json:/ServiceBus_Emulator/ConfigFiles/Config.json:ro", s_compose, StringComparison.Ordinal);
        Assert.Contains($"Inference__ServiceBus__QueueName: {ServiceBusQueueName}", s_compose, StringComparison.Ordinal);
        Assert.Contains("UseDevelopmentEmulator=true", s_compose, StringComparison.Ordinal);
    }

    [Fact]
    public void Compose_Ports_AreBoundToLoopbackOnly()
    {
        var ports = PortMappings(s_compose).ToList();

        Assert.True(ports.Count >= 4, $"found only {ports.Count} port mappings");
        Assert.All(ports, port => Assert.StartsWith("127.0.0.1:", port));
    }

    [Fact]
    public void Compose_Redis_KeepsAnAppendOnlyFile()
    {
        Assert.Contains("\"--appendonly\", \"yes\"", s_compose, StringComparison.Ordinal);
    }

    [Fact]
    public void Compose_Redis_NeverEvictsAKey()
    {
        Assert.Contains("\"--maxmemory-policy\", \"noeviction\"", s_compose, StringComparison.Ordinal);
    }

    private static JsonElement JobsQueue()
    {
        using var config = JsonDocument.Parse(RepositoryFiles.Read("infra/servicebus/Config.json"));
        var queues = config.RootElement.GetProperty("UserConfig").GetProperty("Namespaces")[0].GetProperty("Queues");
        return Assert.Single(queues.EnumerateArray(), q => q.GetProperty("Name").GetString() == ServiceBusQueueName).Clone();
    }

    /// <summary>The entries of every <c>ports:</c> list, without quotes and comments.</summary>
    private static IEnumerable<string> PortMappings(string yaml)
    {
        int? portsIndent = null;
        foreach (var raw in yaml.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            var content = line.TrimStart();
            var indent = line.Length - content.Length;
            if (content.Length == 0 || content.StartsWith('#'))
            {
                continue;
            }

            if (portsIndent is { } at && indent > at && content.StartsWith('-'))
            {
                var entry = content[1..];
                var comment = entry.IndexOf(" #", StringComparison.Ordinal);
                yield return (comment < 0 ? entry : entry[..comment]).Trim().Trim('"', '\'');
                continue;
            }

            portsIndent = content == "ports:" ? indent : null;
        }
    }
}
