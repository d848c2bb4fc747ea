using System.Diagnostics.CodeAnalysis;
using Azure;
using Azure.Core;
using Azure.Messaging.ServiceBus;
using Azure.Messaging.ServiceBus.Administration;
using Microsoft.Extensions.Logging;

namespace ServerlessInference.Azure.Tests.Jobs;

// Recording subclasses of the SDK's clients: they override the virtual members the queue calls, as the SDK's mocking
// guidance intends (protected parameterless constructors, ServiceBusModelFactory for received messages).

public sealed class FakeServiceBusClient : ServiceBusClient
{
    public FakeSender Sender { get; } = new();

    public FakeReceiver Receiver { get; } = new();

    public string? SenderQueue { get; private set; }

    public string? ReceiverQueue { get; private set; }

    public ServiceBusReceiverOptions? ReceiverOptions { get; private set; }

    public bool Disposed { get; private set; }

    public override ServiceBusSender CreateSender(string queueOrTopicName)
    {
        SenderQueue = queueOrTopicName;
        return Sender;
    }

    public override ServiceBusReceiver CreateReceiver(string queueName, ServiceBusReceiverOptions options)
    {
        ReceiverQueue = queueName;
        ReceiverOptions = options;
        return Receiver;
    }

    public override ValueTask DisposeAsync()
    {
        Disposed = true;
        return ValueTask.CompletedTask;
    }
}

public sealed class FakeSender : ServiceBusSender
{
    public List<ServiceBusMessage> Sent { get; } = [];

    public Exception? Failure { get; set; }

    public bool Disposed { get; private set; }

    public override Task SendMessageAsync(ServiceBusMessage message, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (Failure is not null)
        {
            return Task.FromException(Failure);
        }

        Sent.Add(message);
        return Task.CompletedTask;
    }

    public override ValueTask DisposeAsync()
    {
        Disposed = true;
        return ValueTask.CompletedTask;
    }
}

public sealed class FakeReceiver : ServiceBusReceiver
{
    /// <summary>What successive receives return; an empty queue returns nothing, or waits for cancellation when
    /// <see cref="BlockWhenEmpty"/>.</summary>
    public Queue<IReadOnlyList<ServiceBusReceivedMessage>> Deliveries { get; } = new();

    public bool BlockWhenEmpty { get; set; }

    public List<(int MaxMessages, TimeSpan? MaxWait)> Receives { get; } = [];

    public List<ServiceBusReceivedMessage> Completed { get; } = [];

    public List<(ServiceBusReceivedMessage Message, IDictionary<string, object>? Properties)> Abandoned { get; } = [];

    public List<(ServiceBusReceivedMessage Message, string? Reason, string? Description)> DeadLettered { get; } = [];

    public List<ServiceBusReceivedMessage> Renewed { get; } = [];

    /// <summary>The queue's messages as a peek sees them, in sequence order.</summary>
    public List<ServiceBusReceivedMessage> Peekable { get; } = [];

    public List<(int MaxMessages, long? FromSequenceNumber)> Peeks { get; } = [];

    public Exception? ReceiveFailure { get; set; }

    public Exception? SettleFailure { get; set; }

    public Exception? RenewFailure { get; set; }

    public Exception? PeekFailure { get; set; }

    public bool Disposed { get; private set; }

    public override async Task<IReadOnlyList<ServiceBusReceivedMessage>> ReceiveMessagesAsync(int maxMessages, TimeSpan? maxWaitTime = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Receives.Add((maxMessages, maxWaitTime));
        if (ReceiveFailure is not null)
        {
            throw ReceiveFailure;
        }

        if (Deliveries.TryDequeue(out var batch))
        {
            Assert.True(batch.Count <= maxMessages, "the fake was asked for fewer messages than it holds");
            return batch;
        }

        if (BlockWhenEmpty)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        return [];
    }

