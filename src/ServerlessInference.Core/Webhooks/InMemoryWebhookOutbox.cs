namespace ServerlessInference.Webhooks;

/// <summary>The outbox of a host whose results are in-process (embedded profile): deliveries live as long as the process,
/// as the jobs they report on do.</summary>
public sealed class InMemoryWebhookOutbox : IWebhookOutbox
{
    /// <summary>Recent failures kept for <c>/status</c>.</summary>
    public const int RecentFailures = 50;

    private readonly Lock _lock = new();
    private readonly Dictionary<string, (WebhookDelivery Delivery, DateTimeOffset Due)> _entries = new(StringComparer.Ordinal);
    private readonly LinkedList<WebhookFailure> _failures = new();
    private long _delivered;
    private long _failed;

    public ValueTask AddAsync(WebhookDelivery delivery, DateTimeOffset due, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            _entries[delivery.JobId] = (delivery, due);
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<IReadOnlyList<WebhookDelivery>> ClaimDueAsync(DateTimeOffset now, TimeSpan claimFor, int max, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            var due = _entries.Values.Where(e => e.Due <= now).OrderBy(e => e.Due).Take(max).Select(e => e.Delivery).ToList();
            foreach (var delivery in due)
            {
                _entries[delivery.JobId] = (delivery, now + claimFor);
            }

            return ValueTask.FromResult<IReadOnlyList<WebhookDelivery>>(due);
        }
    }

    public ValueTask RescheduleAsync(WebhookDelivery delivery, DateTimeOffset due, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_entries.ContainsKey(delivery.JobId))
            {
                _entries[delivery.JobId] = (delivery, due);
            }
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask DeliveredAsync(WebhookDelivery delivery, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_entries.Remove(delivery.JobId))
            {
                _delivered++;
            }
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask FailedAsync(WebhookFailure failure, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (_entries.Remove(failure.JobId))
            {
                _failed++;
                _failures.AddFirst(failure);
                if (_failures.Count > RecentFailures)
                {
                    _failures.RemoveLast();
                }
            }
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<WebhookStats> GetStatsAsync(CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            return ValueTask.FromResult(new WebhookStats(_entries.Count, _delivered, _failed, [.. _failures]));
        }
    }
}
