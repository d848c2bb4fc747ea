using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Testing.Webhooks;
using ServerlessInference.Webhooks;
using StandardWebhooks;

namespace ServerlessInference.Tests.Webhooks;

/// <summary>The dispatcher against a real receiver on loopback (allowed explicitly), on a fake clock.</summary>
public sealed class WebhookDispatcherTests : IAsyncLifetime
{
    public static readonly string Secret = "whsec_" + Convert.ToBase64String(Encoding.ASCII.GetBytes("0123456789abcdef0123456789abcdef"));

    // Standard Webhooks receivers reject timestamps far from their own clock: start the fake clock at the real time.
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly InMemoryWebhookOutbox _outbox = new();
    private InMemoryResultStore _results = null!;
    private WebhookReceiver _receiver = null!;

    public async Task InitializeAsync()
    {
        _results = new InMemoryResultStore(Microsoft.Extensions.Options.Options.Create(new ResultStoreOptions()), _time);
        _receiver = await WebhookReceiver.StartAsync();
    }

    public async Task DisposeAsync() => await _receiver.DisposeAsync();

    public static WebhookOptions Options(params string[] allowedNetworks) => new()
    {
        Secret = Secret,
        MaxAttempts = 3,
        BaseDelay = TimeSpan.FromSeconds(10),
        MaxDelay = TimeSpan.FromSeconds(60),
        Timeout = TimeSpan.FromSeconds(10),
        AllowedNetworks = [.. allowedNetworks],
    };

    private WebhookDispatcher Dispatcher(WebhookOptions options) => new(
        _outbox, _results, new WebhookSender(options, new WebhookTargetPolicy(options)), Microsoft.Extensions.Options.Options.Create(options), _time,
        NullLogger<WebhookDispatcher>.Instance);

    /// <summary>A job that has ended (succeeded) with a webhook to <paramref name="url"/>.</summary>
    private async Task<string> EndedJobAsync(string url, JobStatus status = JobStatus.Succeeded)
    {
        var id = InferenceJob.NewId();
        var now = _time.GetUtcNow();
        await _results.TrackAsync(new InferenceJob
        {
            Id = id, Model = "m", Version = "1", Request = new InferenceRequest { Inputs = [] }, SubmittedAt = now, Deadline = now.AddMinutes(1), Webhook = url,
        }, default);
        await _outbox.AddAsync(new WebhookDelivery(id, url), now, default);
        await _results.PublishAsync(new JobRecord
        {
            Id = id, Model = "m", Version = "1", Status = status, SubmittedAt = now, CompletedAt = now,
            Error = status == JobStatus.Succeeded ? null : "boom",
        }, default);
        return id;
    }

    private static (long Pending, long Delivered, long Failed, int Recent) Counts(WebhookStats stats) =>
        (stats.Pending, stats.Delivered, stats.Failed, stats.RecentFailures.Count);

    private static string HandSignature(string secret, string id, string timestamp, string body)
    {
        var key = Convert.FromBase64String(secret["whsec_".Length..]);
        return "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"{id}.{timestamp}.{body}")));
    }

