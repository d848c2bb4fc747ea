using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace ServerlessInference.Cli.Status;

/// <summary><c>si status [--watch]</c>: <c>GET /status</c> as tables of the queue, the workers and the models they hold
/// warm; <c>--watch</c> redraws them in place (a Spectre live display) on a terminal, and writes one snapshot per
/// refresh elsewhere (one JSON document per line with <c>--json</c>).</summary>
public static class StatusCommand
{
    public static Command Create(CliConsole console)
    {
        var watch = new Option<bool>("--watch", "-w") { Description = "Refresh until Ctrl+C" };
        var interval = new Option<double>("--interval") { Description = "Seconds between refreshes with --watch", DefaultValueFactory = _ => 2 };
        var count = new Option<int>("--count") { Description = "With --watch: stop after this many refreshes (0: never)", DefaultValueFactory = _ => 0 };
        var command = new Command("status", "The queue, the workers and their warm models (GET /status; needs an admin key where keys exist)") { watch, interval, count };
        command.SetAction(SiApp.Action(console, async (context, cancellationToken) =>
        {
            var every = context.Get(interval);
            var times = context.Get(count);
            if (double.IsNaN(every) || every < 0.1 || every > 3600)
            {
                throw CliException.Usage("--interval must be between 0.1 and 3600 seconds");
            }

            if (times < 0)
            {
                throw CliException.Usage("--count must be 0 (no limit) or more");
            }

            using var gateway = context.Gateway();
            if (!context.Get(watch))
            {
                using var status = await gateway.GetJsonAsync("status", cancellationToken).ConfigureAwait(false);
                if (context.Json)
                {
                    await SiApp.WriteJsonAsync(console, status.RootElement).ConfigureAwait(false);
                }
                else
                {
                    console.Tables.Write(Render(status.RootElement, gateway.BaseUrl, DateTimeOffset.UtcNow));
                }

                return ExitCodes.Ok;
            }

            if (console.OutputIsTerminal && !context.Json)
            {
                using var first = await gateway.GetJsonAsync("status", cancellationToken).ConfigureAwait(false);
                await console.Tables.Live(Render(first.RootElement, gateway.BaseUrl, DateTimeOffset.UtcNow)).StartAsync(async live =>
                {
                    for (var n = 1; times == 0 || n < times; n++)
                    {
                        await Task.Delay(TimeSpan.FromSeconds(every), cancellationToken).ConfigureAwait(false);
                        using var status = await gateway.GetJsonAsync("status", cancellationToken).ConfigureAwait(false);
                        live.UpdateTarget(Render(status.RootElement, gateway.BaseUrl, DateTimeOffset.UtcNow));
                    }
                }).ConfigureAwait(false);
                return ExitCodes.Ok;
            }

            for (var n = 0; times == 0 || n < times; n++)
            {
                if (n > 0)
                {
                    await Task.Delay(TimeSpan.FromSeconds(every), cancellationToken).ConfigureAwait(false);
                }

                using var status = await gateway.GetJsonAsync("status", cancellationToken).ConfigureAwait(false);
                if (context.Json)
                {
                    // One document per line, so a script can read the stream line by line.
                    await console.Out.WriteLineAsync(JsonSerializer.Serialize(status.RootElement)).ConfigureAwait(false);
                }
                else
                {
                    console.Tables.Write(Render(status.RootElement, gateway.BaseUrl, DateTimeOffset.UtcNow));
                }

                await console.Out.FlushAsync(cancellationToken).ConfigureAwait(false);
            }

            return ExitCodes.Ok;
        }));
        return command;
    }

