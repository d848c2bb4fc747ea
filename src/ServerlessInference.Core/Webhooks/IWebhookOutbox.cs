namespace ServerlessInference.Webhooks;

/// <summary>A job's webhook waiting to be delivered: the job, where to, attempts so far and why the last one failed.</summary>
public sealed record WebhookDelivery(string JobId, string Url, int Attempts = 0, string? LastError = null);

/// <summary>A webhook that was given up on (the dead letter <c>/status</c> shows).</summary>
public sealed record WebhookFailure(string JobId, string Url, int Attempts, string Reason, DateTimeOffset At);

/// <summary>What <c>/status</c> shows of webhooks: waiting (for their job to end, or for a retry), delivered and failed
/// counts, and the most recent failures with their reasons.</summary>
public sealed record WebhookStats(long Pending, long Delivered, long Failed, IReadOnlyList<WebhookFailure> RecentFailures);

/// <summary>Deliveries that survive the process that accepted them: one entry per job with a webhook, from submission
/// until it is delivered or dead-lettered.</summary>
/// <remarks>Claiming is exclusive: a claimed entry is invisible to every dispatcher (of every gateway sharing the
/// outbox) until it is rescheduled, settled, or the claim runs out (its dispatcher died), so one delivery per job is in
/// flight at a time. Implementations are thread-safe.</remarks>
public interface IWebhookOutbox
{
    /// <summary>Adds <paramref name="delivery"/>, first due at <paramref name="due"/>.</summary>
    ValueTask AddAsync(WebhookDelivery delivery, DateTimeOffset due, CancellationToken cancellationToken);

    /// <summary>Up to <paramref name="max"/> entries due at <paramref name="now"/>, each claimed until now +
    /// <paramref name="claimFor"/>.</summary>
    ValueTask<IReadOnlyList<WebhookDelivery>> ClaimDueAsync(DateTimeOffset now, TimeSpan claimFor, int max, CancellationToken cancellationToken);

    /// <summary>Releases a claim: the entry (with its attempts and last error as given) is due again at <paramref name="due"/>.</summary>
    ValueTask RescheduleAsync(WebhookDelivery delivery, DateTimeOffset due, CancellationToken cancellationToken);

    /// <summary>Removes a delivered entry and counts it.</summary>
    ValueTask DeliveredAsync(WebhookDelivery delivery, CancellationToken cancellationToken);

    /// <summary>Removes an entry given up on, counts it and keeps it among the recent failures.</summary>
    ValueTask FailedAsync(WebhookFailure failure, CancellationToken cancellationToken);

    ValueTask<WebhookStats> GetStatsAsync(CancellationToken cancellationToken);
}
