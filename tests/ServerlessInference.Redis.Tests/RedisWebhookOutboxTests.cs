using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using ServerlessInference.Jobs;
using ServerlessInference.Testing.Contracts;
using ServerlessInference.Testing.Webhooks;
using ServerlessInference.Webhooks;
using StandardWebhooks;

namespace ServerlessInference.Redis.Tests;

/// <summary>Webhook deliveries kept in Redis: a second gateway (new outbox, store and dispatcher on the same Redis)
/// delivers what the first one left pending, and a claim keeps one delivery in flight.</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisWebhookOutboxTests(RedisFixture redis) : IAsyncLifetime
{
    private static readonly string s_secret = "whsec_" + Convert.ToBase64String(Encoding.ASCII.GetBytes("redis-webhook-tests-secret-32-by"));
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly RedisOptions _options = redis.Options();
    private WebhookReceiver _receiver = null!;

    public async Task InitializeAsync() => _receiver = await WebhookReceiver.StartAsync();

    public async Task DisposeAsync() => await _receiver.DisposeAsync();

    private static WebhookOptions WebhookOptions() => new()
    {
        Secret = s_secret,
        MaxAttempts = 5,
        BaseDelay = TimeSpan.FromSeconds(10),
        MaxDelay = TimeSpan.FromMinutes(1),
        Timeout = TimeSpan.FromSeconds(10),
        AllowedNetworks = ["127.0.0.0/8"],
    };

    /// <summary>One gateway's share of the webhook machinery: its own outbox, result store and dispatcher objects.</summary>
    private (RedisWebhookOutbox Outbox, RedisResultStore Results, WebhookDispatcher Dispatcher) Gateway()
    {
        var outbox = new RedisWebhookOutbox(redis.Redis, RedisFixture.Wrap(_options));
        var results = new RedisResultStore(redis.Redis, RedisFixture.Wrap(_options), RedisFixture.Wrap(new ResultStoreOptions()), _time);
        var options = WebhookOptions();
        var dispatcher = new WebhookDispatcher(outbox, results, new WebhookSender(options, new WebhookTargetPolicy(options)), RedisFixture.Wrap(options), _time,
            NullLogger<WebhookDispatcher>.Instance);
        return (outbox, results, dispatcher);
    }

    private async Task<InferenceJob> EndedJobAsync(IWebhookOutbox outbox, IResultStore results)
    {
        var job = ContractJobs.Job(_time.GetUtcNow());
        await results.TrackAsync(job, default);
        await outbox.AddAsync(new WebhookDelivery(job.Id, _receiver.BaseUrl + "/hook"), _time.GetUtcNow(), default);
        await results.PublishAsync(ContractJobs.Done(job, _time.GetUtcNow()), default);
        return job;
    }

    [Fact]
    public async Task DeliverDueAsync_FirstGatewayGoneAfterAFailedAttempt_SecondGatewayDeliversWithTheSameWebhookId()
    {
        _receiver.Answers.Enqueue(503);
        var first = Gateway();
        var job = await EndedJobAsync(first.Outbox, first.Results);
        Assert.Equal(1, await first.Dispatcher.DeliverDueAsync(default));
        await first.Results.DisposeAsync();

        // A new gateway process: nothing shared with the first but Redis.
        var second = Gateway();
        await using var _ = second.Results;
        Assert.Equal(1, (await second.Outbox.GetStatsAsync(default)).Pending);
        _time.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(1, await second.Dispatcher.DeliverDueAsync(default));

        var attempts = _receiver.Received.ToList();
        Assert.Equal(2, attempts.Count);
        Assert.Equal($"msg_{job.Id}_succeeded", attempts[1].Headers["webhook-id"].ToString());
        Assert.Equal(attempts[0].Headers["webhook-id"].ToString(), attempts[1].Headers["webhook-id"].ToString());
        new StandardWebhook(s_secret).Verify(attempts[1].Body, attempts[1].Headers);
        var stats = await second.Outbox.GetStatsAsync(default);
        Assert.Equal((0L, 1L, 0L), (stats.Pending, stats.Delivered, stats.Failed));
    }

    [Fact]
    public async Task ClaimDueAsync_ClaimedByOneGateway_InvisibleToOthersUntilTheClaimLapses()
    {
        var first = Gateway();
        await using var firstResults = first.Results;
        await EndedJobAsync(first.Outbox, first.Results);
        var second = Gateway();
        await using var secondResults = second.Results;

        // The first gateway claims the delivery and dies before settling it.
        Assert.Single(await first.Outbox.ClaimDueAsync(_time.GetUtcNow(), TimeSpan.FromSeconds(50), 10, default));
        Assert.Equal(0, await second.Dispatcher.DeliverDueAsync(default));
        _time.Advance(TimeSpan.FromSeconds(49));
        Assert.Equal(0, await second.Dispatcher.DeliverDueAsync(default));
        Assert.Empty(_receiver.Received);

        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, await second.Dispatcher.DeliverDueAsync(default));
        Assert.Single(_receiver.Received);
        Assert.Equal(0, (await second.Outbox.GetStatsAsync(default)).Pending);
    }

    [Fact]
    public async Task FailedAsync_DeadLetter_ShowsInStatsOfEveryGateway()
    {
        var first = Gateway();
        await using var firstResults = first.Results;
        var job = await EndedJobAsync(first.Outbox, first.Results);
        await first.Outbox.FailedAsync(new WebhookFailure(job.Id, "http://x/", 5, "gave up", _time.GetUtcNow()), default);
        await first.Outbox.FailedAsync(new WebhookFailure(job.Id, "http://x/", 5, "gave up", _time.GetUtcNow()), default); // counted once

        var stats = await new RedisWebhookOutbox(redis.Redis, RedisFixture.Wrap(_options)).GetStatsAsync(default);
        Assert.Equal((0L, 0L, 1L), (stats.Pending, stats.Delivered, stats.Failed));
        var failure = Assert.Single(stats.RecentFailures);
        Assert.Equal((job.Id, 5, "gave up"), (failure.JobId, failure.Attempts, failure.Reason));
    }
}