    [Fact]
    public async Task DeliverDueAsync_JobEnded_PostsTheJobJsonSignedPerStandardWebhooks()
    {
        var dispatcher = Dispatcher(Options("127.0.0.0/8"));
        var id = await EndedJobAsync(_receiver.BaseUrl + "/hook?token=abc");

        Assert.Equal(1, await dispatcher.DeliverDueAsync(default));

        var got = Assert.Single(_receiver.Received);
        Assert.Equal("/hook", got.Path);
        using (var json = JsonDocument.Parse(got.Body))
        {
            Assert.Equal(id, json.RootElement.GetProperty("id").GetString());
            Assert.Equal("succeeded", json.RootElement.GetProperty("status").GetString());
        }

        // The library's own verification, and a hand-written HMAC-SHA256 over id.timestamp.body.
        new StandardWebhook(Secret).Verify(got.Body, got.Headers);
        Assert.Throws<StandardWebhooks.Diagnostics.WebhookVerificationException>(() => new StandardWebhook(
            "whsec_" + Convert.ToBase64String(new byte[32])).Verify(got.Body, got.Headers));
        var webhookId = got.Headers["webhook-id"].ToString();
        var timestamp = got.Headers["webhook-timestamp"].ToString();
        Assert.Equal($"msg_{id}_succeeded", webhookId);
        Assert.Equal(_time.GetUtcNow().ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture), timestamp);
        Assert.Equal(HandSignature(Secret, webhookId, timestamp, got.Body), got.Headers["webhook-signature"].ToString());
        Assert.Equal((0L, 1L, 0L, 0), Counts(await _outbox.GetStatsAsync(default)));
    }

    [Fact]
    public async Task DeliverDueAsync_JobNotEnded_WaitsForItWithoutCountingAnAttempt()
    {
        var dispatcher = Dispatcher(Options("127.0.0.0/8"));
        var now = _time.GetUtcNow();
        var job = new InferenceJob { Id = InferenceJob.NewId(), Model = "m", Version = "1", Request = new InferenceRequest { Inputs = [] }, SubmittedAt = now, Deadline = now.AddMinutes(1) };
        await _results.TrackAsync(job, default);
        await _outbox.AddAsync(new WebhookDelivery(job.Id, _receiver.BaseUrl), now, default);

        Assert.Equal(1, await dispatcher.DeliverDueAsync(default));
        Assert.Empty(_receiver.Received);
        Assert.Equal(0, await dispatcher.DeliverDueAsync(default)); // not due again until the poll interval passes

        await _results.PublishAsync(new JobRecord { Id = job.Id, Model = "m", Version = "1", Status = JobStatus.Cancelled, SubmittedAt = now, CompletedAt = now }, default);
        _time.Advance(new WebhookOptions().PollInterval);
        Assert.Equal(1, await dispatcher.DeliverDueAsync(default));
        var got = Assert.Single(_receiver.Received);
        Assert.Contains("\"cancelled\"", got.Body, StringComparison.Ordinal);
        Assert.Equal(1, (await _outbox.GetStatsAsync(default)).Delivered);
    }

    [Fact]
    public async Task DeliverDueAsync_ReceiverFailsTwice_RetriesWithBackoffAndTheSameWebhookId()
    {
        var dispatcher = Dispatcher(Options("127.0.0.0/8"));
        _receiver.Answers.Enqueue(500);
        _receiver.Answers.Enqueue(503);
        await EndedJobAsync(_receiver.BaseUrl);

        await dispatcher.DeliverDueAsync(default);
        Assert.Single(_receiver.Received);

        // First retry: between half and all of BaseDelay (10 s).
        _time.Advance(TimeSpan.FromSeconds(4.9));
        Assert.Equal(0, await dispatcher.DeliverDueAsync(default));
        _time.Advance(TimeSpan.FromSeconds(5.1));
        Assert.Equal(1, await dispatcher.DeliverDueAsync(default));
        Assert.Equal(2, _receiver.Received.Count);

        // Second retry: between half and all of 2 × BaseDelay.
        _time.Advance(TimeSpan.FromSeconds(9.9));
        Assert.Equal(0, await dispatcher.DeliverDueAsync(default));
        _time.Advance(TimeSpan.FromSeconds(10.1));
        Assert.Equal(1, await dispatcher.DeliverDueAsync(default));

        var attempts = _receiver.Received.ToList();
        Assert.Equal(3, attempts.Count);
        Assert.Single(attempts.Select(a => a.Headers["webhook-id"].ToString()).Distinct());
        Assert.Equal(3, attempts.Select(a => a.Headers["webhook-timestamp"].ToString()).Distinct().Count());
        Assert.All(attempts, a => new StandardWebhook(Secret).Verify(a.Body, a.Headers));
        Assert.Equal((0L, 1L, 0L, 0), Counts(await _outbox.GetStatsAsync(default)));
    }

    [Fact]
    public async Task DeliverDueAsync_LastAttemptFails_DeadLettersWithTheReason()
    {
        var dispatcher = Dispatcher(Options("127.0.0.0/8"));
        for (var i = 0; i < 3; i++)
        {
            _receiver.Answers.Enqueue(500);
        }

        var id = await EndedJobAsync(_receiver.BaseUrl);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(1, await dispatcher.DeliverDueAsync(default));
            _time.Advance(TimeSpan.FromSeconds(60));
        }

        Assert.Equal(0, await dispatcher.DeliverDueAsync(default));
        Assert.Equal(3, _receiver.Received.Count);
        var stats = await _outbox.GetStatsAsync(default);
        Assert.Equal((0L, 0L, 1L), (stats.Pending, stats.Delivered, stats.Failed));
        var failure = Assert.Single(stats.RecentFailures);
        Assert.Equal(id, failure.JobId);
        Assert.Equal(3, failure.Attempts);
        Assert.Equal("gave up after 3 attempts; last: the receiver answered 500", failure.Reason);
    }

    [Theory]
    [InlineData("localhost", "loopback")] // a DNS name that resolves to loopback
    [InlineData("127.0.0.1", "loopback")]
    [InlineData("[::1]", "loopback")]
    [InlineData("[::ffff:127.0.0.1]", "loopback")]
    public async Task DeliverDueAsync_LoopbackNotAllowed_RefusesWithoutSending(string host, string range)
    {
        var dispatcher = Dispatcher(Options());
        await EndedJobAsync($"http://{host}:{_receiver.Port}/hook");

        Assert.Equal(1, await dispatcher.DeliverDueAsync(default));

        Assert.Empty(_receiver.Received);
        var failure = Assert.Single((await _outbox.GetStatsAsync(default)).RecentFailures);
        Assert.Contains($"a {range} address; refused", failure.Reason, StringComparison.Ordinal);
        Assert.Equal(1, failure.Attempts); // refused at once, never retried
        _time.Advance(TimeSpan.FromMinutes(10));
        Assert.Equal(0, await dispatcher.DeliverDueAsync(default));
    }

    [Theory]
    [InlineData("10.1.2.3", "private")]
    [InlineData("169.254.169.254", "link-local")] // cloud metadata endpoint
    [InlineData("[fd00::1]", "unique-local")]
    public async Task DeliverDueAsync_PrivateTarget_RefusedBeforeAnyConnect(string host, string range)
    {
        var dispatcher = Dispatcher(Options("127.0.0.0/8"));
        await EndedJobAsync($"http://{host}/hook");

        await dispatcher.DeliverDueAsync(default);

        var failure = Assert.Single((await _outbox.GetStatsAsync(default)).RecentFailures);
        Assert.Contains($"a {range} address; refused", failure.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DeliverDueAsync_ReceiverRedirectsToAPrivateAddress_DoesNotFollow()
    {
        var dispatcher = Dispatcher(Options("127.0.0.0/8"));
        _receiver.Answers.Enqueue(307);
        _receiver.RedirectTo = "http://10.0.0.7/internal";
        await EndedJobAsync(_receiver.BaseUrl + "/hook");

        await dispatcher.DeliverDueAsync(default);

        Assert.Single(_receiver.Received);
        var failure = Assert.Single((await _outbox.GetStatsAsync(default)).RecentFailures);
        Assert.Equal("the receiver answered 307 to http://10.0.0.7/internal; redirects are not followed", failure.Reason);
    }

    [Fact]
    public void Backoff_GrowsExponentiallyWithinJitterUpToMaxDelay()
    {
        var options = Options();
        Assert.Equal(TimeSpan.FromSeconds(5), WebhookDispatcher.Backoff(options, 1, 0));
        Assert.Equal(TimeSpan.FromSeconds(10), WebhookDispatcher.Backoff(options, 1, 1));
        Assert.InRange(WebhookDispatcher.Backoff(options, 2, 0.999999), TimeSpan.FromSeconds(19.99), TimeSpan.FromSeconds(20));
        Assert.Equal(TimeSpan.FromSeconds(30), WebhookDispatcher.Backoff(options, 10, 0));
        Assert.Equal(TimeSpan.FromSeconds(60), WebhookDispatcher.Backoff(options, 40, 1));
    }
}
