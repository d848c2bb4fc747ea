using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Sockets;
using Azure.Core;
using Azure.Identity;
using Azure.Messaging.ServiceBus;
using Azure.Messaging.ServiceBus.Administration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessInference.Jobs;

namespace ServerlessInference.Azure.Jobs;

/// <summary>An <see cref="IJobQueue"/> on an Azure Service Bus queue (or the Service Bus emulator): peek-lock
/// delivery, lock renewal, the queue's own dead-letter sub-queue.</summary>
/// <remarks>
/// <para><b>Messages.</b> One job is one message: <c>MessageId</c> = the job id, <c>TimeToLive</c> = the time left
/// until the job's deadline plus <see cref="ServiceBusJobQueueOptions.ExpiryGrace"/> (at least 1 s), body = the request as
/// <see cref="InferenceJobCodec"/> encodes it (OIP JSON header, then raw tensors), <c>Subject</c> = the model. The
/// rest travels in <c>ApplicationProperties</c>: <c>si-model</c>, <c>si-version</c>, <c>si-submitted</c> and
/// <c>si-deadline</c> (UTC ticks, long), <c>si-header-length</c> (int, absent when the body is plain JSON),
/// <c>si-prefix</c> (<see cref="InferenceJob.PrefixKey"/>, absent when the job has none) and, after an abandon with an
/// error, <c>si-last-error</c>. A message that cannot be decoded is dead-lettered when received
/// (reason <c>InvalidJob</c>, the parse error as description) and never handed to a worker.</para>
/// <para><b>Routing.</b> One queue, delivered FIFO: a receive with a <see cref="JobPreference"/> ignores it, and
/// <see cref="InferenceJob.ModelQueueCapacity"/> and <see cref="QueueDepth.ByModel"/> are not kept (docs/routing.md says
/// why, and how a deployment routes with a queue per model group instead).</para>
/// <para><b>Leases.</b> A lease is the message's peek-lock: <see cref="JobLease.RenewAsync"/> renews the lock,
/// <see cref="JobLease.DeliveryCount"/> is the message's, and its duration is the queue's <c>LockDuration</c> (not
/// <c>Inference:Queue:LeaseDuration</c>); keep <c>Inference:Worker:LeaseRenewInterval</c> well under it. Abandoning
/// with an error writes it to <c>si-last-error</c>, which the next delivery reports as
/// <see cref="JobLease.LastError"/>. Dead-lettering uses the text up to the first ':' or ';' as the short
/// <c>DeadLetterReason</c> and the whole text as <c>DeadLetterErrorDescription</c>. A settlement that finds the lock
/// lost (it expired, the job is delivered again) is logged and ignored: the result store's
/// <see cref="IResultStore.TryStartAsync"/> and first-result-wins publish make the second run harmless.</para>
/// <para><b>Dead-lettering past the delivery count.</b> The worker dead-letters a job itself once its delivery count
/// exceeds <c>Inference:Queue:MaxDeliveryCount</c>, publishing the Failed status with the last error. The Service Bus
/// queue's own <c>MaxDeliveryCount</c> must therefore be <i>greater</i> than <c>Inference:Queue:MaxDeliveryCount</c>
/// (e.g. 10 against the default 5); otherwise Service Bus dead-letters the job first and its status stays Queued
/// until the deadline. The first depth read checks this and logs a warning when it does not hold.</para>
/// <para><b>Depth.</b> Service Bus counts a locked message as active and does not report locked messages apart.
/// Total = active + scheduled, from <see cref="ServiceBusAdministrationClient.GetQueueRuntimePropertiesAsync"/>;
/// <see cref="QueueDepth.InFlight"/> = the locks this process holds and has not settled (so a gateway or scaler
/// process, which holds none, reports every message as queued; the sum, which the scaler uses, is the same); Queued =
/// the rest. The total is cached for <see cref="ServiceBusJobQueueOptions.DepthCacheDuration"/>. Where the
/// administration endpoint cannot be used (the emulator without its admin port, an identity without the Manage right,
/// an endpoint that is down) the failure is logged once, and the total is counted by peeking at the queue (locked
/// messages included) up to <see cref="ServiceBusJobQueueOptions.DepthPeekLimit"/>, a lower bound beyond it; the
/// administration endpoint is tried again after <see cref="ServiceBusJobQueueOptions.AdministrationRetryInterval"/>.
/// When neither works, the depth call fails with <see cref="InferenceError.Unavailable"/>.</para>
/// <para><b>Capacity.</b> Service Bus has no job count limit. <c>Inference:Queue:Capacity</c> is enforced softly:
/// an enqueue is refused with <see cref="InferenceError.QueueFull"/> (429) when the (cached) total has reached it; a
/// queue at its size quota (<c>QuotaExceeded</c>) is refused the same way. While the depth cannot be read at all (an
/// identity with only the Data Sender role can neither read runtime properties nor peek) the check is skipped, with a
/// warning, for <see cref="ServiceBusJobQueueOptions.AdministrationRetryInterval"/>. Unreachable Service Bus
/// (communication problem, timeout, busy, refused credentials, missing queue) is <see cref="InferenceError.Unavailable"/>
/// (503), both with Retry-After.</para>
/// <para>Thread-safe; one instance per process. It owns one sender and one receiver (prefetch 0, so no lock ticks on
/// a message nobody asked for) and, when built by <see cref="Create"/>, the client; dispose it to abandon the locks it
/// still holds and close them.</para>
/// </remarks>
public sealed partial class ServiceBusJobQueue : IJobQueue, IAsyncDisposable
{
    /// <summary>Service Bus dead-letter reason of a message that is not a job.</summary>
    public const string InvalidJobReason = "InvalidJob";

