using System.Buffers;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Scaling;
using ServerlessInference.Webhooks;
using ServerlessInference.Workers;

namespace ServerlessInference.Gateway;

/// <summary>The <c>/status</c> document: what an operator asks first (how deep is the queue, who is working, what is warm).</summary>
internal static class StatusReport
{
    /// <summary>Deliveries waiting (for their job or a retry), delivered and dead-lettered, and the recent dead letters
    /// with their reasons (targets without their query, which may hold a token).</summary>
    private static void WriteWebhooks(Utf8JsonWriter w, WebhookStats stats)
    {
        w.WriteStartObject("webhooks");
        w.WriteNumber("pending", stats.Pending);
        w.WriteNumber("delivered", stats.Delivered);
        w.WriteNumber("failed", stats.Failed);
        w.WriteStartArray("recent_failures");
        foreach (var failure in stats.RecentFailures)
        {
            w.WriteStartObject();
            w.WriteString("job", failure.JobId);
            w.WriteString("target", Uri.TryCreate(failure.Url, UriKind.Absolute, out var uri) ? uri.GetLeftPart(UriPartial.Path) : "");
            w.WriteNumber("attempts", failure.Attempts);
            w.WriteString("reason", failure.Reason);
            w.WriteString("at", failure.At);
            w.WriteEndObject();
        }

        w.WriteEndArray();
        w.WriteEndObject();
    }

    public static async ValueTask<ReadOnlyMemory<byte>> BuildAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        var depth = await services.GetRequiredService<IJobQueue>().GetDepthAsync(cancellationToken).ConfigureAwait(false);
        var registry = services.GetRequiredService<IWorkerRegistry>();
        var workers = await registry.ListAsync(cancellationToken).ConfigureAwait(false);
        var coldStarts = await registry.ListColdStartsAsync(cancellationToken).ConfigureAwait(false);
        var pool = services.GetService<WarmPool>();
        var decisions = services.GetService<IScalingDecisionLog>() is { } log
            ? await log.ReadRecentAsync(50, cancellationToken).ConfigureAwait(false)
            : null;
        var listing = services.GetService<ModelCatalog>() is { } catalog
            ? await ListingAsync(catalog, cancellationToken).ConfigureAwait(false)
            : ModelListing.Empty;
        var invalidModels = listing.Invalid;

        var webhooks = services.GetService<Microsoft.Extensions.Options.IOptions<WebhookOptions>>()?.Value is { Enabled: true }
            && services.GetService<IWebhookOutbox>() is { } outbox
            ? await outbox.GetStatsAsync(cancellationToken).ConfigureAwait(false)
            : null;

        var buffer = new ArrayBufferWriter<byte>(2048);
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartObject("queue");
            w.WriteNumber("queued", depth.Queued);
            w.WriteNumber("in_flight", depth.InFlight);
            w.WriteEndObject();

            var providers = workers.Select(x => x.ExecutionProvider).ToHashSet(StringComparer.Ordinal);
            if (pool is not null)
            {
                providers.Add(pool.ExecutionProvider);
            }

            w.WriteStartArray("execution_providers");
            foreach (var provider in providers.Order(StringComparer.Ordinal))
            {
                w.WriteStringValue(provider);
            }

            w.WriteEndArray();

