using System.Diagnostics;
using System.Net;
using System.Text.Json;

namespace ServerlessInference.IntegrationTests;

/// <summary>Submitting respond-async jobs and polling <c>/jobs/{id}</c>.</summary>
internal static class Jobs
{
    public static readonly string[] Terminal = ["succeeded", "failed", "cancelled", "expired"];

    /// <summary>Submits with <c>Prefer: respond-async</c>; returns the job id of the 202.</summary>
    public static async Task<string> SubmitAsync(HttpClient client, string model, HttpContent content)
    {
        using var response = await client.SendAsync(Oip.Infer(model, content, respondAsync: true));
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        var id = response.Headers.GetValues("X-Job-Id").Single();
        Assert.Equal($"/jobs/{id}", response.Headers.Location!.ToString());
        return id;
    }

    /// <summary>Polls every job until each is terminal (a 503 while a backing service recovers is polled again);
    /// fails naming the jobs still open after <paramref name="timeout"/>.</summary>
    public static async Task<Dictionary<string, JsonElement>> WaitAllTerminalAsync(HttpClient client, IEnumerable<string> ids, TimeSpan timeout, Func<string>? diagnostics = null)
    {
        var open = ids.ToHashSet();
        var done = new Dictionary<string, JsonElement>();
        var clock = Stopwatch.StartNew();
        var states = new Dictionary<string, string>();
        while (open.Count > 0)
        {
            foreach (var id in open.ToList())
            {
                using var poll = await client.GetAsync($"/jobs/{id}");
                if (poll.StatusCode == HttpStatusCode.ServiceUnavailable)
                {
                    states[id] = "503";
                    continue;
                }

                Assert.True(poll.StatusCode == HttpStatusCode.OK, $"GET /jobs/{id}: {(int)poll.StatusCode} {await poll.Content.ReadAsStringAsync()}");
                var job = await Oip.ReadJsonAsync(poll);
                var status = job.GetProperty("status").GetString()!;
                states[id] = status;
                if (Terminal.Contains(status))
                {
                    done[id] = job;
                    open.Remove(id);
                }
            }

            if (open.Count == 0)
            {
                break;
            }

            if (clock.Elapsed > timeout)
            {
                var still = string.Join(", ", open.Take(10).Select(id => $"{id}={states.GetValueOrDefault(id)}"));
                Assert.Fail($"{open.Count} of {done.Count + open.Count} jobs not finished after {timeout.TotalSeconds} s: {still}\n{diagnostics?.Invoke()}");
            }

            await Task.Delay(100);
        }

        return done;
    }
}
