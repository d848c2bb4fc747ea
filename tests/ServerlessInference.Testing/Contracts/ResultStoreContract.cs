using ServerlessInference.Jobs;

namespace ServerlessInference.Testing.Contracts;

/// <summary>What every <see cref="IResultStore"/> must do. Derive once per provider.</summary>
public abstract class ResultStoreContract : ContractClock
{
    /// <summary>A TTL short enough to wait out: long on a fake clock, about a second on a server's clock.</summary>
    protected virtual TimeSpan ShortTtl => TimeSpan.FromMinutes(5);

    /// <summary>A fresh store no other test sees, keeping records for <paramref name="ttl"/>.</summary>
    protected abstract ValueTask<IResultStore> CreateStoreAsync(TimeSpan ttl);

    /// <summary>A fresh store no other test sees, with <paramref name="options"/> (retention bounds, answered retention).</summary>
    protected abstract ValueTask<IResultStore> CreateStoreAsync(ResultStoreOptions options);

    private ValueTask<IResultStore> StoreAsync() => CreateStoreAsync(TimeSpan.FromMinutes(5));

    private InferenceJob NewJob(TimeSpan? deadline = null) => ContractJobs.Job(Time.GetUtcNow(), deadline: deadline);

    private JobRecord Done(InferenceJob job, JobStatus status = JobStatus.Succeeded, string? error = null, InferenceResponse? response = null) =>
        ContractJobs.Done(job, Time.GetUtcNow(), status, error, response);

    [Fact]
    public async Task TrackAsync_ThenGet_ReturnsAQueuedRecord()
    {
        var store = await StoreAsync();
        var job = NewJob();

        await store.TrackAsync(job, default);

        var record = await store.GetAsync(job.Id, default);
        Assert.NotNull(record);
        Assert.Equal(job.Id, record.Id);
        Assert.Equal(job.Model, record.Model);
        Assert.Equal(job.Version, record.Version);
        Assert.Equal(JobStatus.Queued, record.Status);
        Assert.Equal(job.SubmittedAt, record.SubmittedAt);
        Assert.Null(record.StartedAt);
        Assert.Null(record.CompletedAt);
        Assert.Null(record.Response);
        Assert.Null(record.Error);
    }

    [Fact]
    public async Task TrackAsync_WithTenant_KeepsItThroughStartCancelAndPublish()
    {
        var store = await StoreAsync();
        var published = new InferenceJob { Id = InferenceJob.NewId(), Model = "m", Version = "1", Request = NewJob().Request, SubmittedAt = Time.GetUtcNow(), Deadline = Time.GetUtcNow().AddMinutes(5), Tenant = "acme" };
        var cancelled = new InferenceJob { Id = InferenceJob.NewId(), Model = "m", Version = "1", Request = published.Request, SubmittedAt = Time.GetUtcNow(), Deadline = Time.GetUtcNow().AddMinutes(5), Tenant = "acme" };
        var anonymous = NewJob();
        await store.TrackAsync(published, default);
        await store.TrackAsync(cancelled, default);
        await store.TrackAsync(anonymous, default);

        Assert.Equal("acme", (await store.GetAsync(published.Id, default))!.Tenant);
        Assert.True(await store.TryStartAsync(published.Id, default));
        await store.PublishAsync(Done(published), default); // a worker's record carries no tenant: the store keeps the tracked one
        var (_, afterCancel) = await store.TryCancelAsync(cancelled.Id, default);

        Assert.Equal("acme", (await store.GetAsync(published.Id, default))!.Tenant);
        Assert.Equal("acme", (await store.WaitAsync(published.Id, TimeSpan.FromSeconds(1), default))!.Tenant);
        Assert.Equal("acme", afterCancel!.Tenant);
        Assert.Null((await store.GetAsync(anonymous.Id, default))!.Tenant);
    }

    [Fact]
    public async Task GetAsync_Unknown_ReturnsNull()
    {
        var store = await StoreAsync();

        Assert.Null(await store.GetAsync(InferenceJob.NewId(), default));
        Assert.Null(await store.WaitAsync(InferenceJob.NewId(), TimeSpan.FromSeconds(1), default));
        Assert.False(await store.TryStartAsync(InferenceJob.NewId(), default));
    }

