using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;

namespace ServerlessInference.Cli.Jobs;

/// <summary><c>si jobs get | cancel | wait ID</c> over <c>GET</c> and <c>DELETE /jobs/{id}</c>.</summary>
public static class JobsCommands
{
    private static readonly string[] s_terminal = ["succeeded", "failed", "cancelled", "expired"];

    public static Command Create(CliConsole console)
    {
        var jobs = new Command("jobs", "Follow and cancel asynchronous jobs");
        jobs.Subcommands.Add(Get(console));
        jobs.Subcommands.Add(Cancel(console));
        jobs.Subcommands.Add(Wait(console));
        return jobs;
    }

    private static Command Get(CliConsole console)
    {
        var id = new Argument<string>("id") { Description = "The job id (X-Job-Id, or the Location of a 202)" };
        var command = new Command("get", "A job's status and, once it ended, its result") { id };
        command.SetAction(SiApp.Action(console, async (context, cancellationToken) =>
        {
            using var gateway = context.Gateway();
            using var job = await gateway.GetJsonAsync(JobPath(context.Get(id)), cancellationToken).ConfigureAwait(false);
            await WriteAsync(context, job.RootElement).ConfigureAwait(false);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Cancel(CliConsole console)
    {
        var id = new Argument<string>("id") { Description = "The job id" };
        var command = new Command("cancel", "Cancel a job that has not started (or a running generation)") { id };
        command.SetAction(SiApp.Action(console, async (context, cancellationToken) =>
        {
            using var gateway = context.Gateway();
            using var response = await gateway.SendAsync(new HttpRequestMessage(HttpMethod.Delete, JobPath(context.Get(id))), HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
            using var job = await GatewayClient.ReadJsonAsync(response, cancellationToken).ConfigureAwait(false);
            await WriteAsync(context, job.RootElement).ConfigureAwait(false);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Wait(CliConsole console)
    {
        var id = new Argument<string>("id") { Description = "The job id" };
        var timeout = new Option<double>("--timeout") { Description = "Give up after this many seconds (exit 5)", DefaultValueFactory = _ => 300 };
        var interval = new Option<double>("--interval") { Description = "Seconds between polls", DefaultValueFactory = _ => 0.5 };
        var command = new Command("wait", "Wait until a job ends; exit 0 if it succeeded, 1 if it failed, was cancelled or expired") { id, timeout, interval };
        command.SetAction(SiApp.Action(console, async (context, cancellationToken) =>
        {
            var every = context.Get(interval);
            var limit = context.Get(timeout);
            if (every is <= 0 or > 3600 || double.IsNaN(every))
            {
                throw CliException.Usage("--interval must be between 0 and 3600 seconds");
            }

            if (limit <= 0 || double.IsNaN(limit))
            {
                throw CliException.Usage("--timeout must be a positive number of seconds");
            }

            using var gateway = context.Gateway();
            var jobId = context.Get(id);
            var started = TimeProvider.System.GetTimestamp();
            while (true)
            {
                using var job = await gateway.GetJsonAsync(JobPath(jobId), cancellationToken).ConfigureAwait(false);
                var status = job.RootElement.GetProperty("status").GetString();
                if (s_terminal.Contains(status))
                {
                    await WriteAsync(context, job.RootElement).ConfigureAwait(false);
                    if (status == "succeeded")
                    {
                        return ExitCodes.Ok;
                    }

                    var error = job.RootElement.TryGetProperty("error", out var e) ? e.GetString() : null;
                    throw new CliException(ExitCodes.Failed, $"job {jobId} {status}{(error is null ? "" : ": " + error)}");
                }

                if (TimeProvider.System.GetElapsedTime(started).TotalSeconds >= limit)
                {
                    throw new CliException(ExitCodes.Timeout, $"job {jobId} is still {status} after {limit.ToString(CultureInfo.InvariantCulture)} s");
                }

                await Task.Delay(TimeSpan.FromSeconds(every), cancellationToken).ConfigureAwait(false);
            }
        }));
        return command;
    }

    private static string JobPath(string id) => "jobs/" + Uri.EscapeDataString(id);

    private static Task WriteAsync(CliContext context, JsonElement job)
    {
        if (context.Json)
        {
            return SiApp.WriteJsonAsync(context.Console, job);
        }

        WriteJob(context.Console, job);
        return Task.CompletedTask;
    }

    /// <summary>A job document as a two-column table; outputs of a finished job below it.</summary>
    public static void WriteJob(CliConsole console, JsonElement job)
    {
        var table = new Table().AddColumns("FIELD", "VALUE").HideHeaders();
        foreach (var field in new[] { "id", "model", "version", "status", "submitted_at", "started_at", "completed_at", "error" })
        {
            if (job.TryGetProperty(field, out var value))
            {
                table.AddRow(field, Markup.Escape(value.ValueKind == JsonValueKind.String ? value.GetString() ?? "" : value.GetRawText()));
            }
        }

        if (job.TryGetProperty("response", out var response) && response.TryGetProperty("outputs", out var outputs))
        {
            foreach (var output in outputs.EnumerateArray())
            {
                var data = output.TryGetProperty("data", out var d) ? d.GetRawText() : "";
                table.AddRow("output " + Markup.Escape(output.GetProperty("name").GetString() ?? ""), Markup.Escape(data.Length > 120 ? data[..120] + "…" : data));
            }
        }

        console.Tables.Write(table);
    }
}
