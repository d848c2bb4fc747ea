using System.Diagnostics.Metrics;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Gateway;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Security;
using ServerlessInference.Telemetry;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Security;

/// <summary>The concurrent-jobs limit of a key (<see cref="JobSlots"/> through <see cref="InferenceGateway"/>): a slot
/// is taken when a job is accepted and freed on every way a job ends, never leaked; and the tenant travels with the job.</summary>
public sealed class GatewayLimitsTests : IDisposable
{
    private static readonly ReadOnlyMemory<byte> s_body = Encoding.UTF8.GetBytes("""{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}""");
    private static readonly Caller s_acme = new("acme", "key-acme", false, 0, 0, MaxConcurrentJobs: 1);
    private static readonly Caller s_other = new("other", "key-other", false, 0, 0, MaxConcurrentJobs: 5);

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
    private readonly TempModelStore _models = new();
    private readonly TestMeterFactory _meters = new();
    private readonly InMemoryResultStore _results;
    private readonly JobSlots _slots;
    private readonly InferenceGateway _gateway;

    public GatewayLimitsTests()
    {
        _models.Add("m");
        _results = new InMemoryResultStore(Options.Create(new ResultStoreOptions()), _time);
        _slots = new JobSlots(_results, _time);
        _gateway = Gateway(queueCapacity: 100);
    }

    [Fact]
    public async Task Submit_KeyAtItsConcurrentJobsLimit_Is429WithRetryAfter_AndOtherKeysAreNotCounted()
    {
        await SubmitAsync(s_acme);

        var refused = await Assert.ThrowsAsync<InferenceException>(() => SubmitAsync(s_acme));
        await SubmitAsync(s_other);

        Assert.Equal(InferenceError.RateLimited, refused.Error);
        Assert.Equal(1, refused.RetryAfterSeconds);
        Assert.Equal(429, GatewayHttp.StatusCodeOf(refused.Error));
        Assert.Equal(1, _slots.InUse("key-acme"));
    }

    [Fact]
    public async Task Submit_TheJobRecordCarriesTheTenant_AndAPublishedResultKeepsIt()
    {
        var job = await SubmitAsync(s_acme);
        await _results.PublishAsync(Ended(job, JobStatus.Succeeded), default);

        var record = await _gateway.Results.GetAsync(job.Id, default);

        Assert.Equal("acme", job.Tenant);
        Assert.Equal("acme", record!.Tenant);
        Assert.True(s_acme.Owns(record));
        Assert.False(s_other.Owns(record));
        Assert.False(Caller.Anonymous.Owns(record));
    }

    [Fact]
    public async Task Slot_SyncAnswer_IsFreeBeforeTheAnswerIsReturned()
    {
        var job = await SubmitAsync(s_acme);
        await _results.PublishAsync(Ended(job, JobStatus.Succeeded), default);

        var answer = await _gateway.Results.WaitAsync(job.Id, TimeSpan.FromSeconds(60), default);

        Assert.Equal(JobStatus.Succeeded, answer!.Status);
        Assert.Equal(0, _slots.InUse("key-acme"));
        await SubmitAsync(s_acme);
    }

    [Fact]
    public async Task Slot_FailedJobReadByAPoll_IsFree()
    {
        var job = await SubmitAsync(s_acme);
        await _results.PublishAsync(Ended(job, JobStatus.Failed), default);

        await _gateway.Results.GetAsync(job.Id, default);

        Assert.Equal(0, _slots.InUse("key-acme"));
    }

    [Fact]
    public async Task Slot_CancelledJob_IsFree()
    {
        var job = await SubmitAsync(s_acme);

        var (cancelled, _) = await _gateway.Results.TryCancelAsync(job.Id, default);

        Assert.True(cancelled);
        Assert.Equal(0, _slots.InUse("key-acme"));
        await SubmitAsync(s_acme);
    }

    [Fact]
    public async Task Slot_QueueRefusesTheJob_IsNotHeld()
    {
        var gateway = Gateway(queueCapacity: 1);
        await gateway.SubmitAsync("m", null, s_body, null, default, s_other);

        var full = await Assert.ThrowsAsync<InferenceException>(() => gateway.SubmitAsync("m", null, s_body, null, default, s_acme).AsTask());

        Assert.Equal(InferenceError.QueueFull, full.Error);
        Assert.Equal(0, _slots.InUse("key-acme"));
    }