    [Fact]
    public async Task WaitAsync_ResultPublished_ReturnsIt()
    {
        var store = await StoreAsync();
        var job = NewJob();
        await store.TrackAsync(job, default);
        var wait = store.WaitAsync(job.Id, TimeSpan.FromSeconds(60), default).AsTask();

        Assert.True(await store.TryStartAsync(job.Id, default));
        Assert.Equal(JobStatus.Running, (await store.GetAsync(job.Id, default))!.Status);
        await store.PublishAsync(Done(job), default);

        var record = await Within(wait, "the waiter to wake");
        Assert.Equal(JobStatus.Succeeded, record!.Status);
        Assert.NotNull(record.StartedAt);
        Assert.NotNull(record.CompletedAt);
    }

    [Fact]
    public async Task WaitAsync_ManyWaiters_AllWoken()
    {
        var store = await StoreAsync();
        var jobs = Enumerable.Range(0, 20).Select(_ => NewJob()).ToList();
        foreach (var job in jobs)
        {
            await store.TrackAsync(job, default);
        }

        var waits = jobs.SelectMany(j => new[] { j, j }).Select(j => store.WaitAsync(j.Id, TimeSpan.FromSeconds(60), default).AsTask()).ToList();
        foreach (var job in jobs)
        {
            await store.PublishAsync(Done(job), default);
        }

        var records = await Within(Task.WhenAll(waits), "every waiter to wake");
        Assert.All(records, r => Assert.Equal(JobStatus.Succeeded, r!.Status));
        Assert.Equal(jobs.SelectMany(j => new[] { j.Id, j.Id }), records.Select(r => r!.Id));
    }

    [Fact]
    public async Task WaitAsync_AlreadyDone_ReturnsAtOnce()
    {
        var store = await StoreAsync();
        var job = NewJob();
        await store.TrackAsync(job, default);
        await store.PublishAsync(Done(job, JobStatus.Failed, "boom"), default);

        var record = await Within(store.WaitAsync(job.Id, TimeSpan.FromMinutes(1), default).AsTask(), "the wait");

        Assert.Equal(JobStatus.Failed, record!.Status);
        Assert.Equal("boom", record.Error);
    }

    [Fact]
    public async Task WaitAsync_Timeout_ReturnsTheLatestNonTerminalRecord()
    {
        var store = await StoreAsync();
        var job = NewJob();
        await store.TrackAsync(job, default);
        var wait = store.WaitAsync(job.Id, TimeSpan.FromMilliseconds(500), default).AsTask();
        await store.TryStartAsync(job.Id, default);

        await AdvanceAsync(TimeSpan.FromMilliseconds(500));

        Assert.Equal(JobStatus.Running, (await Within(wait, "the wait to time out"))!.Status);
    }

    [Fact]
    public async Task WaitAsync_Cancelled_WakesTheWaiter()
    {
        var store = await StoreAsync();
        var job = NewJob();
        await store.TrackAsync(job, default);
        var wait = store.WaitAsync(job.Id, TimeSpan.FromMinutes(1), default).AsTask();

        Assert.True((await store.TryCancelAsync(job.Id, default)).Cancelled);

        Assert.Equal(JobStatus.Cancelled, (await Within(wait, "the waiter to wake"))!.Status);
    }

    [Fact]
    public async Task TryStartAsync_RunningAgain_LetsARedeliveryTakeIt()
    {
        var store = await StoreAsync();
        var job = NewJob();
        await store.TrackAsync(job, default);

        Assert.True(await store.TryStartAsync(job.Id, default));
        Assert.True(await store.TryStartAsync(job.Id, default));
        await store.PublishAsync(Done(job), default);

        Assert.False(await store.TryStartAsync(job.Id, default));
        Assert.Equal(JobStatus.Succeeded, (await store.GetAsync(job.Id, default))!.Status);
    }

    [Fact]
    public async Task TryCancelAsync_Queued_CancelsAndNeverStarts()
    {
        var store = await StoreAsync();
        var job = NewJob();
        await store.TrackAsync(job, default);

        var (cancelled, record) = await store.TryCancelAsync(job.Id, default);

        Assert.True(cancelled);
        Assert.Equal(JobStatus.Cancelled, record!.Status);
        Assert.NotNull(record.CompletedAt);
        Assert.False(await store.TryStartAsync(job.Id, default));
        Assert.False((await store.TryCancelAsync(job.Id, default)).Cancelled);
        Assert.Equal(JobStatus.Cancelled, (await store.GetAsync(job.Id, default))!.Status);
    }

