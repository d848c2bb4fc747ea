using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessInference.Gateway;
using ServerlessInference.Jobs;

namespace ServerlessInference.Webhooks;

/// <summary>Delivers job webhooks from the <see cref="IWebhookOutbox"/>: when a claimed entry's job has ended, POSTs the
/// job's record (the JSON of <c>GET /jobs/{id}</c>) signed; retries a failure with exponential backoff and jitter, and
/// dead-letters after <see cref="WebhookOptions.MaxAttempts"/> or at once on a refusal.</summary>
/// <remarks>
/// <para>Any gateway delivers any job: the outbox entry is written when the job is accepted and the dispatcher reads the
/// job's state from the shared result store, so an async job whose client never polls still gets its webhook, and a
/// gateway restart loses nothing kept in Redis. The outbox's exclusive claim keeps one delivery per job in flight.</para>
/// <para>The <c>webhook-id</c> is <c>msg_{job}_{status}</c>: the same on every retry (receivers deduplicate on it),
/// different only if a worker's late success replaces a dead-letter (a new message). Thread-safe.</para>
/// </remarks>
public sealed partial class WebhookDispatcher(
    IWebhookOutbox outbox,
    IResultStore results,
    WebhookSender sender,
    IOptions<WebhookOptions> options,
    TimeProvider timeProvider,
    ILogger<WebhookDispatcher> logger)
{
    /// <summary>Most deliveries one pass claims.</summary>
    public const int MaxPerPass = 64;

    private readonly WebhookOptions _options = options.Value;

    public IWebhookOutbox Outbox => outbox;

    /// <summary>The wait after the <paramref name="attempts"/>-th failed attempt: BaseDelay × 2^(attempts-1), at most
    /// MaxDelay, jittered to between half and all of it (<paramref name="jitter"/> in [0, 1)).</summary>
    public static TimeSpan Backoff(WebhookOptions options, int attempts, double jitter)
    {
        var exponent = Math.Min(attempts - 1, 30);
        var full = Math.Min(options.BaseDelay.TotalMilliseconds * Math.Pow(2, exponent), options.MaxDelay.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(full * (0.5 + 0.5 * jitter));
    }

    /// <summary>Claims what is due now and handles it; returns how many entries it claimed.</summary>
    public async Task<int> DeliverDueAsync(CancellationToken cancellationToken)
    {
        var now = timeProvider.GetUtcNow();
        // A claim outlives an attempt (timeout) by a margin, so it lapses only when this dispatcher is gone.
        var claimed = await outbox.ClaimDueAsync(now, _options.Timeout * 2 + TimeSpan.FromSeconds(30), MaxPerPass, cancellationToken).ConfigureAwait(false);
        await Task.WhenAll(claimed.Select(d => HandleAsync(d, cancellationToken))).ConfigureAwait(false);
        return claimed.Count;
    }

    private async Task HandleAsync(WebhookDelivery delivery, CancellationToken cancellationToken)
    {
        try
        {
            var record = await results.GetAsync(delivery.JobId, cancellationToken).ConfigureAwait(false);
            if (record is null)
            {
                await FailAsync(delivery, "the job's record expired before its webhook was delivered", cancellationToken).ConfigureAwait(false);
                return;
            }

            if (!record.Status.IsTerminal())
            {
                await outbox.RescheduleAsync(delivery, timeProvider.GetUtcNow() + _options.PollInterval, cancellationToken).ConfigureAwait(false);
                return;
            }

            var messageId = $"msg_{record.Id}_{GatewayHttp.StatusName(record.Status)}";
            var (outcome, reason) = await sender.SendAsync(delivery.Url, messageId, timeProvider.GetUtcNow(), GatewayHttp.JobJson(record), cancellationToken)
                .ConfigureAwait(false);
            var attempted = delivery with { Attempts = delivery.Attempts + 1, LastError = reason };
            switch (outcome)
            {
                case WebhookAttemptOutcome.Delivered:
                    await outbox.DeliveredAsync(attempted, cancellationToken).ConfigureAwait(false);
                    Log.Delivered(logger, record.Id, attempted.Attempts);
                    break;
                case WebhookAttemptOutcome.Refused:
                    Log.Refused(logger, record.Id, reason!);
                    await FailAsync(attempted, reason!, cancellationToken).ConfigureAwait(false);
                    break;
                case var _ when attempted.Attempts >= _options.MaxAttempts:
                    await FailAsync(attempted, $"gave up after {attempted.Attempts} attempts; last: {reason}", cancellationToken).ConfigureAwait(false);
                    break;
                default:
                    var wait = Backoff(_options, attempted.Attempts, Random.Shared.NextDouble());
                    Log.Retrying(logger, record.Id, attempted.Attempts, reason!, wait);
                    await outbox.RescheduleAsync(attempted, timeProvider.GetUtcNow() + wait, cancellationToken).ConfigureAwait(false);
                    break;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // The store or the outbox blipped: the claim lapses and the entry comes back.
            Log.PassFailed(logger, ex, delivery.JobId);
        }
    }

    private async ValueTask FailAsync(WebhookDelivery delivery, string reason, CancellationToken cancellationToken)
    {
        Log.DeadLettered(logger, delivery.JobId, reason);
        await outbox.FailedAsync(new WebhookFailure(delivery.JobId, delivery.Url, delivery.Attempts, reason, timeProvider.GetUtcNow()), cancellationToken)
            .ConfigureAwait(false);
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Debug, "Webhook of job {JobId} delivered (attempt {Attempt})")]
        public static partial void Delivered(ILogger logger, string jobId, int attempt);

        [LoggerMessage(2, LogLevel.Warning, "Webhook of job {JobId} refused: {Reason}")]
        public static partial void Refused(ILogger logger, string jobId, string reason);

        [LoggerMessage(3, LogLevel.Information, "Webhook of job {JobId}: attempt {Attempt} failed ({Reason}); next in {Wait}")]
        public static partial void Retrying(ILogger logger, string jobId, int attempt, string reason, TimeSpan wait);

        [LoggerMessage(4, LogLevel.Warning, "Webhook of job {JobId} dead-lettered: {Reason}")]
        public static partial void DeadLettered(ILogger logger, string jobId, string reason);

        [LoggerMessage(5, LogLevel.Warning, "Webhook pass for job {JobId} failed; its claim lapses and it comes back")]
        public static partial void PassFailed(ILogger logger, Exception exception, string jobId);
    }
}

/// <summary>Runs <see cref="WebhookDispatcher.DeliverDueAsync"/> every <see cref="WebhookOptions.PollInterval"/> in a
/// gateway host, when webhooks are configured.</summary>
public sealed partial class WebhookDispatcherService(
    WebhookDispatcher dispatcher, IOptions<WebhookOptions> options, TimeProvider timeProvider, ILogger<WebhookDispatcherService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.Enabled)
        {
            return;
        }

        using var timer = new PeriodicTimer(options.Value.PollInterval, timeProvider);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            try
            {
                // Keep going while passes come back full.
                while (await dispatcher.DeliverDueAsync(stoppingToken).ConfigureAwait(false) == WebhookDispatcher.MaxPerPass)
                {
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
            {
                Log.PassFailed(logger, ex);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "A webhook delivery pass failed; the next tick tries again")]
        public static partial void PassFailed(ILogger logger, Exception exception);
    }
}