    public override Task<IReadOnlyList<ServiceBusReceivedMessage>> PeekMessagesAsync(int maxMessages, long? fromSequenceNumber = null, CancellationToken cancellationToken = default)
    {
        Peeks.Add((maxMessages, fromSequenceNumber));
        if (PeekFailure is not null)
        {
            return Task.FromException<IReadOnlyList<ServiceBusReceivedMessage>>(PeekFailure);
        }

        IReadOnlyList<ServiceBusReceivedMessage> page = Peekable.Where(m => m.SequenceNumber >= (fromSequenceNumber ?? 1)).Take(maxMessages).ToList();
        return Task.FromResult(page);
    }

    public override Task CompleteMessageAsync(ServiceBusReceivedMessage message, CancellationToken cancellationToken = default) =>
        Settle(() => Completed.Add(message));

    public override Task AbandonMessageAsync(ServiceBusReceivedMessage message, IDictionary<string, object>? propertiesToModify = null, CancellationToken cancellationToken = default) =>
        Settle(() => Abandoned.Add((message, propertiesToModify)));

    public override Task DeadLetterMessageAsync(ServiceBusReceivedMessage message, string deadLetterReason, string? deadLetterErrorDescription = null, CancellationToken cancellationToken = default) =>
        Settle(() => DeadLettered.Add((message, deadLetterReason, deadLetterErrorDescription)));

    public override Task RenewMessageLockAsync(ServiceBusReceivedMessage message, CancellationToken cancellationToken = default)
    {
        if (RenewFailure is not null)
        {
            return Task.FromException(RenewFailure);
        }

        Renewed.Add(message);
        return Task.CompletedTask;
    }

    public override ValueTask DisposeAsync()
    {
        Disposed = true;
        return ValueTask.CompletedTask;
    }

    private Task Settle(Action record)
    {
        if (SettleFailure is not null)
        {
            return Task.FromException(SettleFailure);
        }

        record();
        return Task.CompletedTask;
    }
}

public sealed class FakeAdministration : ServiceBusAdministrationClient
{
    public QueueRuntimeProperties Runtime { get; set; } = ServiceBusModelFactory.QueueRuntimeProperties("jobs");

    public int QueueMaxDeliveryCount { get; set; } = 10;

    public Exception? Failure { get; set; }

    public List<string> RuntimeReads { get; } = [];

    public override Task<Response<QueueRuntimeProperties>> GetQueueRuntimePropertiesAsync(string name, CancellationToken cancellationToken = default)
    {
        RuntimeReads.Add(name);
        return Failure is not null
            ? Task.FromException<Response<QueueRuntimeProperties>>(Failure)
            : Task.FromResult(Response.FromValue(Runtime, new FakeResponse()));
    }

    public override Task<Response<QueueProperties>> GetQueueAsync(string name, CancellationToken cancellationToken = default)
    {
        var properties = ServiceBusModelFactory.QueueProperties(
            name, TimeSpan.FromMinutes(1), 1024, false, false, TimeSpan.FromHours(1), TimeSpan.MaxValue, true, TimeSpan.FromMinutes(10),
            QueueMaxDeliveryCount, true, EntityStatus.Active, "", "", "", false);
        return Task.FromResult(Response.FromValue(properties, new FakeResponse()));
    }
}

/// <summary>The raw HTTP response behind a <see cref="Response{T}"/>; the queue only reads the value.</summary>
public sealed class FakeResponse : Response
{
    public override int Status => 200;

    public override string ReasonPhrase => "OK";

    public override Stream? ContentStream { get; set; }

    public override string ClientRequestId { get; set; } = "";

    public override void Dispose()
    {
    }

    protected override bool ContainsHeader(string name) => false;

    protected override IEnumerable<HttpHeader> EnumerateHeaders() => [];

    protected override bool TryGetHeader(string name, [NotNullWhen(true)] out string? value)
    {
        value = null;
        return false;
    }

    protected override bool TryGetHeaderValues(string name, [NotNullWhen(true)] out IEnumerable<string>? values)
    {
        values = null;
        return false;
    }
}

/// <summary>Keeps what was logged, to check that something was said and said once.</summary>
public sealed class ListLogger<T> : ILogger<T>
{
    public List<(LogLevel Level, string Message)> Entries { get; } = [];

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Entries.Add((logLevel, formatter(state, exception)));
}
