using System.Net.Sockets;
using Azure;
using Azure.Messaging.ServiceBus;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Azure.Jobs;
using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Testing.Contracts;

namespace ServerlessInference.Azure.Tests.Jobs;

/// <summary>The mapping between jobs and Service Bus calls, against recording subclasses of the SDK's clients.</summary>
public sealed class ServiceBusJobQueueTests : IAsyncLifetime
{
    private static readonly DateTimeOffset Start = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private readonly FakeServiceBusClient _client = new();
    private readonly FakeAdministration _administration = new();
    private readonly FakeTimeProvider _time = new(Start);
    private readonly ListLogger<ServiceBusJobQueue> _logger = new();
    private readonly List<ServiceBusJobQueue> _queues = [];
    private long _sequence;

    private FakeReceiver Receiver => _client.Receiver;

    private ServiceBusJobQueue Queue(ServiceBusJobQueueOptions? options = null, JobQueueOptions? queueOptions = null, bool administration = true)
    {
        var queue = new ServiceBusJobQueue(
            _client,
            administration ? _administration : null,
            options ?? new ServiceBusJobQueueOptions { QueueName = "jobs" },
            queueOptions ?? new JobQueueOptions { Capacity = 100, MaxDeliveryCount = 3, RetryAfterSeconds = 2 },
            _time,
            _logger);
        _queues.Add(queue);
        return queue;
    }

    private InferenceJob NewJob(float seed = 1) => ContractJobs.Job(_time.GetUtcNow(), seed);

    /// <summary>What the broker hands back for a sent message on its <paramref name="deliveryCount"/>-th delivery.</summary>
    private ServiceBusReceivedMessage Delivered(ServiceBusMessage sent, int deliveryCount = 1, IDictionary<string, object>? modified = null, TimeSpan? lockFor = null)
    {
        var properties = new Dictionary<string, object>(sent.ApplicationProperties);
        foreach (var (key, value) in modified ?? new Dictionary<string, object>())
        {
            properties[key] = value;
        }

        return ServiceBusModelFactory.ServiceBusReceivedMessage(
            body: sent.Body,
            messageId: sent.MessageId,
            contentType: sent.ContentType,
            subject: sent.Subject,
            timeToLive: sent.TimeToLive,
            properties: properties,
            lockTokenGuid: Guid.NewGuid(),
            deliveryCount: deliveryCount,
            lockedUntil: _time.GetUtcNow() + (lockFor ?? TimeSpan.FromMinutes(1)),
            sequenceNumber: ++_sequence);
    }

    private async Task<ServiceBusMessage> SendAsync(ServiceBusJobQueue queue, InferenceJob job)
    {
        await queue.EnqueueAsync(job, default);
        return _client.Sender.Sent[^1];
    }