    [Fact]
    public async Task TryCancelAsync_Running_LeavesItRunning()
    {
        var store = await StoreAsync();
        var job = NewJob();
        await store.TrackAsync(job, default);
        await store.TryStartAsync(job.Id, default);

        var (cancelled, record) = await store.TryCancelAsync(job.Id, default);

        Assert.False(cancelled);
        Assert.Equal(JobStatus.Running, record!.Status);
        Assert.Null((await store.TryCancelAsync(InferenceJob.NewId(), default)).Record);
    }

    [Fact]
    public async Task PublishAsync_Twice_KeepsTheFirstResult()
    {
        var store = await StoreAsync();
        var job = NewJob();
        await store.TrackAsync(job, default);

        await store.PublishAsync(Done(job, JobStatus.Succeeded), default);
        await store.PublishAsync(Done(job, JobStatus.Failed, "late duplicate"), default);

        var record = await store.GetAsync(job.Id, default);
        Assert.Equal(JobStatus.Succeeded, record!.Status);
        Assert.Null(record.Error);
    }

    [Theory]
    [InlineData(JobStatus.Failed)]
    [InlineData(JobStatus.Expired)]
    public async Task PublishAsync_SuccessAfterAReplaceableEnd_ReplacesIt(JobStatus platformEnd)
    {
        var store = await StoreAsync();
        var job = NewJob();
        await store.TrackAsync(job, default);
        Assert.True(await store.TryStartAsync(job.Id, default));
        var wait = store.WaitAsync(job.Id, TimeSpan.FromMinutes(1), default).AsTask();

        // Dead-lettered (or expired) by a redelivery while the first delivery still ran; then that delivery succeeds.
        await store.PublishAsync(Done(job, platformEnd, "dead-lettered after 3 deliveries") with { ErrorKind = InferenceError.ModelFailure, ReplaceableBySuccess = true }, default);
        Assert.Equal(platformEnd, (await Within(wait, "the waiter to wake"))!.Status);
        await store.PublishAsync(Done(job, response: ContractJobs.Response("m", 1, 2, 3, 4)), default);

        var record = await store.GetAsync(job.Id, default);
        Assert.Equal(JobStatus.Succeeded, record!.Status);
        Assert.Null(record.Error);
        Assert.Null(record.ErrorKind);
        Assert.False(record.ReplaceableBySuccess);
        Assert.NotNull(record.StartedAt);
        Assert.Equal([1f, 2, 3, 4], record.Response!.Outputs.Single().AsSpan<float>().ToArray());
        Assert.False(await store.TryStartAsync(job.Id, default));
    }

    [Fact]
    public async Task PublishAsync_FailureAfterAReplaceableEnd_KeepsTheFirst()
    {
        var store = await StoreAsync();
        var job = NewJob();
        await store.TrackAsync(job, default);

        await store.PublishAsync(Done(job, JobStatus.Expired, "not started before its deadline") with { ReplaceableBySuccess = true }, default);
        await store.PublishAsync(Done(job, JobStatus.Failed, "late failure"), default);

        var record = await store.GetAsync(job.Id, default);
        Assert.Equal(JobStatus.Expired, record!.Status);
        Assert.Equal("not started before its deadline", record.Error);
        Assert.True(record.ReplaceableBySuccess);
    }

    [Fact]
    public async Task PublishAsync_SuccessAfterAnOrdinaryFailure_KeepsTheFailure()
    {
        var store = await StoreAsync();
        var job = NewJob();
        await store.TrackAsync(job, default);

        await store.PublishAsync(Done(job, JobStatus.Failed, "the model failed"), default);
        await store.PublishAsync(Done(job, JobStatus.Succeeded), default);

        var record = await store.GetAsync(job.Id, default);
        Assert.Equal(JobStatus.Failed, record!.Status);
        Assert.Equal("the model failed", record.Error);
    }

