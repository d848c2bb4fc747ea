using ServerlessInference.Embedded;
using ServerlessInference.Jobs;

namespace ServerlessInference.Testing.Contracts;

/// <summary>What every <see cref="IJobQueue"/> must do. Derive once per provider.</summary>
/// <remarks>Tests are <c>[SkippableFact]</c>: a provider whose service is not configured (Service Bus without a
/// connection string) calls <c>Skip.If</c> in <see cref="CreateQueueAsync"/>, and the run reports its tests as
/// skipped with the reason instead of passing them silently.</remarks>
public abstract class JobQueueContract : ContractClock
{
    /// <summary>The lease every test uses: long on a fake clock, a second or two on a server's clock.</summary>
    protected virtual TimeSpan LeaseDuration => TimeSpan.FromSeconds(30);

    /// <summary>Null when the provider enforces <see cref="JobQueueOptions.MaxQueuedBytes"/>; otherwise why not (the
    /// byte-budget case is then reported as skipped with this reason).</summary>
    protected virtual string? QueuedBytesNotEnforced => null;

    /// <summary>Null when the provider chooses by <see cref="JobPreference"/>; otherwise why not (the preference cases
    /// are then reported as skipped with this reason).</summary>
    protected virtual string? PreferenceNotHonoured => null;

    /// <summary>Null when the provider counts jobs per model (<see cref="InferenceJob.ModelQueueCapacity"/>,
    /// <see cref="QueueDepth.ByModel"/>); otherwise why not.</summary>
    protected virtual string? ModelCountsNotKept => null;

    /// <summary>A short <see cref="JobPreference.AffinityWait"/>: a fake clock jumps it, a server's clock really waits it,
    /// so it is long enough that a receive right after an enqueue comes well before it.</summary>
    protected virtual TimeSpan ShortAffinityWait => TimeSpan.FromSeconds(2);

    /// <summary>A fresh queue no other test sees.</summary>
    protected abstract ValueTask<IJobQueue> CreateQueueAsync(JobQueueOptions options);

    /// <summary>The jobs <paramref name="queue"/> dead-lettered, oldest first.</summary>
    protected abstract ValueTask<IReadOnlyList<DeadLetter>> ReadDeadLettersAsync(IJobQueue queue);

    private ValueTask<IJobQueue> QueueAsync(int capacity = 100, int maxDeliveries = 3) => CreateQueueAsync(new JobQueueOptions
    {
        Capacity = capacity,
        LeaseDuration = LeaseDuration,
        MaxDeliveryCount = maxDeliveries,
        RetryAfterSeconds = 2,
    });

    private InferenceJob NewJob(float seed = 1) => ContractJobs.Job(Time.GetUtcNow(), seed);

    /// <summary>A job of <paramref name="model"/>, with a prompt prefix when <paramref name="prefix"/> is set.</summary>
    private InferenceJob KeyedJob(string model, string? prefix = null, int? modelCapacity = null)
    {
        var job = ContractJobs.Job(Time.GetUtcNow(), model: model);
        return new InferenceJob
        {
            Id = job.Id,
            Model = job.Model,
            Version = job.Version,
            Request = job.Request,
            SubmittedAt = job.SubmittedAt,
            Deadline = job.Deadline,
            PrefixKey = prefix,
            ModelQueueCapacity = modelCapacity,
        };
    }

    private static JobPreference Prefer(string[]? warm = null, string[]? elsewhere = null, string[]? closed = null, TimeSpan? wait = null,
        TimeSpan? loadWait = null) => new()
    {
        Warm = warm ?? [],
        WarmElsewhere = (elsewhere ?? []).ToHashSet(StringComparer.Ordinal),
        Closed = (closed ?? []).ToHashSet(StringComparer.Ordinal),
        AffinityWait = wait ?? TimeSpan.FromMinutes(10),
        LoadWait = loadWait ?? TimeSpan.Zero,
    };

    private async Task<IReadOnlyList<InferenceJob>> EnqueueAllAsync(IJobQueue queue, params InferenceJob[] jobs)
    {
        foreach (var job in jobs)
        {
            await queue.EnqueueAsync(job, default);

            // Distinct enqueue instants, so "oldest" is never a tie on a millisecond clock.
            await AdvanceAsync(TimeSpan.FromMilliseconds(5));
        }

        return jobs;
    }

    private static async Task<List<string>> IdsAsync(ValueTask<IReadOnlyList<JobLease>> receive) =>
        [.. (await receive).Select(l => l.Job.Id)];

    private Task<IReadOnlyList<JobLease>> ReceiveEventuallyAsync(IJobQueue queue, int maxCount, string what) =>
        EventuallyAsync(() => queue.ReceiveAsync(maxCount, TimeSpan.Zero, default).AsTask(), l => l.Count > 0, what);

