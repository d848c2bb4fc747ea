using System.Globalization;
using Azure.Messaging.ServiceBus;
using ServerlessInference.Azure.Jobs;
using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Testing.Contracts;
using Xunit.Abstractions;

namespace ServerlessInference.Azure.Tests.Jobs;

/// <summary>Where the Service Bus contract suite gets its broker: <c>SERVICEBUS_CONNECTION</c> (the emulator's or a
/// namespace's connection string), <c>SERVICEBUS_QUEUE</c> (default <c>jobs</c>), <c>SERVICEBUS_ADMIN_CONNECTION</c>
/// (the emulator's admin endpoint, optional) and <c>SERVICEBUS_LOCK_DURATION</c> (the queue's LockDuration, default
/// 5 s, the emulator's shortest).</summary>
public static class ServiceBusBroker
{
    /// <summary>The skip reason, printed by <c>tests/run.sh</c>. No broker can be started here: the Service Bus emulator
    /// is a Docker image (with SQL Edge), and the AMQP 1.0 brokers that apt, npm and NuGet serve (RabbitMQ, ActiveMQ,
    /// rhea's example broker) do not speak Service Bus's <c>$cbs</c> token exchange or its <c>$management</c> operations
    /// (lock renewal, peek, sequence-number receive) that the SDK sends.</summary>
    public const string NotSet =
        "SERVICEBUS_CONNECTION not set: Service Bus contract suite did not run (no local broker: the Service Bus emulator "
        + "needs Docker, and no AMQP broker installable from apt, npm or NuGet speaks Service Bus's $cbs and $management "
        + "operations; set SERVICEBUS_CONNECTION to an emulator or a namespace, see docs/service-bus.md)";

    public static string? Connection { get; } = Setting("SERVICEBUS_CONNECTION");

    public static string QueueName { get; } = Setting("SERVICEBUS_QUEUE") ?? "jobs";

    public static string? AdministrationConnection { get; } = Setting("SERVICEBUS_ADMIN_CONNECTION");

    public static TimeSpan LockDuration { get; } = Setting("SERVICEBUS_LOCK_DURATION") is { } value
        ? TimeSpan.Parse(value, CultureInfo.InvariantCulture)
        : TimeSpan.FromSeconds(5);

    private static string? Setting(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value.Trim() : null;
}

/// <summary>The <see cref="IJobQueue"/> contract against a real Service Bus queue (emulator or Azure).</summary>
/// <remarks>
/// <para>Without <c>SERVICEBUS_CONNECTION</c> every test reports as <b>skipped</b> with <see cref="ServiceBusBroker.NotSet"/>
/// (the suite's tests are <c>[SkippableFact]</c>), so the run summary shows the suite did not run rather than passing it.</para>
/// <para>The queue must exist, with LockDuration = <c>SERVICEBUS_LOCK_DURATION</c> (lease-expiry cases wait for it in
/// real time), MaxDeliveryCount ≥ 4 and no sessions. Each test starts by emptying the queue and its dead-letter
/// sub-queue; a disposed queue abandons the locks it still holds, so no test inherits another's invisible messages.
/// The depth is read uncached; Azure updates its counters with a delay, so the depth cases are exact on the emulator
/// and may lag on Azure. <c>ReceiveAsync_JobsQueued_ReturnsUpToMaxInFifoOrder</c> assumes one receive returns every
/// message already queued, which Service Bus does not promise (it returns what arrives within its batch window).</para>
/// </remarks>
public sealed class ServiceBusJobQueueContractTests : JobQueueContract
{
    private readonly ITestOutputHelper _output;

    public ServiceBusJobQueueContractTests(ITestOutputHelper output)
    {
        _output = output;
        _output.WriteLine(ServiceBusBroker.Connection is null ? ServiceBusBroker.NotSet : $"Service Bus contract suite on queue '{ServiceBusBroker.QueueName}'");
    }