    [Fact]
    public async Task PublishAsync_AfterCancel_KeepsTheCancellation()
    {
        var store = await StoreAsync();
        var job = NewJob();
        await store.TrackAsync(job, default);
        await store.TryCancelAsync(job.Id, default);

        await store.PublishAsync(Done(job, JobStatus.Succeeded), default);

        Assert.Equal(JobStatus.Cancelled, (await store.GetAsync(job.Id, default))!.Status);
    }

    [Fact]
    public async Task PublishAsync_CarriesTheResponse()
    {
        var store = await StoreAsync();
        var job = NewJob();
        await store.TrackAsync(job, default);
        await store.TryStartAsync(job.Id, default);
        var response = ContractJobs.Response("m", 1, 2, 3, 4, 5, 6, 7, 8);

        await store.PublishAsync(Done(job, response: response), default);

        var got = (await store.GetAsync(job.Id, default))!.Response;
        Assert.NotNull(got);
        Assert.Equal("m", got.ModelName);
        Assert.Equal("1", got.ModelVersion);
        var output = Assert.Single(got.Outputs);
        Assert.Equal("y", output.Name);
        Assert.Equal(TensorDatatype.Fp32, output.Datatype);
        Assert.Equal([2L, 4L], output.Shape);
        Assert.Equal([1f, 2, 3, 4, 5, 6, 7, 8], output.AsSpan<float>().ToArray());
    }

    [Fact]
    public async Task PublishAsync_UntrackedJob_StoresIt()
    {
        var store = await StoreAsync();
        var job = NewJob();

        await store.PublishAsync(Done(job, JobStatus.Failed, "not accepted: queue full"), default);

        var record = await store.GetAsync(job.Id, default);
        Assert.Equal(JobStatus.Failed, record!.Status);
        Assert.Equal("not accepted: queue full", record.Error);
    }

    [Theory]
    [InlineData(InferenceError.BadRequest)]
    [InlineData(InferenceError.ModelFailure)]
    [InlineData(null)]
    public async Task PublishAsync_Failed_KeepsWhoseFaultItIs(InferenceError? kind)
    {
        var store = await StoreAsync();
        var job = NewJob();
        await store.TrackAsync(job, default);

        await store.PublishAsync(Done(job, JobStatus.Failed, "rejected by the engine") with { ErrorKind = kind }, default);

        var record = await store.GetAsync(job.Id, default);
        Assert.Equal(JobStatus.Failed, record!.Status);
        Assert.Equal(kind, record.ErrorKind);
    }

    [Fact]
    public async Task PublishAsync_NotTerminal_Throws()
    {
        var store = await StoreAsync();
        var job = NewJob();

        await Assert.ThrowsAsync<ArgumentException>(() => store.PublishAsync(Done(job, JobStatus.Running), default).AsTask());
    }

    [Fact]
    public async Task GetAsync_AfterTtl_ReturnsNull()
    {
        var store = await CreateStoreAsync(ShortTtl);
        var job = NewJob(deadline: ShortTtl);
        await store.TrackAsync(job, default);
        await store.PublishAsync(Done(job), default);
        Assert.NotNull(await store.GetAsync(job.Id, default));

        await AdvanceAsync(ShortTtl);

        await EventuallyAsync(() => store.GetAsync(job.Id, default).AsTask(), r => r is null, "the record to expire");
    }

    [Fact]
    public async Task GetAsync_QueuedJob_LivesUntilItsDeadlinePlusTtl()
    {
        var store = await CreateStoreAsync(ShortTtl);
        var job = NewJob(deadline: ShortTtl * 2);
        await store.TrackAsync(job, default);

        await AdvanceAsync(ShortTtl * 1.5);

        Assert.NotNull(await store.GetAsync(job.Id, default));
    }