            w.WriteStartArray("workers");
            foreach (var worker in workers)
            {
                w.WriteStartObject();
                w.WriteString("id", worker.Id);
                w.WriteString("host", worker.Host);
                w.WriteString("state", worker.State.ToString().ToLowerInvariant());
                w.WriteString("execution_provider", worker.ExecutionProvider);
                w.WriteNumber("in_flight", worker.InFlight);
                w.WriteNumber("running_sequences", worker.RunningSequences);
                w.WriteNumber("jobs_completed", worker.JobsCompleted);
                w.WriteNumber("memory_used_bytes", worker.MemoryUsedBytes);
                w.WriteNumber("memory_budget_bytes", worker.MemoryBudgetBytes);
                w.WriteString("started_at", worker.StartedAt);
                w.WriteString("last_heartbeat", worker.LastHeartbeat);
                w.WriteStartArray("warm_models");
                foreach (var model in worker.WarmModels)
                {
                    w.WriteStartObject();
                    w.WriteString("model", model.Model);
                    w.WriteString("version", model.Version);
                    w.WriteNumber("bytes", model.Bytes);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                w.WriteEndObject();
            }

            w.WriteEndArray();

            WriteModels(w, depth, workers, listing);

            if (pool is not null)
            {
                var counters = pool.Counters;
                w.WriteStartObject("warm_pool");
                w.WriteNumber("used_bytes", counters.UsedBytes);
                w.WriteNumber("budget_bytes", counters.BudgetBytes);
                w.WriteNumber("hits", counters.Hits);
                w.WriteNumber("misses", counters.Misses);
                w.WriteNumber("loads", counters.Loads);
                w.WriteNumber("load_failures", counters.LoadFailures);
                w.WriteNumber("evictions", counters.Evictions);
                w.WriteNumber("load_seconds", counters.LoadTime.TotalSeconds);
                w.WriteStartArray("models");
                foreach (var model in pool.Snapshot())
                {
                    w.WriteStartObject();
                    w.WriteString("model", model.Name);
                    w.WriteString("version", model.Version);
                    w.WriteNumber("bytes", model.Bytes);
                    w.WriteNumber("leases", model.Leases);
                    w.WriteString("state", model.State);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                w.WriteEndObject();
            }

            if (webhooks is not null)
            {
                WriteWebhooks(w, webhooks);
            }

            // Manifests the model store holds but cannot read: skipped from every model list, shown here.
            w.WriteStartArray("invalid_models");
            foreach (var invalid in invalidModels)
            {
                w.WriteStartObject();
                w.WriteString("model", invalid.Model);
                w.WriteString("version", invalid.Version);
                w.WriteString("error", ClientErrorText.Scrub(invalid.Error));
                w.WriteEndObject();
            }

            w.WriteEndArray();

            // Queue-depth switches to quantized variants: state, the depth last read, and where this gateway sent requests.
            w.WriteStartArray("variant_switches");
            foreach (var state in services.GetService<InferenceGateway>()?.Variants.Snapshot() ?? [])
            {
                w.WriteStartObject();
                w.WriteString("model", state.Model);
                w.WriteString("version", state.Version);
                w.WriteString("variant", state.Variant);
                w.WriteNumber("when_queue_depth_at_least", state.Threshold);
                w.WriteBoolean("active", state.Active);
                w.WriteNumber("queued_seen", state.QueuedSeen);
                w.WriteNumber("switches", state.Switches);
                if (state.ChangedAt is { } changedAt)
                {
                    w.WriteString("changed_at", changedAt);
                }

                w.WriteStartObject("served");
                foreach (var (version, count) in state.Served.OrderBy(p => p.Key, StringComparer.Ordinal))
                {
                    w.WriteNumber(version, count);
                }

                w.WriteEndObject();
                w.WriteEndObject();
            }

            w.WriteEndArray();

            // The last jobs that waited for a model load (or a worker), newest first, with the milliseconds of each stage.
            w.WriteStartArray("cold_starts");
            foreach (var coldStart in coldStarts)
            {
                w.WriteStartObject();
                w.WriteString("worker", coldStart.WorkerId);
                w.WriteString("job", coldStart.JobId);
                w.WriteString("model", coldStart.Model);
                w.WriteString("version", coldStart.Version);
                w.WriteString("queued_at", coldStart.QueuedAt);
                w.WriteString("answered_at", coldStart.AnsweredAt);
                w.WriteNumber("total_ms", Math.Round(coldStart.TotalMilliseconds, 1));
                w.WriteStartObject("stages_ms");
                foreach (var stage in coldStart.Stages)
                {
                    w.WriteNumber(stage.Stage, Math.Round(stage.Milliseconds, 1));
                }

                w.WriteEndObject();
                w.WriteEndObject();
            }

            w.WriteEndArray();

            if (decisions is not null)
            {
                w.WriteStartArray("scaling_decisions");
                foreach (var decision in decisions)
                {
                    w.WriteStartObject();
                    w.WriteString("at", decision.At);
                    w.WriteNumber("current", decision.CurrentReplicas);
                    w.WriteNumber("desired", decision.DesiredReplicas);
                    w.WriteNumber("queued", decision.Queued);
                    w.WriteNumber("in_flight", decision.InFlight);
                    w.WriteString("reason", decision.Reason);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }

            w.WriteEndObject();
        }

        return buffer.WrittenMemory;
    }

    /// <summary>Per model (every model the store lists, and any other the queue or a worker names): jobs queued and in
    /// flight when the queue counts per model (null otherwise), the workers holding it warm, the loads and evictions the
    /// workers reported for the last <see cref="ModelActivity.Window"/>, and its manifest's sharing settings (null for a
    /// model the store no longer lists).</summary>
    private static void WriteModels(Utf8JsonWriter w, QueueDepth depth, IReadOnlyList<WorkerStatus> workers, ModelListing listing)
    {
        var manifests = AffinityRule.LatestByName(listing);
        var names = new SortedSet<string>(manifests.Keys, StringComparer.Ordinal);
        names.UnionWith(depth.ByModel?.Keys ?? []);
        foreach (var worker in workers)
        {
            names.UnionWith(worker.WarmModels.Select(m => m.Model));
            names.UnionWith(worker.RecentModelActivity.Select(a => a.Model));
        }

        w.WriteNumber("model_activity_window_seconds", ModelActivity.Window.TotalSeconds);
        w.WriteStartArray("models");
        foreach (var name in names)
        {
            w.WriteStartObject();
            w.WriteString("model", name);
            if (depth.ByModel is { } byModel)
            {
                var counts = byModel.GetValueOrDefault(name);
                w.WriteNumber("queued", counts.Queued);
                w.WriteNumber("in_flight", counts.InFlight);
            }
            else
            {
                w.WriteNull("queued");
                w.WriteNull("in_flight");
            }

            w.WriteStartArray("warm_workers");
            foreach (var worker in workers)
            {
                if (worker.WarmModels.Any(m => m.Model == name))
                {
                    w.WriteStringValue(worker.Id);
                }
            }

            w.WriteEndArray();
            w.WriteNumber("recent_loads", workers.Sum(x => x.RecentModelActivity.Where(a => a.Model == name).Sum(a => a.Loads)));
            w.WriteNumber("recent_evictions", workers.Sum(x => x.RecentModelActivity.Where(a => a.Model == name).Sum(a => a.Evictions)));
            if (manifests.TryGetValue(name, out var manifest))
            {
                w.WriteNumber("weight", manifest.Weight);
                w.WriteNumber("min_warm", manifest.MinWarm);
                WriteNumberOrNull(w, "max_workers", manifest.MaxWorkers);
                WriteNumberOrNull(w, "max_queued", manifest.MaxQueued);
            }
            else
            {
                w.WriteNull("weight");
                w.WriteNull("min_warm");
                w.WriteNull("max_workers");
                w.WriteNull("max_queued");
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    private static void WriteNumberOrNull(Utf8JsonWriter w, string name, int? value)
    {
        if (value is { } number)
        {
            w.WriteNumber(name, number);
        }
        else
        {
            w.WriteNull(name);
        }
    }

    private static async ValueTask<ModelListing> ListingAsync(ModelCatalog catalog, CancellationToken cancellationToken)
    {
        try
        {
            return await catalog.ListAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (InferenceException ex) when (ex.Error == InferenceError.Unavailable)
        {
            // The model store is down: /status still reports the queue and the workers.
            return ModelListing.Empty;
        }
    }
}
