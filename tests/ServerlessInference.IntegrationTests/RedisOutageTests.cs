using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Testing.Services;
using Xunit.Abstractions;

namespace ServerlessInference.IntegrationTests;

/// <summary>Redis goes away for a few seconds under load. A Redis (append-only, so a restart keeps the queue) and a
/// platform of this test's own, so the shared one is not disturbed.</summary>
[Collection(PlatformCollection.Name)]
[Trait("Category", "Integration")]
public sealed class RedisOutageTests(PlatformFixture fixture, ITestOutputHelper output)
{
    private static readonly int[] Seeds = [41, 42, 43, 44];
    private static readonly TimeSpan Outage = TimeSpan.FromSeconds(3);

    private enum Phase
    {
        Before,
        Down,
        After,
    }

    [Fact]
    public async Task RedisStoppedForAFewSeconds_GatewayAnswers503WithRetryAfter_ThenRecovers_AndNoAcceptedJobIsLost()
    {
        await using var redis = await RedisServer.StartAsync(appendOnly: true);
        await using var host = new PlatformHost(redis.ConnectionString, fixture.Azurite.ConnectionString, replicas: 2);
        var workers = await host.StartAsync(PlatformFixture.StartTimeout);
        using var client = host.CreateClient();
        client.Timeout = TimeSpan.FromSeconds(20);
        foreach (var seed in Seeds)
        {
            fixture.ExpectedMlp(seed);
        }

        // Warm: one answer before the outage.
        using (var warm = await client.SendAsync(Oip.Infer(MlpBenchModel.Name, Oip.MlpRequest(PlatformFixture.MlpInput(Seeds[0]), "warm"))))
        {
            Oip.AssertClose(fixture.ExpectedMlp(Seeds[0]), (await Oip.ReadResponseAsync(warm)).Outputs[0].AsSpan<float>());
        }

        var phase = (int)Phase.Before;
        var accepted = new ConcurrentQueue<(string Id, int Seed, Phase Phase)>();
        var refused = new ConcurrentQueue<(Phase Phase, string? RetryAfter, string Error)>();
        var unexpected = new ConcurrentQueue<string>();
        var clock = Stopwatch.StartNew();
        TimeSpan? firstAcceptedAfter = null;
        using var stop = new CancellationTokenSource();

        // Two clients keep submitting respond-async jobs (one every ~20 ms each); every 202 and every 503 is recorded.
        async Task SubmitLoopAsync(int lane)
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var seed = Seeds[(i + lane) % Seeds.Length];
                var sentIn = (Phase)Volatile.Read(ref phase);
                try
                {
                    using var response = await client.SendAsync(Oip.Infer(MlpBenchModel.Name, Oip.MlpRequest(PlatformFixture.MlpInput(seed), $"outage-{lane}-{i}"), respondAsync: true));
                    var body = await response.Content.ReadAsStringAsync();
                    switch (response.StatusCode)
                    {
                        case HttpStatusCode.Accepted:
                            accepted.Enqueue((response.Headers.GetValues("X-Job-Id").Single(), seed, sentIn));
                            if (sentIn == Phase.After)
                            {
                                firstAcceptedAfter ??= clock.Elapsed;
                            }

                            break;
                        case HttpStatusCode.ServiceUnavailable:
                            refused.Enqueue((sentIn, response.Headers.RetryAfter?.ToString(), body));
                            break;
                        default:
                            unexpected.Enqueue($"{clock.Elapsed.TotalSeconds:F1} s ({sentIn}): {(int)response.StatusCode} {body}");
                            break;
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    unexpected.Enqueue($"{clock.Elapsed.TotalSeconds:F1} s ({sentIn}): {ex.GetType().Name}: {ex.Message}");
                }

                await Task.Delay(20);
            }
        }

        var loops = new[] { Task.Run(() => SubmitLoopAsync(0)), Task.Run(() => SubmitLoopAsync(1)) };
        try
        {
            await WaitForAsync(() => accepted.Count >= 10, TimeSpan.FromSeconds(20), "jobs were not accepted before the outage");

            await redis.StopAsync(graceful: true);
            var downAt = clock.Elapsed;
            Volatile.Write(ref phase, (int)Phase.Down);
            await Task.Delay(Outage);
            Volatile.Write(ref phase, (int)Phase.After);
            await redis.RestartAsync();
            var upAt = clock.Elapsed;

            await WaitForAsync(() => accepted.Count(a => a.Phase == Phase.After) >= 10, TimeSpan.FromSeconds(30), "the gateway did not accept jobs again after Redis came back");
            output.WriteLine($"Redis down at {downAt.TotalSeconds:F1} s, back at {upAt.TotalSeconds:F1} s; first 202 after it at {firstAcceptedAfter?.TotalSeconds:F1} s");
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(loops);
        }

        output.WriteLine($"accepted {accepted.Count} ({accepted.Count(a => a.Phase == Phase.Before)} before, {accepted.Count(a => a.Phase == Phase.Down)} while down, "
            + $"{accepted.Count(a => a.Phase == Phase.After)} after); 503: {refused.Count}");
        Assert.True(unexpected.IsEmpty, $"answers other than 202 and 503:\n{string.Join("\n", unexpected.Take(10))}\nlog:\n{host.Logs.Tail(40)}");
        Assert.Contains(refused, r => r.Phase == Phase.Down);
        Assert.All(refused, r =>
        {
            Assert.True(int.TryParse(r.RetryAfter, out var seconds) && seconds >= 1, $"503 without a usable Retry-After ({r.RetryAfter}): {r.Error}");
            Assert.Contains("unavailable", r.Error, StringComparison.OrdinalIgnoreCase);
        });

        // No accepted job is lost: every 202 reaches succeeded with the right answer.
        var done = await Jobs.WaitAllTerminalAsync(client, accepted.Select(a => a.Id), TimeSpan.FromSeconds(60), () => host.Logs.Tail());
        foreach (var (id, seed, _) in accepted)
        {
            var job = done[id];
            Assert.True(job.GetProperty("status").GetString() == "succeeded", $"job {id}: {job}");
            Oip.AssertClose(fixture.ExpectedMlp(seed), Assert.Single(Oip.JobResponse(job).Outputs).AsSpan<float>());
        }

        // The worker processes ride out the outage (a service blip is a failure that may pass: InferenceWorker backs off
        // and retries, the jobs' leases come back), and the scaler never asks for more than MaxReplicas.
        var after = host.Orchestrator.Workers;
        output.WriteLine($"workers before: [{string.Join(", ", workers)}]; after: [{string.Join(", ", after)}]");
        var exited = host.Logs.Matching("exited on its own");
        var why = host.Logs.Following("BackgroundServiceExceptionBehavior", 16);
        Assert.True(exited.Count == 0 && after.OrderBy(w => w.Id).SequenceEqual(workers.OrderBy(w => w.Id)) && workers.All(w => PlatformHost.IsWorkerProcess(w.ProcessId)),
            $"worker processes exited during the Redis outage:\n{string.Join("\n", exited)}\n{string.Join("\n", why)}");
        await host.AssertScalingWithinMaxReplicasAsync(client);
    }

    private static async Task WaitForAsync(Func<bool> condition, TimeSpan timeout, string message)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < timeout, $"{message} within {timeout.TotalSeconds} s");
            await Task.Delay(50);
        }
    }
}