    [SkippableFact]
    public async Task ReceiveAsync_JobsQueued_ReturnsUpToMaxInFifoOrder()
    {
        var queue = await QueueAsync();
        var jobs = Enumerable.Range(0, 5).Select(i => NewJob(i)).ToList();
        foreach (var job in jobs)
        {
            await queue.EnqueueAsync(job, default);
        }

        var first = await queue.ReceiveAsync(3, TimeSpan.Zero, default);
        var second = await queue.ReceiveAsync(3, TimeSpan.Zero, default);

        Assert.Equal(jobs.Take(3).Select(j => j.Id), first.Select(l => l.Job.Id));
        Assert.Equal(jobs.Skip(3).Select(j => j.Id), second.Select(l => l.Job.Id));
        Assert.All(first.Concat(second), l => Assert.Equal(1, l.DeliveryCount));
        Assert.All(first, l => Assert.Null(l.LastError));
        Assert.Equal(new QueueDepth(0, 5), await queue.GetDepthAsync(default));
    }

    [SkippableFact]
    public async Task EnqueueAsync_TracedJob_CarriesItsW3cTraceContext()
    {
        var queue = await QueueAsync();
        var plain = NewJob();
        const string traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        var job = new InferenceJob
        {
            Id = plain.Id,
            Model = plain.Model,
            Version = plain.Version,
            Request = plain.Request,
            SubmittedAt = plain.SubmittedAt,
            Deadline = plain.Deadline,
            TraceParent = traceParent,
            TraceState = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
        };
        var untraced = NewJob(2);

        await queue.EnqueueAsync(job, default);
        await queue.EnqueueAsync(untraced, default);
        var got = await ReceiveEventuallyAsync(queue, 2, "the two jobs");
        if (got.Count < 2)
        {
            got = [.. got, .. await ReceiveEventuallyAsync(queue, 1, "the second job")];
        }

        var traced = Assert.Single(got, l => l.Job.Id == job.Id).Job;
        Assert.Equal(traceParent, traced.TraceParent);
        Assert.Equal(job.TraceState, traced.TraceState);
        var other = Assert.Single(got, l => l.Job.Id == untraced.Id).Job;
        Assert.Null(other.TraceParent);
        Assert.Null(other.TraceState);
    }