    private async Task<JobLease> ReceiveOneAsync(ServiceBusJobQueue queue, ServiceBusReceivedMessage message)
    {
        Receiver.Deliveries.Enqueue([message]);
        return Assert.Single(await queue.ReceiveAsync(1, TimeSpan.FromSeconds(1), default));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var queue in _queues)
        {
            await queue.DisposeAsync();
        }
    }

    [Fact]
    public async Task EnqueueAsync_Job_SendsOneMessageNamedAfterTheJobLivingUntilTheDeadline()
    {
        var queue = Queue(new ServiceBusJobQueueOptions { QueueName = "inference", ExpiryGrace = TimeSpan.FromSeconds(30) });
        var job = NewJob();

        var sent = await SendAsync(queue, job);

        Assert.Equal("inference", _client.SenderQueue);
        Assert.Equal(job.Id, sent.MessageId);
        Assert.Equal(job.Deadline - Start + TimeSpan.FromSeconds(30), sent.TimeToLive);
        Assert.Equal(ServiceBusJobQueue.JobContentType, sent.ContentType);
        Assert.Equal(job.Model, sent.Subject);
        Assert.Equal(job.Model, sent.ApplicationProperties[ServiceBusJobQueue.ModelProperty]);
        Assert.Equal(job.Version, sent.ApplicationProperties[ServiceBusJobQueue.VersionProperty]);
        Assert.Equal(job.SubmittedAt.UtcTicks, sent.ApplicationProperties[ServiceBusJobQueue.SubmittedProperty]);
        Assert.Equal(job.Deadline.UtcTicks, sent.ApplicationProperties[ServiceBusJobQueue.DeadlineProperty]);
        Assert.IsType<int>(sent.ApplicationProperties[ServiceBusJobQueue.HeaderLengthProperty]);
        Assert.False(sent.ApplicationProperties.ContainsKey(ServiceBusJobQueue.PrefixProperty));
    }

    [Fact]
    public async Task ReceiveAsync_JobWithPrefixKey_CarriesItAndDeliversFifoWhateverThePreference()
    {
        var queue = Queue();
        var plain = NewJob();
        var job = ContractJobs.Job(Start, model: "lm");
        var prefixed = new InferenceJob
        {
            Id = job.Id,
            Model = job.Model,
            Version = job.Version,
            Request = job.Request,
            SubmittedAt = job.SubmittedAt,
            Deadline = job.Deadline,
            PrefixKey = "3fa9",
        };
        var sentPlain = await SendAsync(queue, plain);
        var sentPrefixed = await SendAsync(queue, prefixed);
        Assert.Equal("3fa9", sentPrefixed.ApplicationProperties[ServiceBusJobQueue.PrefixProperty]);

        Receiver.Deliveries.Enqueue([Delivered(sentPlain), Delivered(sentPrefixed)]);
        var leases = await queue.ReceiveAsync(2, TimeSpan.FromSeconds(1), new JobPreference { Warm = ["lm#3fa9"], WarmElsewhere = new HashSet<string> { plain.AffinityKey } }, default);

        Assert.Equal([plain.Id, prefixed.Id], leases.Select(l => l.Job.Id));
        Assert.Null(leases[0].Job.PrefixKey);
        Assert.Equal("3fa9", leases[1].Job.PrefixKey);
        Assert.Equal("lm#3fa9", leases[1].Job.AffinityKey);
    }

    [Fact]
    public async Task EnqueueAsync_DeadlineAlreadyPassed_LivesAtLeastOneSecond()
    {
        var queue = Queue(new ServiceBusJobQueueOptions { ExpiryGrace = TimeSpan.Zero });
        var job = ContractJobs.Job(Start - TimeSpan.FromMinutes(20), deadline: TimeSpan.FromMinutes(10));

        var sent = await SendAsync(queue, job);

        Assert.Equal(TimeSpan.FromSeconds(1), sent.TimeToLive);
    }

    [Fact]
    public async Task EnqueueAsync_ThenReceive_DecodesTheSameRequest()
    {
        var queue = Queue();
        var job = new InferenceJob
        {
            Id = InferenceJob.NewId(),
            Model = "resnet",
            Version = "3",
            SubmittedAt = Start,
            Deadline = Start + TimeSpan.FromMinutes(1),
            Request = new InferenceRequest
            {
                Id = "client-7",
                Parameters = new() { ["priority"] = 2L },
                Inputs =
                [
                    InferTensor.Create("image", [2, 3], new[] { 0.5f, -1.25f, 3e-8f, float.MaxValue, 0f, 42f }),
                    InferTensor.Create("ids", [3], new[] { long.MinValue, 0L, long.MaxValue }),
                    InferTensor.CreateBytes("text", [2], [[0x68, 0x69], [0x00, 0xff, 0x7f]]),
                ],
                Outputs = [new RequestedOutput { Name = "logits" }],
            },
        };

        var sent = await SendAsync(queue, job);
        var got = (await ReceiveOneAsync(queue, Delivered(sent))).Job;

        Assert.Equal((job.Id, job.Model, job.Version, job.SubmittedAt, job.Deadline), (got.Id, got.Model, got.Version, got.SubmittedAt, got.Deadline));
        Assert.Equal("client-7", got.Request.Id);
        Assert.Equal(2L, Convert.ToInt64(got.Request.Parameters!["priority"], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(["image", "ids", "text"], got.Request.Inputs.Select(i => i.Name));
        Assert.Equal(job.Request.Inputs[0].AsSpan<float>().ToArray(), got.Request.Inputs[0].AsSpan<float>().ToArray());
        Assert.Equal(new long[] { 2, 3 }, got.Request.Inputs[0].Shape);
        Assert.Equal(job.Request.Inputs[1].AsSpan<long>().ToArray(), got.Request.Inputs[1].AsSpan<long>().ToArray());
        Assert.Equal(TensorDatatype.Bytes, got.Request.Inputs[2].Datatype);
        Assert.Equal(job.Request.Inputs[2].BytesData, got.Request.Inputs[2].BytesData);
        Assert.Equal("logits", Assert.Single(got.Request.Outputs!).Name);
    }

    [Fact]
    public async Task ReceiveAsync_MessagesWaiting_ReturnsUpToMaxAsPeekLockLeases()
    {
        var queue = Queue();
        var jobs = Enumerable.Range(0, 3).Select(i => NewJob(i)).ToList();
        var sent = new List<ServiceBusMessage>();
        foreach (var job in jobs)
        {
            sent.Add(await SendAsync(queue, job));
        }

        Receiver.Deliveries.Enqueue([Delivered(sent[0]), Delivered(sent[1], deliveryCount: 4), Delivered(sent[2])]);
        var leases = await queue.ReceiveAsync(8, TimeSpan.FromSeconds(2), default);

        Assert.Equal(ServiceBusReceiveMode.PeekLock, _client.ReceiverOptions!.ReceiveMode);
        Assert.Equal(0, _client.ReceiverOptions.PrefetchCount);
        Assert.Equal((8, (TimeSpan?)TimeSpan.FromSeconds(2)), Assert.Single(Receiver.Receives));
        Assert.Equal(jobs.Select(j => j.Id), leases.Select(l => l.Job.Id));
        Assert.Equal([1, 4, 1], leases.Select(l => l.DeliveryCount));
        Assert.Null(leases[0].LastError);
        Assert.Equal(JobLease.LeaseExpiredError, leases[1].LastError);
        Assert.Contains("lease expired", leases[1].LastError);
    }

    [Fact]
    public async Task ReceiveAsync_NoWait_AsksServiceBusForTheMinimumWait()
    {
        var queue = Queue(new ServiceBusJobQueueOptions { MinimumReceiveWait = TimeSpan.FromMilliseconds(250) });

        Assert.Empty(await queue.ReceiveAsync(4, TimeSpan.Zero, default));

        Assert.Equal(TimeSpan.FromMilliseconds(250), Assert.Single(Receiver.Receives).MaxWait);
    }

    [Fact]
    public async Task ReceiveAsync_InvalidMessage_IsDeadLetteredAsInvalidJobAndNotReturned()
    {
        var queue = Queue();
        var good = await SendAsync(queue, NewJob());
        var foreign = ServiceBusModelFactory.ServiceBusReceivedMessage(
            body: BinaryData.FromString("{\"hello\":1}"), messageId: "foreign", lockTokenGuid: Guid.NewGuid(), deliveryCount: 1,
            lockedUntil: Start.AddMinutes(1), sequenceNumber: ++_sequence);
        var corrupt = Delivered(new ServiceBusMessage(BinaryData.FromString("not json at all")) { MessageId = "corrupt" }, modified: good.ApplicationProperties.ToDictionary());

        Receiver.Deliveries.Enqueue([foreign, Delivered(good), corrupt]);
        var leases = await queue.ReceiveAsync(3, TimeSpan.FromSeconds(1), default);

        Assert.Equal(good.MessageId, Assert.Single(leases).Job.Id);
        Assert.Equal(["foreign", "corrupt"], Receiver.DeadLettered.Select(d => d.Message.MessageId));
        Assert.All(Receiver.DeadLettered, d => Assert.Equal(ServiceBusJobQueue.InvalidJobReason, d.Reason));
        Assert.Contains(ServiceBusJobQueue.ModelProperty, Receiver.DeadLettered[0].Description);
        Assert.Contains("not a valid inference request", Receiver.DeadLettered[1].Description);
        Assert.Contains(_logger.Entries, e => e.Level == LogLevel.Error && e.Message.Contains("foreign", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ReceiveAsync_OnlyInvalidMessages_ReceivesAgainWithinTheWait()
    {
        var queue = Queue();
        var good = await SendAsync(queue, NewJob());
        var foreign = ServiceBusModelFactory.ServiceBusReceivedMessage(body: BinaryData.FromString("x"), messageId: "foreign", lockTokenGuid: Guid.NewGuid(), deliveryCount: 1, sequenceNumber: ++_sequence);
        Receiver.Deliveries.Enqueue([foreign]);
        Receiver.Deliveries.Enqueue([Delivered(good)]);

        var lease = Assert.Single(await queue.ReceiveAsync(2, TimeSpan.FromSeconds(5), default));

        Assert.Equal(good.MessageId, lease.Job.Id);
        Assert.Equal(2, Receiver.Receives.Count);
    }

    [Fact]
    public async Task CompleteAsync_CompletesTheMessageOnce()
    {
        var queue = Queue();
        var lease = await ReceiveOneAsync(queue, Delivered(await SendAsync(queue, NewJob())));

        await lease.CompleteAsync(default);
        await lease.CompleteAsync(default);
        await lease.AbandonAsync("late", default);
        await lease.DeadLetterAsync("late", default);

        Assert.Single(Receiver.Completed);
        Assert.Empty(Receiver.Abandoned);
        Assert.Empty(Receiver.DeadLettered);
    }

    [Fact]
    public async Task AbandonAsync_WithError_CarriesItToTheNextDelivery()
    {
        var queue = Queue();
        var sent = await SendAsync(queue, NewJob());
        var lease = await ReceiveOneAsync(queue, Delivered(sent));

        await lease.AbandonAsync("engine blew up", default);

        var (message, properties) = Assert.Single(Receiver.Abandoned);
        Assert.Equal(sent.MessageId, message.MessageId);
        Assert.Equal("engine blew up", properties![ServiceBusJobQueue.LastErrorProperty]);
        var again = await ReceiveOneAsync(queue, Delivered(sent, deliveryCount: 2, modified: properties));
        Assert.Equal(2, again.DeliveryCount);
        Assert.Equal("engine blew up", again.LastError);
    }

    [Fact]
    public async Task AbandonAsync_WithoutError_LeavesTheEarlierOne()
    {
        var queue = Queue();
        var sent = await SendAsync(queue, NewJob());
        var lease = await ReceiveOneAsync(queue, Delivered(sent, deliveryCount: 2, modified: new Dictionary<string, object> { [ServiceBusJobQueue.LastErrorProperty] = "first failure" }));

        await lease.AbandonAsync(null, default);

        Assert.Equal("first failure", lease.LastError);
        Assert.Null(Assert.Single(Receiver.Abandoned).Properties);
    }

    [Fact]
    public async Task DeadLetterAsync_WorkerReason_ShortReasonAndFullDescription()
    {
        var queue = Queue();
        var lease = await ReceiveOneAsync(queue, Delivered(await SendAsync(queue, NewJob()), deliveryCount: 4));
        const string reason = "dead-lettered after 3 deliveries (max 3); last error: injected engine fault";

        await lease.DeadLetterAsync(reason, default);

        var dead = Assert.Single(Receiver.DeadLettered);
        Assert.Equal("dead-lettered after 3 deliveries (max 3)", dead.Reason);
        Assert.Equal(reason, dead.Description);
    }

    [Theory]
    [InlineData("poison", "poison", "poison")]
    [InlineData("  ", "dead-lettered", "dead-lettered")]
    [InlineData("model failed: shape mismatch", "model failed", "model failed: shape mismatch")]
    public void DeadLetterText_Reason_SplitsAtTheFirstSeparator(string reason, string expectedReason, string expectedDescription)
    {
        Assert.Equal((expectedReason, expectedDescription), ServiceBusJobQueue.DeadLetterText(reason));
    }

    [Fact]
    public void DeadLetterText_LongReason_IsTruncatedToWhatServiceBusShows()
    {
        var (reason, description) = ServiceBusJobQueue.DeadLetterText(new string('x', 10_000));

        Assert.Equal(128, reason.Length);
        Assert.Equal(4096, description.Length);
    }

    [Fact]
    public async Task RenewAsync_RenewsTheMessageLock()
    {
        var queue = Queue();
        var lease = await ReceiveOneAsync(queue, Delivered(await SendAsync(queue, NewJob())));

        await lease.RenewAsync(default);
        await lease.CompleteAsync(default);
        await lease.RenewAsync(default);

        Assert.Equal(lease.Job.Id, Assert.Single(Receiver.Renewed).MessageId);
    }

    [Fact]
    public async Task CompleteAsync_LockLost_IsLoggedAndIgnored()
    {
        var queue = Queue();
        var lease = await ReceiveOneAsync(queue, Delivered(await SendAsync(queue, NewJob())));
        Receiver.SettleFailure = new ServiceBusException("lock lost", ServiceBusFailureReason.MessageLockLost);
        Receiver.RenewFailure = Receiver.SettleFailure;

        await lease.RenewAsync(default);
        await lease.CompleteAsync(default);

        Assert.Equal(2, _logger.Entries.Count(e => e.Level == LogLevel.Warning && e.Message.Contains("lock of job", StringComparison.Ordinal)));
        _time.Advance(TimeSpan.FromSeconds(3));
        Assert.Equal(new QueueDepth(0, 0), await queue.GetDepthAsync(default));
    }

    [Fact]
    public async Task AbandonAsync_ServiceBusUnreachable_ThrowsUnavailableAndMayBeRetried()
    {
        var queue = Queue();
        var lease = await ReceiveOneAsync(queue, Delivered(await SendAsync(queue, NewJob())));
        Receiver.SettleFailure = new ServiceBusException("down", ServiceBusFailureReason.ServiceCommunicationProblem);

        var ex = await Assert.ThrowsAsync<InferenceException>(() => lease.AbandonAsync("boom", default).AsTask());
        Receiver.SettleFailure = null;
        await lease.AbandonAsync("boom", default);

        Assert.Equal(InferenceError.Unavailable, ex.Error);
        Assert.Single(Receiver.Abandoned);
    }

    [Fact]
    public async Task EnqueueAsync_QuotaExceeded_ThrowsQueueFullWithRetryAfter()
    {
        var queue = Queue();
        _client.Sender.Failure = new ServiceBusException("quota", ServiceBusFailureReason.QuotaExceeded);

        var ex = await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(NewJob(), default).AsTask());

        Assert.Equal(InferenceError.QueueFull, ex.Error);
        Assert.Equal(2, ex.RetryAfterSeconds);
    }

    [Fact]
    public async Task EnqueueAsync_MessageTooLarge_ThrowsPayloadTooLarge()
    {
        var queue = Queue();
        _client.Sender.Failure = new ServiceBusException("too big", ServiceBusFailureReason.MessageSizeExceeded);

        var ex = await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(NewJob(), default).AsTask());

        Assert.Equal(InferenceError.PayloadTooLarge, ex.Error);
    }

    public static TheoryData<Exception> Outages() => new()
    {
        new ServiceBusException("no route", ServiceBusFailureReason.ServiceCommunicationProblem),
        new ServiceBusException("slow", ServiceBusFailureReason.ServiceTimeout),
        new ServiceBusException("throttled", ServiceBusFailureReason.ServiceBusy),
        new SocketException((int)SocketError.ConnectionRefused),
        new TimeoutException("timed out"),
        new UnauthorizedAccessException("bad key"),
        new ServiceBusException("gone", ServiceBusFailureReason.MessagingEntityNotFound),
    };

    [Theory]
    [MemberData(nameof(Outages))]
    public async Task EnqueueAsync_ServiceBusUnreachable_ThrowsUnavailableWithRetryAfter(Exception failure)
    {
        var queue = Queue(new ServiceBusJobQueueOptions { UnavailableRetryAfterSeconds = 4 });
        _client.Sender.Failure = failure;

        var ex = await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(NewJob(), default).AsTask());

        Assert.Equal(InferenceError.Unavailable, ex.Error);
        Assert.Equal(4, ex.RetryAfterSeconds);
        Assert.Same(failure, ex.InnerException);
    }

    [Fact]
    public async Task ReceiveAsync_ServiceBusUnreachable_ThrowsUnavailable()
    {
        var queue = Queue();
        Receiver.ReceiveFailure = new ServiceBusException("no route", ServiceBusFailureReason.ServiceCommunicationProblem);

        var ex = await Assert.ThrowsAsync<InferenceException>(() => queue.ReceiveAsync(1, TimeSpan.FromSeconds(1), default).AsTask());

        Assert.Equal(InferenceError.Unavailable, ex.Error);
        Assert.Equal(1, ex.RetryAfterSeconds);
    }

    [Fact]
    public async Task ReceiveAsync_Cancelled_ThrowsOperationCanceled()
    {
        var queue = Queue();
        Receiver.BlockWhenEmpty = true;
        using var cancel = new CancellationTokenSource();
        var receive = queue.ReceiveAsync(1, TimeSpan.FromMinutes(1), cancel.Token).AsTask();

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => receive);
    }

    [Fact]
    public async Task GetDepthAsync_RuntimeProperties_CountsActiveAndScheduledLessTheLocksHeldHere()
    {
        var queue = Queue();
        _administration.Runtime = ServiceBusModelFactory.QueueRuntimeProperties("jobs", activeMessageCount: 5, scheduledMessageCount: 2, deadLetterMessageCount: 9);
        var held = await ReceiveOneAsync(queue, Delivered(await SendAsync(queue, NewJob())));
        _time.Advance(TimeSpan.FromSeconds(5));

        Assert.Equal(new QueueDepth(6, 1), await queue.GetDepthAsync(default));
        Assert.Equal("jobs", _administration.RuntimeReads[^1]);

        await held.CompleteAsync(default);
        Assert.Equal(new QueueDepth(7, 0), await queue.GetDepthAsync(default));
    }

    [Fact]
    public async Task GetDepthAsync_LockExpired_NoLongerCountsItInFlight()
    {
        var queue = Queue(new ServiceBusJobQueueOptions { DepthCacheDuration = TimeSpan.Zero });
        _administration.Runtime = ServiceBusModelFactory.QueueRuntimeProperties("jobs", activeMessageCount: 1);
        await ReceiveOneAsync(queue, Delivered(await SendAsync(queue, NewJob()), lockFor: TimeSpan.FromSeconds(30)));

        Assert.Equal(new QueueDepth(0, 1), await queue.GetDepthAsync(default));
        _time.Advance(TimeSpan.FromSeconds(31));

        Assert.Equal(new QueueDepth(1, 0), await queue.GetDepthAsync(default));
    }

    [Fact]
    public async Task GetDepthAsync_WithinCacheDuration_ReadsServiceBusOnce()
    {
        var queue = Queue(new ServiceBusJobQueueOptions { DepthCacheDuration = TimeSpan.FromSeconds(2) });
        _administration.Runtime = ServiceBusModelFactory.QueueRuntimeProperties("jobs", activeMessageCount: 3);

        await queue.GetDepthAsync(default);
        _time.Advance(TimeSpan.FromSeconds(1));
        _administration.Runtime = ServiceBusModelFactory.QueueRuntimeProperties("jobs", activeMessageCount: 8);
        Assert.Equal(new QueueDepth(3, 0), await queue.GetDepthAsync(default));
        _time.Advance(TimeSpan.FromSeconds(1));

        Assert.Equal(new QueueDepth(8, 0), await queue.GetDepthAsync(default));
        Assert.Equal(2, _administration.RuntimeReads.Count);
    }

    public static TheoryData<Exception> AdministrationFailures() => new()
    {
        new RequestFailedException(401, "no Manage claim"),
        new RequestFailedException("connection refused", new HttpRequestException("refused", new SocketException((int)SocketError.ConnectionRefused))),
        new UnauthorizedAccessException("forbidden"),
    };

    [Theory]
    [MemberData(nameof(AdministrationFailures))]
    public async Task GetDepthAsync_AdministrationUnavailable_CountsByPeekingAndWarnsOnce(Exception failure)
    {
        var queue = Queue(new ServiceBusJobQueueOptions { DepthCacheDuration = TimeSpan.Zero, AdministrationRetryInterval = TimeSpan.FromMinutes(1) });
        _administration.Failure = failure;
        for (var i = 0; i < 3; i++)
        {
            Receiver.Peekable.Add(Delivered(await SendAsync(queue, NewJob(i))));
        }

        Assert.Equal(new QueueDepth(3, 0), await queue.GetDepthAsync(default));
        Assert.Equal(new QueueDepth(3, 0), await queue.GetDepthAsync(default));

        Assert.Single(_logger.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("peeking", StringComparison.Ordinal));
        Assert.Equal(1, Receiver.Peeks[0].FromSequenceNumber);
        // Not asked again until the retry interval has passed.
        Assert.Single(_administration.RuntimeReads);
        _administration.Failure = null;
        _administration.Runtime = ServiceBusModelFactory.QueueRuntimeProperties("jobs", activeMessageCount: 11);
        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(new QueueDepth(11, 0), await queue.GetDepthAsync(default));
        Assert.Contains(_logger.Entries, e => e.Level == LogLevel.Information && e.Message.Contains("answers again", StringComparison.Ordinal));
    }

    [Fact]
    public async Task GetDepthAsync_NoAdministrationClientAndDeepQueue_PagesThePeekUpToTheLimit()
    {
        var queue = Queue(new ServiceBusJobQueueOptions { DepthPeekLimit = 600 }, administration: false);
        var sent = ServiceBusJobQueue.ToMessage(NewJob(), Start, TimeSpan.Zero);
        for (var i = 0; i < 700; i++)
        {
            Receiver.Peekable.Add(Delivered(sent));
        }

        Assert.Equal(new QueueDepth(600, 0), await queue.GetDepthAsync(default));

        Assert.Equal(new List<(int, long?)> { (250, 1), (250, 251), (100, 501) }, Receiver.Peeks);
    }

    [Fact]
    public async Task GetDepthAsync_AdministrationAndPeekFail_ThrowsUnavailable()
    {
        var queue = Queue();
        _administration.Failure = new RequestFailedException("refused");
        Receiver.PeekFailure = new ServiceBusException("no route", ServiceBusFailureReason.ServiceCommunicationProblem);

        var ex = await Assert.ThrowsAsync<InferenceException>(() => queue.GetDepthAsync(default).AsTask());

        Assert.Equal(InferenceError.Unavailable, ex.Error);
    }

    [Fact]
    public async Task GetDepthAsync_QueueDeadLettersBeforeTheWorker_WarnsNamingTheSettings()
    {
        _administration.QueueMaxDeliveryCount = 3;
        var queue = Queue(queueOptions: new JobQueueOptions { MaxDeliveryCount = 3 });

        await queue.GetDepthAsync(default);

        Assert.Single(_logger.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("Inference:Queue:MaxDeliveryCount", StringComparison.Ordinal));
    }

    [Fact]
    public async Task EnqueueAsync_DepthAtCapacity_ThrowsQueueFullWithoutSending()
    {
        var queue = Queue(new ServiceBusJobQueueOptions { DepthCacheDuration = TimeSpan.FromMinutes(1) }, new JobQueueOptions { Capacity = 3, RetryAfterSeconds = 5 });
        _administration.Runtime = ServiceBusModelFactory.QueueRuntimeProperties("jobs", activeMessageCount: 2);

        await queue.EnqueueAsync(NewJob(), default);
        var ex = await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(NewJob(), default).AsTask());

        // The cached count of 2 plus the enqueue since it was read makes 3.
        Assert.Equal(InferenceError.QueueFull, ex.Error);
        Assert.Equal(5, ex.RetryAfterSeconds);
        Assert.Single(_client.Sender.Sent);
    }

    [Fact]
    public async Task EnqueueAsync_DepthUnreadable_SendsWithoutTheCapacityCheckForAWhile()
    {
        var queue = Queue(new ServiceBusJobQueueOptions { DepthCacheDuration = TimeSpan.Zero, AdministrationRetryInterval = TimeSpan.FromMinutes(1) });
        _administration.Failure = new RequestFailedException(401, "no Manage claim");
        Receiver.PeekFailure = new UnauthorizedAccessException("no Listen claim");

        await queue.EnqueueAsync(NewJob(1), default);
        await queue.EnqueueAsync(NewJob(2), default);
        _time.Advance(TimeSpan.FromMinutes(1));
        await queue.EnqueueAsync(NewJob(3), default);

        Assert.Equal(3, _client.Sender.Sent.Count);
        // Tried once, then again only after the interval.
        Assert.Equal(2, Receiver.Peeks.Count);
        Assert.Equal(2, _logger.Entries.Count(e => e.Message.Contains("Inference:Queue:Capacity", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task DisposeAsync_LeasesStillHeld_AbandonsThemAndClosesTheLinks()
    {
        var queue = new ServiceBusJobQueue(_client, null, new ServiceBusJobQueueOptions(), new JobQueueOptions(), _time, ownsClient: true);
        var settled = await ReceiveOneAsync(queue, Delivered(await SendAsync(queue, NewJob(1))));
        var held = await ReceiveOneAsync(queue, Delivered(await SendAsync(queue, NewJob(2))));
        await settled.CompleteAsync(default);

        await queue.DisposeAsync();

        Assert.Equal(held.Job.Id, Assert.Single(Receiver.Abandoned).Message.MessageId);
        Assert.True(Receiver.Disposed && _client.Sender.Disposed && _client.Disposed);
    }

    [Fact]
    public void ToJob_HeaderLengthOutOfRange_IsAFormatException()
    {
        var sent = ServiceBusJobQueue.ToMessage(NewJob(), Start, TimeSpan.Zero);

        var ex = Assert.Throws<FormatException>(() => ServiceBusJobQueue.ToJob(Delivered(sent, modified: new Dictionary<string, object> { [ServiceBusJobQueue.HeaderLengthProperty] = -5L })));

        Assert.Contains(ServiceBusJobQueue.HeaderLengthProperty, ex.Message);
    }

    [Fact]
    public void MaxDeliveryCount_IsInferenceQueueMaxDeliveryCount()
    {
        Assert.Equal(7, Queue(queueOptions: new JobQueueOptions { MaxDeliveryCount = 7 }).MaxDeliveryCount);
    }
}