    public const string ModelProperty = "si-model";
    public const string VersionProperty = "si-version";
    public const string SubmittedProperty = "si-submitted";
    public const string DeadlineProperty = "si-deadline";
    public const string HeaderLengthProperty = "si-header-length";
    public const string PrefixProperty = "si-prefix";
    public const string LastErrorProperty = "si-last-error";

    /// <summary>Content type of a job message: an OIP request with the binary tensor extension.</summary>
    public const string JobContentType = "application/vnd.serverless-inference.job";

    private const int MaxReasonLength = 128;
    private const int MaxDescriptionLength = 4096;
    private const int PeekPage = 250;

    private readonly ServiceBusClient _client;
    private readonly ServiceBusAdministrationClient? _administration;
    private readonly bool _ownsClient;
    private readonly ServiceBusSender _sender;
    private readonly ServiceBusReceiver _receiver;
    private readonly ServiceBusJobQueueOptions _options;
    private readonly JobQueueOptions _queueOptions;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<Lease, byte> _held = new();
    private readonly Lock _depthLock = new();
    private Task<long>? _refreshing;
    private long _cachedTotal = -1;
    private long _cachedAt;
    private long _administrationRetryAt;
    private int _administrationWarned;
    private int _queueChecked;
    private long _capacityPausedUntil;

    /// <summary>A queue over clients made elsewhere (tests pass subclasses of the SDK's clients).</summary>
    /// <param name="client">Creates the sender and the receiver; disposed with this queue only when <paramref name="ownsClient"/>.</param>
    /// <param name="administration">Reads the queue depth; null counts it by peeking.</param>
    public ServiceBusJobQueue(
        ServiceBusClient client,
        ServiceBusAdministrationClient? administration,
        ServiceBusJobQueueOptions options,
        JobQueueOptions queueOptions,
        TimeProvider timeProvider,
        ILogger<ServiceBusJobQueue>? logger = null,
        bool ownsClient = false)
    {
        _client = client;
        _administration = administration;
        _ownsClient = ownsClient;
        _options = options;
        _queueOptions = queueOptions;
        _time = timeProvider;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _sender = client.CreateSender(options.QueueName);
        _receiver = client.CreateReceiver(options.QueueName, new ServiceBusReceiverOptions
        {
            ReceiveMode = ServiceBusReceiveMode.PeekLock,
            PrefetchCount = 0,
        });
    }