    [SkippableFact]
    public async Task EnqueueAsync_ThenReceive_CarriesTheWholeJob()
    {
        var queue = await QueueAsync();
        var job = NewJob(7.5f);
        job.Request.Id = "client-id";

        await queue.EnqueueAsync(job, default);
        var got = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default)).Job;

        Assert.Equal(job.Id, got.Id);
        Assert.Equal(job.Model, got.Model);
        Assert.Equal(job.Version, got.Version);
        Assert.Equal(job.SubmittedAt, got.SubmittedAt);
        Assert.Equal(job.Deadline, got.Deadline);
        Assert.Equal("client-id", got.Request.Id);
        var sent = Assert.Single(job.Request.Inputs);
        var input = Assert.Single(got.Request.Inputs);
        Assert.Equal(sent.Name, input.Name);
        Assert.Equal(sent.Datatype, input.Datatype);
        Assert.Equal(sent.Shape, input.Shape);
        Assert.Equal(sent.AsSpan<float>().ToArray(), input.AsSpan<float>().ToArray());
    }

    [SkippableFact]
    public async Task ReceiveAsync_EmptyQueue_WaitsThenReturnsEmpty()
    {
        var queue = await QueueAsync();
        var wait = TimeSpan.FromMilliseconds(500);
        var receive = queue.ReceiveAsync(4, wait, default).AsTask();
        Assert.False(receive.IsCompleted);

        await AdvanceAsync(wait);

        Assert.Empty(await Within(receive, "the wait to end"));
    }

    [SkippableFact]
    public async Task ReceiveAsync_JobArrivesWhileWaiting_WakesAtOnce()
    {
        var queue = await QueueAsync();
        var receive = queue.ReceiveAsync(4, TimeSpan.FromMinutes(1), default).AsTask();
        var job = NewJob();

        await queue.EnqueueAsync(job, default);

        var leases = await Within(receive, "the waiting receiver to wake");
        Assert.Equal(job.Id, Assert.Single(leases).Job.Id);
    }

    [SkippableFact]
    public async Task ReceiveAsync_Cancelled_Throws()
    {
        var queue = await QueueAsync();
        using var cancel = new CancellationTokenSource();
        var receive = queue.ReceiveAsync(1, TimeSpan.FromMinutes(1), cancel.Token).AsTask();

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Within(receive, "the receive to stop"));
    }

    [SkippableFact]
    public async Task ReceiveAsync_ConcurrentReceivers_DeliverEachJobOnce()
    {
        var queue = await QueueAsync();
        var jobs = Enumerable.Range(0, 40).Select(i => NewJob(i)).ToList();
        foreach (var job in jobs)
        {
            await queue.EnqueueAsync(job, default);
        }

        var received = await Task.WhenAll(Enumerable.Range(0, 4).Select(async _ =>
        {
            var mine = new List<string>();
            while (true)
            {
                var leases = await queue.ReceiveAsync(3, TimeSpan.Zero, default);
                if (leases.Count == 0)
                {
                    return mine;
                }

                foreach (var lease in leases)
                {
                    mine.Add(lease.Job.Id);
                    await lease.CompleteAsync(default);
                }
            }
        }));

        Assert.Equal(jobs.Select(j => j.Id).Order(), received.SelectMany(r => r).Order());
        Assert.Equal(new QueueDepth(0, 0), await queue.GetDepthAsync(default));
    }

    [SkippableFact]
    public async Task ReceiveAsync_LeaseExpired_RedeliversWithHigherCountAndReason()
    {
        var queue = await QueueAsync();
        var job = NewJob();
        await queue.EnqueueAsync(job, default);
        var stale = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        Assert.Empty(await queue.ReceiveAsync(1, TimeSpan.Zero, default));

        await AdvanceAsync(LeaseDuration + TimeSpan.FromMilliseconds(100));
        var again = Assert.Single(await ReceiveEventuallyAsync(queue, 1, "the expired job to come back"));

        Assert.Equal(job.Id, again.Job.Id);
        Assert.Equal(2, again.DeliveryCount);
        Assert.Equal(JobLease.LeaseExpiredError, again.LastError);
        Assert.Contains("lease expired", again.LastError);
        Assert.Equal(new QueueDepth(0, 1), await queue.GetDepthAsync(default));
    }

    [SkippableFact]
    public async Task CompleteAsync_StaleLease_DoesNotRemoveTheRedeliveredJob()
    {
        var queue = await QueueAsync();
        await queue.EnqueueAsync(NewJob(), default);
        var stale = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        await AdvanceAsync(LeaseDuration + TimeSpan.FromMilliseconds(100));
        var again = Assert.Single(await ReceiveEventuallyAsync(queue, 1, "the expired job to come back"));

        // The first worker's late settlement must not touch the redelivered job.
        await stale.CompleteAsync(default);
        await stale.AbandonAsync("late", default);
        await stale.DeadLetterAsync("late", default);
        await stale.RenewAsync(default);

        Assert.Equal(new QueueDepth(0, 1), await queue.GetDepthAsync(default));
        Assert.Empty(await ReadDeadLettersAsync(queue));
        await again.CompleteAsync(default);
        Assert.Equal(new QueueDepth(0, 0), await queue.GetDepthAsync(default));
    }

    [SkippableFact]
    public async Task CompleteAsync_ThenOtherSettlements_AreIgnored()
    {
        var queue = await QueueAsync();
        await queue.EnqueueAsync(NewJob(), default);
        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));

        await lease.CompleteAsync(default);
        await lease.AbandonAsync("twice", default);
        await lease.DeadLetterAsync("twice", default);

        Assert.Equal(new QueueDepth(0, 0), await queue.GetDepthAsync(default));
        Assert.Empty(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        Assert.Empty(await ReadDeadLettersAsync(queue));
    }

    [SkippableFact]
    public async Task RenewAsync_BeforeExpiry_KeepsTheJobInvisible()
    {
        var queue = await QueueAsync();
        await queue.EnqueueAsync(NewJob(), default);
        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));

        await AdvanceAsync(LeaseDuration * 0.6);
        await lease.RenewAsync(default);
        await AdvanceAsync(LeaseDuration * 0.6);

        // 1.2 leases after the receive, 0.6 after the renewal: still invisible.
        Assert.Empty(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        Assert.Equal(new QueueDepth(0, 1), await queue.GetDepthAsync(default));

        await AdvanceAsync(LeaseDuration * 0.5);
        var again = Assert.Single(await ReceiveEventuallyAsync(queue, 1, "the job to come back once the renewed lease expired"));
        Assert.Equal(2, again.DeliveryCount);
    }

    [SkippableFact]
    public async Task AbandonAsync_MakesJobVisibleAtOnceWithTheError()
    {
        var queue = await QueueAsync();
        var job = NewJob();
        await queue.EnqueueAsync(job, default);
        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));

        await lease.AbandonAsync("engine blew up", default);

        var again = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        Assert.Equal(job.Id, again.Job.Id);
        Assert.Equal(2, again.DeliveryCount);
        Assert.Equal("engine blew up", again.LastError);
    }

    [SkippableFact]
    public async Task AbandonAsync_WakesAWaitingReceiver()
    {
        var queue = await QueueAsync();
        await queue.EnqueueAsync(NewJob(), default);
        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        var receive = queue.ReceiveAsync(1, TimeSpan.FromMinutes(1), default).AsTask();

        await lease.AbandonAsync("worker stopping", default);

        Assert.Equal(2, Assert.Single(await Within(receive, "the waiting receiver to wake")).DeliveryCount);
    }

    [SkippableFact]
    public async Task AbandonAsync_Repeatedly_CountsEveryDelivery()
    {
        var queue = await QueueAsync(maxDeliveries: 2);
        await queue.EnqueueAsync(NewJob(), default);

        JobLease lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        for (var delivery = 1; delivery <= 3; delivery++)
        {
            Assert.Equal(delivery, lease.DeliveryCount);
            await lease.AbandonAsync($"failure {delivery}", default);
            lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        }

        // Past MaxDeliveryCount: the worker dead-letters instead of running it.
        Assert.Equal(4, lease.DeliveryCount);
        Assert.True(lease.DeliveryCount > queue.MaxDeliveryCount);
        Assert.Equal("failure 3", lease.LastError);
    }

    [SkippableFact]
    public async Task AbandonAsync_WithoutError_KeepsTheEarlierOne()
    {
        var queue = await QueueAsync();
        await queue.EnqueueAsync(NewJob(), default);
        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        await lease.AbandonAsync("first failure", default);
        lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));

        await lease.AbandonAsync(null, default);

        Assert.Equal("first failure", Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default)).LastError);
    }

    [SkippableFact]
    public async Task EnqueueAsync_AtCapacity_ThrowsQueueFullWithRetryAfter()
    {
        var queue = await QueueAsync(capacity: 2);
        await queue.EnqueueAsync(NewJob(), default);
        await queue.EnqueueAsync(NewJob(), default);

        var ex = await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(NewJob(), default).AsTask());

        Assert.Equal(InferenceError.QueueFull, ex.Error);
        Assert.Equal(2, ex.RetryAfterSeconds);
        Assert.Contains("full", ex.Message);
    }

    [SkippableFact]
    public async Task EnqueueAsync_InFlightJobsCountTowardCapacity_UntilCompleted()
    {
        var queue = await QueueAsync(capacity: 2);
        await queue.EnqueueAsync(NewJob(), default);
        await queue.EnqueueAsync(NewJob(), default);
        var leases = await queue.ReceiveAsync(2, TimeSpan.Zero, default);

        await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(NewJob(), default).AsTask());
        await leases[0].CompleteAsync(default);
        await queue.EnqueueAsync(NewJob(), default);

        Assert.Equal(new QueueDepth(1, 1), await queue.GetDepthAsync(default));
    }

    [SkippableFact]
    public async Task EnqueueAsync_BeyondMaxQueuedBytes_ThrowsQueueFullUntilAJobLeaves()
    {
        Skip.If(QueuedBytesNotEnforced is not null, QueuedBytesNotEnforced);

        // Jobs of 64 KiB of tensor data: two fit in 150 KiB whatever a provider adds per job, three do not.
        var queue = await CreateQueueAsync(new JobQueueOptions
        {
            Capacity = 100,
            MaxQueuedBytes = 150 * 1024,
            LeaseDuration = LeaseDuration,
            MaxDeliveryCount = 3,
            RetryAfterSeconds = 2,
        });
        InferenceJob BigJob(float seed) => new()
        {
            Id = InferenceJob.NewId(),
            Model = "m",
            Version = "1",
            Request = ContractJobs.Request([.. Enumerable.Range(0, 16 * 1024).Select(i => seed + i)]),
            SubmittedAt = Time.GetUtcNow(),
            Deadline = Time.GetUtcNow() + TimeSpan.FromMinutes(10),
        };
        await queue.EnqueueAsync(BigJob(1), default);
        await queue.EnqueueAsync(BigJob(2), default);

        var full = await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(BigJob(3), default).AsTask());
        Assert.Equal(InferenceError.QueueFull, full.Error);
        Assert.Equal(2, full.RetryAfterSeconds);
        Assert.Contains("bytes", full.Message);

        // Small jobs still fit beside them (the count is far from its capacity).
        await queue.EnqueueAsync(NewJob(), default);

        // A job that leaves (completed, or dead-lettered) gives its bytes back; an abandoned one keeps them.
        var leases = await queue.ReceiveAsync(2, TimeSpan.Zero, default);
        await leases[1].AbandonAsync("retry later", default);
        await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(BigJob(4), default).AsTask());
        await leases[0].CompleteAsync(default);
        await queue.EnqueueAsync(BigJob(5), default);
        Assert.Equal(new QueueDepth(3, 0), await queue.GetDepthAsync(default));

        var queued = await queue.ReceiveAsync(3, TimeSpan.Zero, default);
        await queued.First(l => l.Job.Request.Inputs[0].Data.Length == 64 * 1024).DeadLetterAsync("poison", default);
        await queue.EnqueueAsync(BigJob(6), default);
    }

    [SkippableFact]
    public async Task EnqueueAsync_OneJobLargerThanMaxQueuedBytes_ThrowsPayloadTooLarge()
    {
        Skip.If(QueuedBytesNotEnforced is not null, QueuedBytesNotEnforced);
        var queue = await CreateQueueAsync(new JobQueueOptions { MaxQueuedBytes = 16 * 1024, LeaseDuration = LeaseDuration });
        var job = NewJob();
        var huge = new InferenceJob
        {
            Id = job.Id,
            Model = job.Model,
            Version = job.Version,
            Request = ContractJobs.Request(new float[8 * 1024]),
            SubmittedAt = job.SubmittedAt,
            Deadline = job.Deadline,
        };

        var ex = await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(huge, default).AsTask());

        Assert.Equal(InferenceError.PayloadTooLarge, ex.Error);
        Assert.Contains("MaxQueuedBytes", ex.Message);
        Assert.Equal(new QueueDepth(0, 0), await queue.GetDepthAsync(default));
    }

    [SkippableFact]
    public async Task DeadLetterAsync_RemovesJobAndKeepsReason()
    {
        var queue = await QueueAsync();
        var job = NewJob();
        await queue.EnqueueAsync(job, default);
        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));

        await lease.DeadLetterAsync("poison", default);

        var dead = Assert.Single(await ReadDeadLettersAsync(queue));
        Assert.Equal(job.Id, dead.Job.Id);
        Assert.Equal("poison", dead.Reason);
        Assert.Equal(1, dead.DeliveryCount);
        Assert.Equal(new QueueDepth(0, 0), await queue.GetDepthAsync(default));
        Assert.Empty(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
    }

    [SkippableFact]
    public async Task GetDepthAsync_CountsQueuedAndInFlight()
    {
        var queue = await QueueAsync();
        Assert.Equal(new QueueDepth(0, 0), await queue.GetDepthAsync(default));
        for (var i = 0; i < 3; i++)
        {
            await queue.EnqueueAsync(NewJob(i), default);
        }

        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, default));
        Assert.Equal(new QueueDepth(2, 1), await queue.GetDepthAsync(default));

        await lease.CompleteAsync(default);
        Assert.Equal(new QueueDepth(2, 0), await queue.GetDepthAsync(default));
    }

    [SkippableFact]
    public async Task ReceiveAsync_PreferenceNone_IsFifoAcrossKeys()
    {
        Skip.If(PreferenceNotHonoured is not null, PreferenceNotHonoured);
        var queue = await QueueAsync();
        var jobs = await EnqueueAllAsync(queue, KeyedJob("a"), KeyedJob("b"), KeyedJob("a"), KeyedJob("c", "p"), KeyedJob("b"));

        var first = await IdsAsync(queue.ReceiveAsync(3, TimeSpan.Zero, JobPreference.None, default));
        var second = await IdsAsync(queue.ReceiveAsync(3, TimeSpan.Zero, JobPreference.None, default));

        Assert.Equal(jobs.Take(3).Select(j => j.Id), first);
        Assert.Equal(jobs.Skip(3).Select(j => j.Id), second);
    }

    [SkippableFact]
    public async Task ReceiveAsync_WarmKeyWaiting_TakesItBeforeOlderJobs()
    {
        Skip.If(PreferenceNotHonoured is not null, PreferenceNotHonoured);
        var queue = await QueueAsync();
        var jobs = await EnqueueAllAsync(queue, KeyedJob("cold"), KeyedJob("warm"), KeyedJob("warm"));
        var prefer = Prefer(warm: ["warm"]);

        var first = await IdsAsync(queue.ReceiveAsync(2, TimeSpan.Zero, prefer, default));
        var then = await IdsAsync(queue.ReceiveAsync(2, TimeSpan.Zero, prefer, default));

        Assert.Equal([jobs[1].Id, jobs[2].Id], first);

        // A cold key (warm nowhere) is taken at once, with no affinity wait.
        Assert.Equal([jobs[0].Id], then);
    }

    [SkippableFact]
    public async Task ReceiveAsync_SeveralWarmKeys_FillsTheBatchInTheFairOrder()
    {
        Skip.If(PreferenceNotHonoured is not null, PreferenceNotHonoured);
        var queue = await QueueAsync();
        var a1 = KeyedJob("a");
        var b1 = KeyedJob("b");
        var a2 = KeyedJob("a");
        var b2 = KeyedJob("b");
        await EnqueueAllAsync(queue, a1, b1, a2, b2);

        // The worker's fair rule owes b most: b's jobs fill the batch first, oldest first, then a's.
        var got = await IdsAsync(queue.ReceiveAsync(3, TimeSpan.Zero, Prefer(warm: ["b", "a"]), default));

        Assert.Equal([b1.Id, b2.Id, a1.Id], got);
    }

    [SkippableFact]
    public async Task ReceiveAsync_KeyWarmElsewhere_NotTakenWhileFreshTakenOnceOverdue()
    {
        Skip.If(PreferenceNotHonoured is not null, PreferenceNotHonoured);
        var queue = await QueueAsync();
        var job = KeyedJob("elsewhere");
        await queue.EnqueueAsync(job, default);
        var prefer = Prefer(warm: ["mine"], elsewhere: ["elsewhere"], wait: ShortAffinityWait);

        Assert.Empty(await queue.ReceiveAsync(1, TimeSpan.Zero, prefer, default));

        // A receive waiting meanwhile wakes when the job becomes overdue, not at the end of its own wait.
        var receive = queue.ReceiveAsync(1, TimeSpan.FromMinutes(5), prefer, default).AsTask();
        await AdvanceAsync(ShortAffinityWait + TimeSpan.FromMilliseconds(100));

        Assert.Equal(job.Id, Assert.Single(await Within(receive, "the overdue job to be taken")).Job.Id);
    }

    [SkippableFact]
    public async Task ReceiveAsync_OverdueKey_ComesAfterWarmAndColdKeys()
    {
        // A worker with work of its own leaves an overdue job to the worker that holds it warm; with nothing else it helps.
        Skip.If(PreferenceNotHonoured is not null, PreferenceNotHonoured);
        var queue = await QueueAsync();
        var waiting = KeyedJob("elsewhere");
        await queue.EnqueueAsync(waiting, default);
        await AdvanceAsync(ShortAffinityWait + TimeSpan.FromMilliseconds(100));
        var warm = KeyedJob("mine");
        await queue.EnqueueAsync(warm, default);
        var cold = KeyedJob("nobody");
        await queue.EnqueueAsync(cold, default);
        var prefer = Prefer(warm: ["mine"], elsewhere: ["elsewhere"], wait: ShortAffinityWait);

        // Warm work alone first (a batch is not filled up with other models' jobs), then cold, then overdue.
        Assert.Equal([warm.Id], await IdsAsync(queue.ReceiveAsync(2, TimeSpan.Zero, prefer, default)));
        Assert.Equal([cold.Id], await IdsAsync(queue.ReceiveAsync(1, TimeSpan.Zero, prefer, default)));
        Assert.Equal([waiting.Id], await IdsAsync(queue.ReceiveAsync(2, TimeSpan.Zero, prefer, default)));
    }

    [SkippableFact]
    public async Task ReceiveAsync_ColdKeys_ThoseOfAModelWarmHereFirst()
    {
        Skip.If(PreferenceNotHonoured is not null, PreferenceNotHonoured);
        var queue = await QueueAsync();
        var jobs = await EnqueueAllAsync(queue, KeyedJob("other"), KeyedJob("m", "p1"), KeyedJob("other"));

        var got = await IdsAsync(queue.ReceiveAsync(3, TimeSpan.Zero, Prefer(warm: ["m"]), default));
        var then = await IdsAsync(queue.ReceiveAsync(3, TimeSpan.Zero, Prefer(warm: ["m"]), default));

        // m#p1 is cold (no worker holds that prefix) but its model is warm here: no load, so it comes first and alone;
        // then the other cold key, whose model this worker would load.
        Assert.Equal([jobs[1].Id], got);
        Assert.Equal([jobs[0].Id, jobs[2].Id], then);
    }

    [SkippableFact]
    public async Task ReceiveAsync_ColdKeysOfTwoModels_OneModelPerReceive()
    {
        // A receive loads at most one model: a batch of two cold models would evict two of this worker's models.
        Skip.If(PreferenceNotHonoured is not null, PreferenceNotHonoured);
        var queue = await QueueAsync();
        var jobs = await EnqueueAllAsync(queue, KeyedJob("a"), KeyedJob("b"), KeyedJob("a", "p"), KeyedJob("a"));
        var prefer = Prefer(warm: ["mine"]);

        var first = await IdsAsync(queue.ReceiveAsync(4, TimeSpan.Zero, prefer, default));
        var second = await IdsAsync(queue.ReceiveAsync(4, TimeSpan.Zero, prefer, default));

        // The oldest cold key's model (a), with all of its keys (a and a#p); b in the next receive.
        Assert.Equal([jobs[0].Id, jobs[3].Id, jobs[2].Id], first);
        Assert.Equal([jobs[1].Id], second);
    }

    [SkippableFact]
    public async Task ReceiveAsync_LoadWait_ColdJobsGatherBeforeAFullWorkerLoadsTheirModel()
    {
        Skip.If(PreferenceNotHonoured is not null, PreferenceNotHonoured);
        var queue = await QueueAsync();
        var first = KeyedJob("cold");
        await queue.EnqueueAsync(first, default);
        var full = Prefer(warm: ["mine"], loadWait: ShortAffinityWait);

        // A worker whose pool is full leaves the cold job for its load wait; one with room (no load wait) would take it.
        Assert.Empty(await queue.ReceiveAsync(2, TimeSpan.Zero, full, default));

        // Waiting meanwhile, it wakes when the job is due and takes the jobs of that model that gathered.
        var receive = queue.ReceiveAsync(4, TimeSpan.FromMinutes(5), full, default).AsTask();
        var second = KeyedJob("cold");
        await queue.EnqueueAsync(second, default);
        await AdvanceAsync(ShortAffinityWait + TimeSpan.FromMilliseconds(100));

        var got = await Within(receive, "the cold jobs to be taken once due");
        Assert.Equal([first.Id, second.Id], got.Select(l => l.Job.Id));
    }

    [SkippableFact]
    public async Task ReceiveAsync_LoadWait_DoesNotDelayAPromptPrefixOfAModelWarmHere()
    {
        Skip.If(PreferenceNotHonoured is not null, PreferenceNotHonoured);
        var queue = await QueueAsync();
        var job = KeyedJob("m", "p");
        await queue.EnqueueAsync(job, default);

        // m is warm here, only the prefix is not: taking it loads nothing, so the load wait does not apply.
        var got = await queue.ReceiveAsync(1, TimeSpan.Zero, Prefer(warm: ["m"], loadWait: TimeSpan.FromMinutes(10)), default);

        Assert.Equal(job.Id, Assert.Single(got).Job.Id);
    }

    [SkippableFact]
    public async Task ReceiveAsync_PrefixKeyOfAModelWarmHereAndElsewhere_IsTakenAtOnce()
    {
        Skip.If(PreferenceNotHonoured is not null, PreferenceNotHonoured);
        var queue = await QueueAsync();
        var job = KeyedJob("m", "p");
        await queue.EnqueueAsync(job, default);

        // Both workers hold m and neither holds the prefix: there is nobody better to wait for.
        var got = await queue.ReceiveAsync(1, TimeSpan.Zero, Prefer(warm: ["m"], elsewhere: ["m"], wait: TimeSpan.FromMinutes(10)), default);

        Assert.Equal(job.Id, Assert.Single(got).Job.Id);
    }

    [SkippableFact]
    public async Task ReceiveAsync_PrefixKeyOfAModelWarmElsewhere_WaitsForThatWorker()
    {
        Skip.If(PreferenceNotHonoured is not null, PreferenceNotHonoured);
        var queue = await QueueAsync();
        var job = KeyedJob("m", "p");
        await queue.EnqueueAsync(job, default);
        var prefer = Prefer(warm: ["mine"], elsewhere: ["m"], wait: ShortAffinityWait);

        // Another worker holds m (not this prefix): taking the job here would load m, so it is kept for that worker.
        Assert.Empty(await queue.ReceiveAsync(1, TimeSpan.Zero, prefer, default));
        await AdvanceAsync(ShortAffinityWait + TimeSpan.FromMilliseconds(100));

        Assert.Equal(job.Id, Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, prefer, default)).Job.Id);
    }

    [SkippableFact]
    public async Task ReceiveAsync_ClosedKey_NeverTakenUnlessWarmHere()
    {
        Skip.If(PreferenceNotHonoured is not null, PreferenceNotHonoured);
        var queue = await QueueAsync();
        var job = KeyedJob("full");
        await queue.EnqueueAsync(job, default);
        await AdvanceAsync(ShortAffinityWait + TimeSpan.FromMilliseconds(100));

        // Overdue and warm nowhere, yet closed to this worker.
        Assert.Empty(await queue.ReceiveAsync(1, TimeSpan.Zero, Prefer(closed: ["full"], wait: ShortAffinityWait), default));
        Assert.Empty(await queue.ReceiveAsync(1, TimeSpan.Zero, Prefer(elsewhere: ["full"], closed: ["full"], wait: ShortAffinityWait), default));

        var got = await queue.ReceiveAsync(1, TimeSpan.Zero, Prefer(warm: ["full"], closed: ["full"]), default);
        Assert.Equal(job.Id, Assert.Single(got).Job.Id);
    }

    [SkippableFact]
    public async Task ReceiveAsync_ClosedModel_ClosesItsPrefixKeysToo()
    {
        Skip.If(PreferenceNotHonoured is not null, PreferenceNotHonoured);
        var queue = await QueueAsync();
        var job = KeyedJob("full", "p");
        await queue.EnqueueAsync(job, default);
        await AdvanceAsync(ShortAffinityWait + TimeSpan.FromMilliseconds(100));

        // A model on its max_workers is closed under every prompt prefix: its key full#p is overdue, cold and its model is
        // closed, so this worker leaves it; a worker holding the prefix warm takes it.
        Assert.Empty(await queue.ReceiveAsync(1, TimeSpan.Zero, Prefer(closed: ["full"], wait: ShortAffinityWait), default));
        var got = await queue.ReceiveAsync(1, TimeSpan.Zero, Prefer(warm: ["full#p"], closed: ["full"]), default);
        Assert.Equal(job.Id, Assert.Single(got).Job.Id);
    }

    [SkippableFact]
    public async Task ReceiveAsync_WithPreference_ExpiredAndAbandonedLeasesComeBackToTheirKey()
    {
        Skip.If(PreferenceNotHonoured is not null, PreferenceNotHonoured);
        var queue = await QueueAsync(maxDeliveries: 5);
        var jobs = await EnqueueAllAsync(queue, KeyedJob("b"), KeyedJob("a", "p"));
        var prefer = Prefer(warm: ["a#p"], elsewhere: ["b"]);
        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, prefer, default));
        Assert.Equal(jobs[1].Id, lease.Job.Id);
        Assert.Equal("p", lease.Job.PrefixKey);

        await AdvanceAsync(LeaseDuration + TimeSpan.FromMilliseconds(100));
        var again = Assert.Single(await EventuallyAsync(() => queue.ReceiveAsync(1, TimeSpan.Zero, prefer, default).AsTask(), l => l.Count > 0, "the expired job to come back"));
        Assert.Equal(jobs[1].Id, again.Job.Id);
        Assert.Equal(2, again.DeliveryCount);
        Assert.Equal(JobLease.LeaseExpiredError, again.LastError);

        await again.AbandonAsync("try again", default);
        var third = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, prefer, default));
        Assert.Equal(jobs[1].Id, third.Job.Id);
        Assert.Equal(3, third.DeliveryCount);
        Assert.Equal("try again", third.LastError);
        await third.CompleteAsync(default);

        // Only b's job is left, kept for the worker that holds b.
        Assert.Empty(await queue.ReceiveAsync(1, TimeSpan.Zero, prefer, default));
        Assert.Equal(jobs[0].Id, Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, Prefer(warm: ["b"]), default)).Job.Id);
    }

    [SkippableFact]
    public async Task ReceiveAsync_ConcurrentReceiversWithPreferences_LeaseEachDeliveryOnce()
    {
        Skip.If(PreferenceNotHonoured is not null, PreferenceNotHonoured);
        var queue = await QueueAsync(maxDeliveries: 5);
        string[] models = ["a", "b", "c"];
        var jobs = Enumerable.Range(0, 36).Select(i => KeyedJob(models[i % 3], i % 4 == 0 ? "p" : null)).ToList();
        foreach (var job in jobs)
        {
            await queue.EnqueueAsync(job, default);
        }

        // Three workers each hold one model warm (the others' jobs are kept for them), a fourth takes anything. Every
        // job is put back once by whoever first gets it, so put-back jobs race with fresh ones.
        JobPreference[] preferences =
        [
            .. models.Select(m => Prefer(warm: [m], elsewhere: [.. models.Where(o => o != m)])),
            JobPreference.None,
        ];
        var held = new HashSet<(string Id, int Delivery)>();
        var completed = new List<string>();
        var doubleLeases = new List<string>();
        var workers = preferences.Select(async preference =>
        {
            while (true)
            {
                lock (completed)
                {
                    if (completed.Count == jobs.Count)
                    {
                        return true;
                    }
                }

                var leases = await queue.ReceiveAsync(3, TimeSpan.Zero, preference, default);
                foreach (var lease in leases)
                {
                    lock (completed)
                    {
                        if (!held.Add((lease.Job.Id, lease.DeliveryCount)))
                        {
                            doubleLeases.Add($"{lease.Job.Id} delivery {lease.DeliveryCount}");
                        }
                    }
                }

                foreach (var lease in leases)
                {
                    if (lease.DeliveryCount == 1)
                    {
                        await lease.AbandonAsync("once more", default);
                        continue;
                    }

                    await lease.CompleteAsync(default);
                    lock (completed)
                    {
                        completed.Add(lease.Job.Id);
                    }
                }

                await Task.Yield();
            }
        });

        await Within(Task.WhenAll(workers), "every job to be completed");

        Assert.Empty(doubleLeases);
        Assert.Equal(jobs.Select(j => j.Id).Order(), completed.Order());
        Assert.Equal(2 * jobs.Count, held.Count);
        var depth = await queue.GetDepthAsync(default);
        Assert.Equal(new QueueDepth(0, 0), depth);
        Assert.Empty(depth.ByModel ?? new Dictionary<string, ModelDepth>());
    }

    [SkippableFact]
    public async Task EnqueueAsync_ModelAtItsMaxQueued_ThrowsQueueFullForThatModelAlone()
    {
        Skip.If(ModelCountsNotKept is not null, ModelCountsNotKept);
        var queue = await QueueAsync();
        await queue.EnqueueAsync(KeyedJob("small", modelCapacity: 2), default);
        await queue.EnqueueAsync(KeyedJob("small", "p", modelCapacity: 2), default);

        var full = await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(KeyedJob("small", modelCapacity: 2), default).AsTask());
        Assert.Equal(InferenceError.QueueFull, full.Error);
        Assert.Equal(2, full.RetryAfterSeconds);
        Assert.Contains("'small'", full.Message);
        Assert.Contains("max_queued", full.Message);
        Assert.Contains("2", full.Message);

        // Other models still enqueue.
        await queue.EnqueueAsync(KeyedJob("other", modelCapacity: 2), default);
        await queue.EnqueueAsync(KeyedJob("other"), default);

        // In flight still counts; a job that leaves makes room.
        var lease = Assert.Single(await queue.ReceiveAsync(1, TimeSpan.Zero, Prefer(warm: ["small"]), default));
        await Assert.ThrowsAsync<InferenceException>(() => queue.EnqueueAsync(KeyedJob("small", modelCapacity: 2), default).AsTask());
        await lease.CompleteAsync(default);
        await queue.EnqueueAsync(KeyedJob("small", modelCapacity: 2), default);
        Assert.Equal(new QueueDepth(4, 0), await queue.GetDepthAsync(default));
    }

    [SkippableFact]
    public async Task GetDepthAsync_ByModel_CountsQueuedAndInFlightPerModel()
    {
        Skip.If(ModelCountsNotKept is not null, ModelCountsNotKept);
        var queue = await QueueAsync();
        await EnqueueAllAsync(queue, KeyedJob("a"), KeyedJob("a", "p"), KeyedJob("a"), KeyedJob("b"));
        var leases = await queue.ReceiveAsync(2, TimeSpan.Zero, Prefer(warm: ["a"]), default);

        var depth = await queue.GetDepthAsync(default);
        Assert.Equal(new QueueDepth(2, 2), depth);
        Assert.NotNull(depth.ByModel);
        Assert.Equal(new ModelDepth(1, 2), depth.ByModel["a"]);
        Assert.Equal(new ModelDepth(1, 0), depth.ByModel["b"]);

        foreach (var lease in leases)
        {
            await lease.CompleteAsync(default);
        }

        foreach (var lease in await queue.ReceiveAsync(2, TimeSpan.Zero, default))
        {
            await lease.CompleteAsync(default);
        }

        depth = await queue.GetDepthAsync(default);
        Assert.Equal(new QueueDepth(0, 0), depth);
        Assert.Empty(depth.ByModel ?? new Dictionary<string, ModelDepth>());
    }

    [SkippableFact]
    public async Task MaxDeliveryCount_IsTheConfiguredOne()
    {
        Assert.Equal(4, (await QueueAsync(maxDeliveries: 4)).MaxDeliveryCount);
    }
}