    [Fact]
    public async Task Watch_JobEndsWithoutAnyoneReadingIt_FreesTheSlot()
    {
        var job = await TrackAsync();
        Assert.True(_slots.TryAcquire("k", 1, job.Id));
        var watch = _slots.WatchAsync(job, default);

        await _results.PublishAsync(Ended(job, JobStatus.Succeeded), default);
        await watch;

        Assert.Equal(0, _slots.InUse("k"));
        Assert.Equal(0, _slots.Held);
    }

    [Fact]
    public async Task Watch_JobStillQueuedAtItsDeadline_FreesTheSlot()
    {
        var job = await TrackAsync();
        Assert.True(_slots.TryAcquire("k", 1, job.Id));
        var watch = _slots.WatchAsync(job, default);

        _time.Advance(TimeSpan.FromMinutes(1) + TimeSpan.FromSeconds(1));
        await watch;

        Assert.Equal(JobStatus.Queued, (await _results.GetAsync(job.Id, default))!.Status);
        Assert.Equal(0, _slots.InUse("k"));
    }

    [Fact]
    public async Task Watch_RecordGone_FreesTheSlot()
    {
        var job = new InferenceJob { Id = "never-tracked", Model = "m", Version = "1", Request = TestJobs.Request(1, 2, 3, 4), SubmittedAt = _time.GetUtcNow(), Deadline = _time.GetUtcNow().AddMinutes(1) };
        Assert.True(_slots.TryAcquire("k", 1, job.Id));

        await _slots.WatchAsync(job, default);

        Assert.Equal(0, _slots.InUse("k"));
    }

    [Fact]
    public void Release_Twice_FreesOneSlot()
    {
        Assert.True(_slots.TryAcquire("k", 2, "a"));
        Assert.True(_slots.TryAcquire("k", 2, "b"));

        _slots.Release("a");
        _slots.Release("a");

        Assert.Equal(1, _slots.InUse("k"));
    }

    [Fact]
    public async Task Metrics_UnknownModelFromTheUrl_IsLabelledUnknown_AKnownOneByName()
    {
        var labels = new List<string>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Name == "inference_requests" && ReferenceEquals(instrument.Meter.Scope, _meters))
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, _, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "model")
                {
                    labels.Add((string)tag.Value!);
                }
            }
        });
        listener.Start();

        await Assert.ThrowsAsync<InferenceException>(() => _gateway.SubmitAsync("attacker-chosen-name-123", null, s_body, null, default).AsTask());
        await Assert.ThrowsAsync<InferenceException>(() => _gateway.SubmitAsync("m", "9", s_body, null, default).AsTask());
        await Assert.ThrowsAsync<InferenceException>(() => _gateway.SubmitGenerationAsync("another-made-up-name", null, new ServerlessInference.Generation.GenerationRequest { Prompt = "x", MaxTokens = 1 }, default).AsTask());
        await Assert.ThrowsAsync<InferenceException>(() => _gateway.SubmitAsync("m", null, Encoding.UTF8.GetBytes("{not json"), null, default).AsTask());

        Assert.Equal([InferenceMetrics.UnknownModel, InferenceMetrics.UnknownModel, InferenceMetrics.UnknownModel, "m"], labels);
    }

    private InferenceGateway Gateway(int queueCapacity) => new(
        new ModelCatalog(_models.Store, _time),
        new InMemoryJobQueue(Options.Create(new JobQueueOptions { Capacity = queueCapacity }), _time),
        _results,
        Options.Create(new GatewayOptions()),
        _time,
        new InferenceMetrics(_meters),
        NullLogger<InferenceGateway>.Instance,
        slots: _slots);

    private async Task<InferenceJob> SubmitAsync(Caller caller) => (await _gateway.SubmitAsync("m", null, s_body, null, default, caller)).Job;

    private async Task<InferenceJob> TrackAsync()
    {
        var now = _time.GetUtcNow();
        var job = new InferenceJob { Id = InferenceJob.NewId(), Model = "m", Version = "1", Request = TestJobs.Request(1, 2, 3, 4), SubmittedAt = now, Deadline = now.AddMinutes(1) };
        await _results.TrackAsync(job, default);
        return job;
    }

    private JobRecord Ended(InferenceJob job, JobStatus status) => new()
    {
        Id = job.Id,
        Model = job.Model,
        Version = job.Version,
        Status = status,
        SubmittedAt = job.SubmittedAt,
        CompletedAt = _time.GetUtcNow(),
        Error = status == JobStatus.Failed ? "boom" : null,
    };

    public void Dispose()
    {
        _slots.Dispose();
        _meters.Dispose();
        _models.Dispose();
    }
}