    protected override TimeProvider Time => TimeProvider.System;

    protected override TimeSpan LeaseDuration => ServiceBusBroker.LockDuration;

    protected override TimeSpan Patience => ServiceBusBroker.LockDuration + TimeSpan.FromSeconds(15);

    protected override TimeSpan PollStep => TimeSpan.FromMilliseconds(200);

    protected override async ValueTask AdvanceAsync(TimeSpan duration) => await Task.Delay(duration);

    /// <summary>Service Bus does not enforce <c>Inference:Queue:MaxQueuedBytes</c>: the namespace's queue size quota
    /// (MaxSizeInMegabytes) bounds it, and a queue at its quota answers 429 (<c>QuotaExceeded</c>).</summary>
    protected override string? QueuedBytesNotEnforced =>
        "Service Bus does not enforce Inference:Queue:MaxQueuedBytes; the queue's size quota (MaxSizeInMegabytes) bounds it";

    /// <summary>One Service Bus queue delivers FIFO (docs/routing.md says why and what a deployment can do instead).</summary>
    protected override string? PreferenceNotHonoured =>
        "Service Bus is one FIFO queue: the job preference is not applied there (docs/routing.md)";

    /// <summary>Counting a model's jobs would mean peeking the whole queue on every enqueue.</summary>
    protected override string? ModelCountsNotKept =>
        "Service Bus does not count jobs per model: max_queued and the per-model depth need the embedded or Redis queue (docs/routing.md)";

    protected override async ValueTask<IJobQueue> CreateQueueAsync(JobQueueOptions options)
    {
        Skip.If(ServiceBusBroker.Connection is null, ServiceBusBroker.NotSet);
        var sbOptions = new ServiceBusJobQueueOptions
        {
            ConnectionString = ServiceBusBroker.Connection,
            AdministrationConnectionString = ServiceBusBroker.AdministrationConnection,
            QueueName = ServiceBusBroker.QueueName,
            DepthCacheDuration = TimeSpan.Zero,
            MaxRetries = 1,
        };
        var (client, administration) = ServiceBusJobQueue.CreateClients(sbOptions);
        var queue = Track(new ServiceBusJobQueue(client, administration, sbOptions, options, TimeProvider.System, ownsClient: true));
        await DrainAsync(client, SubQueue.None);
        await DrainAsync(client, SubQueue.DeadLetter);
        return queue;
    }

    protected override async ValueTask<IReadOnlyList<DeadLetter>> ReadDeadLettersAsync(IJobQueue queue)
    {
        await using var client = new ServiceBusClient(ServiceBusBroker.Connection);
        await using var receiver = client.CreateReceiver(ServiceBusBroker.QueueName, new ServiceBusReceiverOptions { SubQueue = SubQueue.DeadLetter });
        var letters = new List<DeadLetter>();
        long from = 1;
        while (true)
        {
            var page = await receiver.PeekMessagesAsync(100, from);
            if (page.Count == 0)
            {
                return letters;
            }

            letters.AddRange(page.Select(m => new DeadLetter(
                ServiceBusJobQueue.ToJob(m),
                m.DeadLetterErrorDescription ?? m.DeadLetterReason ?? "",
                m.DeliveryCount,
                m.EnqueuedTime)));
            from = page[^1].SequenceNumber + 1;
        }
    }

    /// <summary>Deletes what is receivable now (receive-and-delete); locked messages stay until their lock ends.</summary>
    private static async Task DrainAsync(ServiceBusClient client, SubQueue subQueue)
    {
        await using var receiver = client.CreateReceiver(ServiceBusBroker.QueueName, new ServiceBusReceiverOptions
        {
            ReceiveMode = ServiceBusReceiveMode.ReceiveAndDelete,
            SubQueue = subQueue,
        });
        while ((await receiver.ReceiveMessagesAsync(100, TimeSpan.FromMilliseconds(500))).Count > 0)
        {
        }
    }
}