    /// <summary>The status document as a summary line, a workers table, a models table and the last scaling decisions.</summary>
    public static IRenderable Render(JsonElement status, Uri url, DateTimeOffset now)
    {
        var queue = status.GetProperty("queue");
        var workers = status.TryGetProperty("workers", out var w) ? w.EnumerateArray().ToList() : [];
        var summary = new Markup(
            $"[bold]{Markup.Escape(url.GetLeftPart(UriPartial.Authority))}[/]  queued [bold]{queue.GetProperty("queued").GetInt64()}[/]  in flight [bold]{queue.GetProperty("in_flight").GetInt64()}[/]  " +
            $"workers [bold]{workers.Count}[/]  at {now:HH:mm:ss}\n");

        var workerTable = new Table().Title("workers").AddColumns("WORKER", "STATE", "EP", "IN FLIGHT", "DONE", "WARM MODELS", "HEARTBEAT");
        foreach (var worker in workers)
        {
            var warm = worker.GetProperty("warm_models").EnumerateArray()
                .Select(m => $"{m.GetProperty("model").GetString()}/{m.GetProperty("version").GetString()} ({Format.Bytes(m.GetProperty("bytes").GetInt64())})");
            var heartbeat = worker.TryGetProperty("last_heartbeat", out var hb) && hb.TryGetDateTimeOffset(out var at)
                ? $"{Math.Max(0, (now - at).TotalSeconds).ToString("0.0", CultureInfo.InvariantCulture)} s ago"
                : "";
            workerTable.AddRow(
                Markup.Escape(worker.GetProperty("id").GetString() ?? ""),
                Markup.Escape(worker.GetProperty("state").GetString() ?? ""),
                Markup.Escape(worker.GetProperty("execution_provider").GetString() ?? ""),
                worker.GetProperty("in_flight").GetRawText(),
                worker.TryGetProperty("jobs_completed", out var done) ? done.GetRawText() : "",
                Markup.Escape(string.Join(", ", warm)),
                heartbeat);
        }

        // Models as the workers hold them: who has each warm, and its size.
        var modelTable = new Table().Title("warm models").AddColumns("MODEL", "VERSION", "WORKERS", "BYTES");
        var held = workers
            .SelectMany(worker => worker.GetProperty("warm_models").EnumerateArray().Select(m => (Model: m.GetProperty("model").GetString() ?? "", Version: m.GetProperty("version").GetString() ?? "", Bytes: m.GetProperty("bytes").GetInt64())))
            .GroupBy(m => (m.Model, m.Version))
            .OrderBy(g => g.Key.Model, StringComparer.Ordinal);
        foreach (var group in held)
        {
            modelTable.AddRow(Markup.Escape(group.Key.Model), Markup.Escape(group.Key.Version), group.Count().ToString(CultureInfo.InvariantCulture), Format.Bytes(group.Max(m => m.Bytes)));
        }

        if (status.TryGetProperty("invalid_models", out var invalid))
        {
            foreach (var bad in invalid.EnumerateArray())
            {
                modelTable.AddRow(Markup.Escape(bad.GetProperty("model").GetString() ?? ""), Markup.Escape(bad.GetProperty("version").GetString() ?? ""), "[red]unreadable[/]", Markup.Escape(bad.GetProperty("error").GetString() ?? ""));
            }
        }

        var rows = new List<IRenderable> { summary, workerTable, modelTable };
        if (status.TryGetProperty("scaling_decisions", out var decisions) && decisions.GetArrayLength() > 0)
        {
            var decisionTable = new Table().Title("recent scaling decisions").AddColumns("AT", "CURRENT", "DESIRED", "REASON");
            foreach (var decision in decisions.EnumerateArray().Take(5)) // newest first
            {
                decisionTable.AddRow(
                    decision.TryGetProperty("at", out var at2) && at2.TryGetDateTimeOffset(out var when) ? when.ToString("HH:mm:ss", CultureInfo.InvariantCulture) : "",
                    decision.GetProperty("current").GetRawText(),
                    decision.GetProperty("desired").GetRawText(),
                    Markup.Escape(decision.GetProperty("reason").GetString() ?? ""));
            }

            rows.Add(decisionTable);
        }

        return new Rows(rows);
    }
}