    /// <summary>Builds the clients <paramref name="options"/> describe and a queue that owns them. Connects lazily:
    /// nothing is sent until the queue is first used.</summary>
    public static ServiceBusJobQueue Create(
        ServiceBusJobQueueOptions options,
        JobQueueOptions queueOptions,
        TimeProvider timeProvider,
        ILogger<ServiceBusJobQueue>? logger = null)
    {
        var (client, administration) = CreateClients(options);
        return new ServiceBusJobQueue(client, administration, options, queueOptions, timeProvider, logger, ownsClient: true);
    }

    /// <summary>The messaging and administration clients for <paramref name="options"/>: from the connection strings, or
    /// for the namespace with <c>DefaultAzureCredential</c> (honouring <see cref="ServiceBusJobQueueOptions.ManagedIdentityClientId"/>).</summary>
    public static (ServiceBusClient Client, ServiceBusAdministrationClient Administration) CreateClients(ServiceBusJobQueueOptions options)
    {
        var clientOptions = new ServiceBusClientOptions
        {
            Identifier = $"serverless-inference-{Environment.MachineName}-{Environment.ProcessId}",
            RetryOptions = new ServiceBusRetryOptions
            {
                Mode = ServiceBusRetryMode.Exponential,
                MaxRetries = options.MaxRetries,
                TryTimeout = options.TryTimeout,
                Delay = TimeSpan.FromMilliseconds(200),
                MaxDelay = TimeSpan.FromSeconds(2),
            },
        };
        var administrationOptions = new ServiceBusAdministrationClientOptions();
        administrationOptions.Retry.MaxRetries = options.MaxRetries;
        administrationOptions.Retry.NetworkTimeout = options.TryTimeout;
        administrationOptions.Retry.Delay = TimeSpan.FromMilliseconds(200);
        administrationOptions.Retry.MaxDelay = TimeSpan.FromSeconds(2);

        if (!string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            var administrationConnection = string.IsNullOrWhiteSpace(options.AdministrationConnectionString)
                ? options.ConnectionString
                : options.AdministrationConnectionString;
            return (new ServiceBusClient(options.ConnectionString.Trim(), clientOptions),
                new ServiceBusAdministrationClient(administrationConnection.Trim(), administrationOptions));
        }

        var fullyQualifiedNamespace = options.FullyQualifiedNamespace?.Trim()
            ?? throw new InvalidOperationException($"{ServiceBusJobQueueOptions.Section}:ConnectionString or {ServiceBusJobQueueOptions.Section}:FullyQualifiedNamespace is required");
        TokenCredential credential = new DefaultAzureCredential(new DefaultAzureCredentialOptions
        {
            ManagedIdentityClientId = string.IsNullOrWhiteSpace(options.ManagedIdentityClientId) ? null : options.ManagedIdentityClientId.Trim(),
        });
        return (new ServiceBusClient(fullyQualifiedNamespace, credential, clientOptions),
            new ServiceBusAdministrationClient(fullyQualifiedNamespace, credential, administrationOptions));
    }

    public int MaxDeliveryCount => _queueOptions.MaxDeliveryCount;