    [Fact]
    public async Task MarkAnsweredAsync_EndedJob_KeepsItOnlyForTheAnsweredRetention()
    {
        var store = await CreateStoreAsync(new ResultStoreOptions { Ttl = TimeSpan.FromHours(1), AnsweredRetention = ShortTtl });
        var answered = NewJob();
        var polled = NewJob();
        var running = NewJob();
        foreach (var job in new[] { answered, polled, running })
        {
            await store.TrackAsync(job, default);
        }

        await store.PublishAsync(Done(answered), default);
        await store.PublishAsync(Done(polled), default);
        Assert.True(await store.TryStartAsync(running.Id, default));

        await store.MarkAnsweredAsync(answered.Id, default);
        await store.MarkAnsweredAsync(running.Id, default);
        await store.MarkAnsweredAsync(InferenceJob.NewId(), default);
        Assert.NotNull(await store.GetAsync(answered.Id, default));

        await AdvanceAsync(ShortTtl);

        await EventuallyAsync(() => store.GetAsync(answered.Id, default).AsTask(), r => r is null, "the answered record to go");
        Assert.Equal(JobStatus.Succeeded, (await store.GetAsync(polled.Id, default))?.Status);
        Assert.Equal(JobStatus.Running, (await store.GetAsync(running.Id, default))?.Status);
    }

    [Fact]
    public async Task PublishAsync_BeyondMaxRetainedRecords_EndsTheOldestEarly()
    {
        var store = await CreateStoreAsync(new ResultStoreOptions { Ttl = TimeSpan.FromHours(1), MaxRetainedRecords = 3 });
        var waiting = NewJob();
        await store.TrackAsync(waiting, default);
        var jobs = new List<InferenceJob>();
        for (var i = 0; i < 5; i++)
        {
            var job = NewJob();
            jobs.Add(job);
            await store.TrackAsync(job, default);
            await store.PublishAsync(Done(job), default);
            await AdvanceAsync(TimeSpan.FromMilliseconds(5));
        }

        var kept = new List<bool>();
        foreach (var job in jobs)
        {
            kept.Add(await store.GetAsync(job.Id, default) is not null);
        }

        Assert.Equal([false, false, true, true, true], kept);

        // A job still waiting is never evicted: the queue's capacity bounds those.
        Assert.Equal(JobStatus.Queued, (await store.GetAsync(waiting.Id, default))?.Status);
    }

    [Fact]
    public async Task PublishAsync_BeyondMaxRetainedBytes_EndsTheOldestEarly()
    {
        // Responses of 4 KiB: two fit in 10 KiB whatever a provider adds per record, three do not.
        var store = await CreateStoreAsync(new ResultStoreOptions { Ttl = TimeSpan.FromHours(1), MaxRetainedBytes = 10 * 1024 });
        var jobs = new List<InferenceJob>();
        for (var i = 0; i < 4; i++)
        {
            var job = NewJob();
            jobs.Add(job);
            await store.TrackAsync(job, default);
            await store.PublishAsync(Done(job, response: ContractJobs.Response(job.Model, new float[1024])), default);
            await AdvanceAsync(TimeSpan.FromMilliseconds(5));
        }

        var kept = new List<bool>();
        foreach (var job in jobs)
        {
            kept.Add(await store.GetAsync(job.Id, default) is not null);
        }

        Assert.Equal([false, false, true, true], kept);
    }

    [Fact]
    public async Task PublishAsync_SuccessReplacingADeadLetter_CountsAtItsNewSize()
    {
        var store = await CreateStoreAsync(new ResultStoreOptions { Ttl = TimeSpan.FromHours(1), MaxRetainedBytes = 10 * 1024 });
        var late = NewJob();
        await store.TrackAsync(late, default);
        await store.PublishAsync(Done(late, JobStatus.Failed, "dead-lettered") with { ReplaceableBySuccess = true }, default);
        var others = new List<InferenceJob>();
        for (var i = 0; i < 2; i++)
        {
            await AdvanceAsync(TimeSpan.FromMilliseconds(5));
            var job = NewJob();
            others.Add(job);
            await store.TrackAsync(job, default);
            await store.PublishAsync(Done(job, response: ContractJobs.Response(job.Model, new float[1024])), default);
        }

        await AdvanceAsync(TimeSpan.FromMilliseconds(5));

        // The slow worker's 4 KiB success replaces the small dead-letter: three responses no longer fit in 10 KiB.
        await store.PublishAsync(Done(late, response: ContractJobs.Response(late.Model, new float[1024])), default);

        Assert.Equal(JobStatus.Succeeded, (await store.GetAsync(late.Id, default))?.Status);
        Assert.Null(await store.GetAsync(others[0].Id, default));
        Assert.NotNull(await store.GetAsync(others[1].Id, default));
    }
}