    public async ValueTask EnqueueAsync(InferenceJob job, CancellationToken cancellationToken)
    {
        if (await CapacityTotalAsync(cancellationToken).ConfigureAwait(false) >= _queueOptions.Capacity)
        {
            throw new InferenceException(InferenceError.QueueFull, $"the job queue is full ({_queueOptions.Capacity} jobs)")
            {
                RetryAfterSeconds = _queueOptions.RetryAfterSeconds,
            };
        }

        var message = ToMessage(job, _time.GetUtcNow(), _options.ExpiryGrace);
        try
        {
            await _sender.SendMessageAsync(message, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (Translate(ex, cancellationToken) is { } translated)
        {
            throw translated;
        }

        // Enqueues between two depth reads count toward the capacity too.
        lock (_depthLock)
        {
            if (_cachedTotal >= 0)
            {
                _cachedTotal++;
            }
        }
    }

    /// <summary>FIFO whatever <paramref name="preference"/> says: one Service Bus queue cannot choose among its messages
    /// without locking them (sessions would pin a model to one receiver at a time; see docs/routing.md).</summary>
    public ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, JobPreference preference, CancellationToken cancellationToken) =>
        ReceiveAsync(maxCount, maxWait, cancellationToken);

    public async ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCount, 1);
        var started = _time.GetTimestamp();
        var wait = maxWait;
        while (true)
        {
            IReadOnlyList<ServiceBusReceivedMessage> messages;
            try
            {
                messages = await _receiver.ReceiveMessagesAsync(maxCount, Longest(wait, _options.MinimumReceiveWait), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (Translate(ex, cancellationToken) is { } translated)
            {
                throw translated;
            }

            var leases = new List<JobLease>(messages.Count);
            foreach (var message in messages)
            {
                InferenceJob job;
                try
                {
                    job = ToJob(message);
                }
                catch (FormatException ex)
                {
                    // A message no worker can read would come back until Service Bus gives up on it: set it aside now.
                    await DeadLetterInvalidAsync(message, ex.Message).ConfigureAwait(false);
                    continue;
                }

                var lease = new Lease(this, message, job, LastErrorOf(message));
                _held.TryAdd(lease, 0);
                leases.Add(lease);
            }

            if (leases.Count > 0 || messages.Count == 0)
            {
                return leases;
            }

            // Every message was invalid: wait on for the rest of the window.
            wait = maxWait - _time.GetElapsedTime(started);
            if (wait <= TimeSpan.Zero)
            {
                return [];
            }
        }
    }

    public async ValueTask<QueueDepth> GetDepthAsync(CancellationToken cancellationToken)
    {
        var total = await GetTotalAsync(cancellationToken).ConfigureAwait(false);
        var inFlight = Math.Min(HeldLocks(), total);
        return new QueueDepth(total - inFlight, inFlight);
    }

    /// <summary>Abandons the locks this process still holds, so their jobs go to another worker at once instead of
    /// after the lock duration, then closes the links (and the client, when this queue owns it).</summary>
    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_held.Keys.Select(ReleaseAsync)).ConfigureAwait(false);

        try
        {
            await _receiver.DisposeAsync().ConfigureAwait(false);
            await _sender.DisposeAsync().ConfigureAwait(false);
            if (_ownsClient)
            {
                await _client.DisposeAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is ServiceBusException or SocketException or TimeoutException)
        {
            // Closing links on a broker that is gone; nothing is left to close.
            Log.CloseFailed(_logger, ex);
        }
    }

    private async Task ReleaseAsync(Lease lease)
    {
        try
        {
            await lease.AbandonAsync(null, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is InferenceException or ServiceBusException or ObjectDisposedException or InvalidOperationException)
        {
            // Service Bus is gone (or the link closed): the lock expires and the job comes back by itself.
            Log.SettleFailed(_logger, ex, "abandon", lease.Message.MessageId);
        }
    }

    /// <summary>The message that carries <paramref name="job"/>, sent at <paramref name="now"/>: it lives until the
    /// job's deadline plus <paramref name="expiryGrace"/>, and at least a second.</summary>
    public static ServiceBusMessage ToMessage(InferenceJob job, DateTimeOffset now, TimeSpan expiryGrace)
    {
        var encoded = InferenceJobCodec.Encode(job);
        var timeToLive = job.Deadline - now + expiryGrace;
        var message = new ServiceBusMessage(new BinaryData(encoded.Request))
        {
            MessageId = encoded.Id,
            ContentType = JobContentType,
            Subject = encoded.Model,
            TimeToLive = timeToLive < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : timeToLive,
        };
        message.ApplicationProperties[ModelProperty] = encoded.Model;
        message.ApplicationProperties[VersionProperty] = encoded.Version;
        message.ApplicationProperties[SubmittedProperty] = encoded.SubmittedUtcTicks;
        message.ApplicationProperties[DeadlineProperty] = encoded.DeadlineUtcTicks;
        if (encoded.HeaderLength is { } headerLength)
        {
            message.ApplicationProperties[HeaderLengthProperty] = headerLength;
        }

        if (encoded.PrefixKey is { } prefix)
        {
            message.ApplicationProperties[PrefixProperty] = prefix;
        }

        return message;
    }

    /// <summary>The job a received message carries.</summary>
    /// <exception cref="FormatException">The message is not a job.</exception>
    public static InferenceJob ToJob(ServiceBusReceivedMessage message)
    {
        var properties = message.ApplicationProperties;
        return InferenceJobCodec.Decode(new EncodedJob(
            message.MessageId,
            StringProperty(properties, ModelProperty),
            StringProperty(properties, VersionProperty),
            LongProperty(properties, SubmittedProperty),
            LongProperty(properties, DeadlineProperty),
            HeaderLengthOf(properties),
            message.Body.ToMemory(),
            properties.TryGetValue(PrefixProperty, out var prefix) ? prefix as string ?? throw new FormatException($"the message's '{PrefixProperty}' is not a string") : null));
    }

    /// <summary>The short dead-letter reason and the full description for a worker's <paramref name="reason"/>.</summary>
    public static (string Reason, string Description) DeadLetterText(string reason)
    {
        var text = string.IsNullOrWhiteSpace(reason) ? "dead-lettered" : reason.Trim();
        var cut = text.IndexOfAny([':', ';', '\n']);
        var head = (cut > 0 ? text[..cut] : text).Trim();
        return (Truncate(head, MaxReasonLength), Truncate(text, MaxDescriptionLength));
    }

    private static string? LastErrorOf(ServiceBusReceivedMessage message) =>
        message.ApplicationProperties.TryGetValue(LastErrorProperty, out var error) && error is string { Length: > 0 } text
            ? text
            : message.DeliveryCount > 1 ? JobLease.LeaseExpiredError : null;

    private static string StringProperty(IReadOnlyDictionary<string, object> properties, string name) =>
        properties.TryGetValue(name, out var value) && value is string text
            ? text
            : throw new FormatException($"the message has no string property '{name}'");

    private static long LongProperty(IReadOnlyDictionary<string, object> properties, string name) =>
        properties.TryGetValue(name, out var value) && value is long or int
            ? Convert.ToInt64(value, CultureInfo.InvariantCulture)
            : throw new FormatException($"the message has no integer property '{name}'");

    private static int? HeaderLengthOf(IReadOnlyDictionary<string, object> properties)
    {
        if (!properties.ContainsKey(HeaderLengthProperty))
        {
            return null;
        }

        var length = LongProperty(properties, HeaderLengthProperty);
        return length is >= 0 and <= int.MaxValue
            ? (int)length
            : throw new FormatException($"the message's '{HeaderLengthProperty}' is out of range ({length})");
    }

    private static string Truncate(string text, int length) => text.Length <= length ? text : text[..(length - 1)] + "…";

    private static TimeSpan Longest(TimeSpan a, TimeSpan b) => a > b ? a : b;

    private InferenceException? Translate(Exception exception, CancellationToken cancellationToken) =>
        exception is OperationCanceledException && cancellationToken.IsCancellationRequested
            ? null
            : ServiceBusFailures.Translate(exception, _options.QueueName, _queueOptions.RetryAfterSeconds, _options.UnavailableRetryAfterSeconds);

    /// <summary>The total for the capacity check, or null (no check) while the depth cannot be read: an identity
    /// that may only send can still enqueue, and a broker that is down fails the send itself.</summary>
    private async ValueTask<long?> CapacityTotalAsync(CancellationToken cancellationToken)
    {
        if (_time.GetTimestamp() < Interlocked.Read(ref _capacityPausedUntil))
        {
            return null;
        }

        try
        {
            return await GetTotalAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (InferenceException ex) when (ex.Error == InferenceError.Unavailable)
        {
            Interlocked.Exchange(ref _capacityPausedUntil, _time.GetTimestamp() + (long)(_options.AdministrationRetryInterval.TotalSeconds * _time.TimestampFrequency));
            Log.CapacityUnchecked(_logger, ex, _queueOptions.Capacity);
            return null;
        }
    }

    private async ValueTask DeadLetterInvalidAsync(ServiceBusReceivedMessage message, string error)
    {
        Log.InvalidJob(_logger, message.MessageId, message.SequenceNumber, error);
        try
        {
            await _receiver.DeadLetterMessageAsync(message, InvalidJobReason, Truncate(error, MaxDescriptionLength), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ServiceBusException or IOException or SocketException or TimeoutException or UnauthorizedAccessException)
        {
            // It comes back when its lock expires and is set aside then; a worker never sees it.
            Log.SettleFailed(_logger, ex, "dead-letter", message.MessageId);
        }
    }

    /// <summary>Locks this process holds and has not settled, dropping those that have expired.</summary>
    private long HeldLocks()
    {
        var now = _time.GetUtcNow();
        long held = 0;
        foreach (var lease in _held.Keys)
        {
            if (lease.LockedUntil > now)
            {
                held++;
            }
            else
            {
                _held.TryRemove(lease, out _);
            }
        }

        return held;
    }

    /// <summary>Active + scheduled messages, cached; one read at a time, shared by the callers waiting for it.</summary>
    private async ValueTask<long> GetTotalAsync(CancellationToken cancellationToken)
    {
        Task<long> refreshing;
        lock (_depthLock)
        {
            if (_cachedTotal >= 0 && _time.GetElapsedTime(_cachedAt) < _options.DepthCacheDuration)
            {
                return _cachedTotal;
            }

            if (_refreshing is null || _refreshing.IsCompleted)
            {
                _refreshing = ReadTotalAsync();
            }

            refreshing = _refreshing;
        }

        return await refreshing.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task<long> ReadTotalAsync()
    {
        var total = await ReadAdministrationTotalAsync().ConfigureAwait(false) ?? await PeekTotalAsync().ConfigureAwait(false);
        lock (_depthLock)
        {
            _cachedTotal = total;
            _cachedAt = _time.GetTimestamp();
        }

        return total;
    }

    /// <summary>The total from the queue's runtime properties, or null when the administration endpoint cannot be used.</summary>
    private async ValueTask<long?> ReadAdministrationTotalAsync()
    {
        if (_administration is null || _time.GetTimestamp() < Interlocked.Read(ref _administrationRetryAt))
        {
            return null;
        }

        try
        {
            var properties = (await _administration.GetQueueRuntimePropertiesAsync(_options.QueueName, CancellationToken.None).ConfigureAwait(false)).Value;
            if (Interlocked.Exchange(ref _administrationWarned, 0) == 1)
            {
                Log.AdministrationBack(_logger, _options.QueueName);
            }

            await CheckQueueOnceAsync(_administration).ConfigureAwait(false);
            return properties.ActiveMessageCount + properties.ScheduledMessageCount;
        }
        catch (Exception ex) when (ex is not ObjectDisposedException)
        {
            Interlocked.Exchange(ref _administrationRetryAt, _time.GetTimestamp() + (long)(_options.AdministrationRetryInterval.TotalSeconds * _time.TimestampFrequency));
            if (Interlocked.Exchange(ref _administrationWarned, 1) == 0)
            {
                Log.AdministrationUnavailable(_logger, ex, _options.QueueName, _options.DepthPeekLimit);
            }

            return null;
        }
    }

    /// <summary>Warns once when the queue's own MaxDeliveryCount would dead-letter jobs before the worker can.</summary>
    private async ValueTask CheckQueueOnceAsync(ServiceBusAdministrationClient administration)
    {
        if (Interlocked.Exchange(ref _queueChecked, 1) == 1)
        {
            return;
        }

        try
        {
            var queue = (await administration.GetQueueAsync(_options.QueueName, CancellationToken.None).ConfigureAwait(false)).Value;
            if (queue.MaxDeliveryCount <= _queueOptions.MaxDeliveryCount)
            {
                Log.DeliveryCountTooLow(_logger, _options.QueueName, queue.MaxDeliveryCount, _queueOptions.MaxDeliveryCount);
            }
        }
        catch (Exception ex) when (ex is not ObjectDisposedException)
        {
            Log.QueueCheckFailed(_logger, ex, _options.QueueName);
        }
    }

    /// <summary>Counts the queue's messages by peeking (locked ones included), up to the peek limit.</summary>
    private async Task<long> PeekTotalAsync()
    {
        long count = 0;
        long from = 1;
        try
        {
            while (count < _options.DepthPeekLimit)
            {
                var page = await _receiver.PeekMessagesAsync((int)Math.Min(PeekPage, _options.DepthPeekLimit - count), from, CancellationToken.None).ConfigureAwait(false);
                if (page.Count == 0)
                {
                    break;
                }

                count += page.Count;
                from = page[^1].SequenceNumber + 1;
            }
        }
        catch (Exception ex) when (Translate(ex, CancellationToken.None) is { } translated)
        {
            throw translated;
        }

        return count;
    }

    private async ValueTask SettleAsync(Lease lease, string action, Func<ServiceBusReceiver, ServiceBusReceivedMessage, CancellationToken, Task> settle, CancellationToken cancellationToken)
    {
        if (!lease.TryBeginSettle())
        {
            return;
        }

        try
        {
            await settle(_receiver, lease.Message, cancellationToken).ConfigureAwait(false);
            _held.TryRemove(lease, out _);
        }
        catch (Exception ex) when (ServiceBusFailures.IsLockLost(ex))
        {
            // The lock expired: Service Bus delivers the job again, and the result store keeps the first result.
            Log.LockLost(_logger, action, lease.Job.Id);
            _held.TryRemove(lease, out _);
        }
        catch (Exception ex)
        {
            // Not settled: the lease may be settled again (a retry), or it expires and the job comes back.
            lease.SettleFailed();
            if (Translate(ex, cancellationToken) is { } translated)
            {
                throw translated;
            }

            throw;
        }
    }

    private async ValueTask RenewAsync(Lease lease, CancellationToken cancellationToken)
    {
        if (lease.IsSettled)
        {
            return;
        }

        try
        {
            await _receiver.RenewMessageLockAsync(lease.Message, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ServiceBusFailures.IsLockLost(ex))
        {
            Log.LockLost(_logger, "renew", lease.Job.Id);
        }
        catch (Exception ex) when (Translate(ex, cancellationToken) is { } translated)
        {
            throw translated;
        }
    }

    /// <summary>One delivery: the locked message and the job it carries.</summary>
    private sealed class Lease(ServiceBusJobQueue queue, ServiceBusReceivedMessage message, InferenceJob job, string? lastError) : JobLease
    {
        private int _settled;

        public ServiceBusReceivedMessage Message => message;

        public DateTimeOffset LockedUntil => message.LockedUntil;

        public bool IsSettled => Volatile.Read(ref _settled) == 1;

        public override InferenceJob Job => job;

        public override int DeliveryCount => message.DeliveryCount;

        public override string? LastError => lastError;

        public bool TryBeginSettle() => Interlocked.Exchange(ref _settled, 1) == 0;

        public void SettleFailed() => Volatile.Write(ref _settled, 0);

        public override ValueTask CompleteAsync(CancellationToken cancellationToken) =>
            queue.SettleAsync(this, "complete", static (r, m, ct) => r.CompleteMessageAsync(m, ct), cancellationToken);

        public override ValueTask AbandonAsync(string? error, CancellationToken cancellationToken)
        {
            // Without a new error the earlier one stays on the message.
            Dictionary<string, object>? properties = string.IsNullOrWhiteSpace(error)
                ? null
                : new() { [LastErrorProperty] = Truncate(error, MaxDescriptionLength) };
            return queue.SettleAsync(this, "abandon", (r, m, ct) => r.AbandonMessageAsync(m, properties, ct), cancellationToken);
        }

        public override ValueTask DeadLetterAsync(string reason, CancellationToken cancellationToken)
        {
            var (shortReason, description) = DeadLetterText(reason);
            return queue.SettleAsync(this, "dead-letter", (r, m, ct) => r.DeadLetterMessageAsync(m, shortReason, description, ct), cancellationToken);
        }

        public override ValueTask RenewAsync(CancellationToken cancellationToken) => queue.RenewAsync(this, cancellationToken);

        public override string ToString() =>
            string.Create(CultureInfo.InvariantCulture, $"{message.MessageId} (sequence {message.SequenceNumber}, delivery {message.DeliveryCount})");
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "Service Bus message {MessageId} (sequence {SequenceNumber}) is not a job; it was dead-lettered: {Error}")]
        public static partial void InvalidJob(ILogger logger, string messageId, long sequenceNumber, string error);

        [LoggerMessage(2, LogLevel.Warning, "Could not {Action} Service Bus message {MessageId}")]
        public static partial void SettleFailed(ILogger logger, Exception exception, string action, string messageId);

        [LoggerMessage(3, LogLevel.Warning, "The lock of job {JobId} was lost before {Action}; Service Bus delivers it again")]
        public static partial void LockLost(ILogger logger, string action, string jobId);

        [LoggerMessage(4, LogLevel.Warning, "The Service Bus administration endpoint cannot read queue '{Queue}' (no Manage right, or not served, e.g. the emulator without its admin port); the depth is counted by peeking, up to {PeekLimit} messages")]
        public static partial void AdministrationUnavailable(ILogger logger, Exception exception, string queue, int peekLimit);

        [LoggerMessage(5, LogLevel.Information, "The Service Bus administration endpoint answers again for queue '{Queue}'")]
        public static partial void AdministrationBack(ILogger logger, string queue);

        [LoggerMessage(6, LogLevel.Warning, "Service Bus queue '{Queue}' has MaxDeliveryCount {QueueMax}, not more than Inference:Queue:MaxDeliveryCount {WorkerMax}: Service Bus dead-letters failing jobs before a worker can mark them Failed")]
        public static partial void DeliveryCountTooLow(ILogger logger, string queue, int queueMax, int workerMax);

        [LoggerMessage(7, LogLevel.Debug, "Could not read the properties of Service Bus queue '{Queue}'")]
        public static partial void QueueCheckFailed(ILogger logger, Exception exception, string queue);

        [LoggerMessage(9, LogLevel.Warning, "The job queue's depth cannot be read, so Inference:Queue:Capacity ({Capacity}) is not enforced for a while")]
        public static partial void CapacityUnchecked(ILogger logger, Exception exception, int capacity);

        [LoggerMessage(8, LogLevel.Debug, "Closing the Service Bus links failed")]
        public static partial void CloseFailed(ILogger logger, Exception exception);
    }
}
