using System.Collections.Concurrent;
using System.Diagnostics;
using ServerlessInference.Onnx.Demo;
using Xunit.Abstractions;

namespace ServerlessInference.IntegrationTests;

[Collection(PlatformCollection.Name)]
[Trait("Category", "Integration")]
public sealed class ManyRequestsTests(PlatformFixture fixture, ITestOutputHelper output)
{
    private const int MlpRequests = 425;
    private const int ResNetRequests = 75;
    private const int Concurrency = 16;
    private static readonly int[] MlpSeeds = [11, 12, 13, 14, 15];
    private static readonly int[] ResNetSeeds = [21, 22, 23];

    [Fact]
    public async Task FiveHundredRequestsOverBothModels_TwoWorkerProcesses_EveryAnswerEqualsADirectOnnxRuntimeRun()
    {
        var host = fixture.Host;
        using var client = host.CreateClient();
        client.Timeout = TimeSpan.FromSeconds(90);
        var workers = await host.WaitForWorkersAsync(client, PlatformFixture.StartTimeout);
        Assert.Equal(2, workers.Count);
        Assert.Equal(2, workers.Select(w => w.ProcessId).Distinct().Count());

        // 425 mlp-bench (JSON) and 75 resnet18 (binary tensors) interleaved: every 6th or 7th request is a resnet18.
        var work = new List<(string Model, int Seed, int Index)>();
        for (int i = 0, m = 0, r = 0; i < MlpRequests + ResNetRequests; i++)
        {
            var resnet = r < ResNetRequests && (i * ResNetRequests / (MlpRequests + ResNetRequests)) >= r;
            work.Add(resnet ? (ResNet18Model.Name, ResNetSeeds[r % ResNetSeeds.Length], r++) : (MlpBenchModel.Name, MlpSeeds[m % MlpSeeds.Length], m++));
        }

        Assert.Equal(MlpRequests, work.Count(w => w.Model == MlpBenchModel.Name));
        Assert.Equal(ResNetRequests, work.Count(w => w.Model == ResNet18Model.Name));
        foreach (var seed in MlpSeeds)
        {
            fixture.ExpectedMlp(seed);
        }

        foreach (var seed in ResNetSeeds)
        {
            fixture.ExpectedResNet(seed);
        }

        var failures = new ConcurrentQueue<string>();
        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(work, new ParallelOptions { MaxDegreeOfParallelism = Concurrency }, async (item, _) =>
        {
            var id = $"{item.Model}-{item.Index}";
            try
            {
                var resnet = item.Model == ResNet18Model.Name;
                var content = resnet
                    ? Oip.ResNetRequest(PlatformFixture.ResNetInput(item.Seed), id)
                    : Oip.MlpRequest(PlatformFixture.MlpInput(item.Seed), id);
                using var response = await client.SendAsync(Oip.Infer(item.Model, content));
                var result = await Oip.ReadResponseAsync(response);
                var problem = result.Id != id ? $"answer has id '{result.Id}'"
                    : result.ModelName != item.Model ? $"answer is from model '{result.ModelName}'"
                    : result.Outputs.Count != 1 ? $"{result.Outputs.Count} outputs"
                    : !result.Outputs[0].Shape.SequenceEqual(resnet ? [1L, 512, 1, 1] : [1L, 16]) ? $"shape [{string.Join(",", result.Outputs[0].Shape)}]"
                    : Oip.Mismatch(resnet ? fixture.ExpectedResNet(item.Seed) : fixture.ExpectedMlp(item.Seed), result.Outputs[0].AsSpan<float>());
                if (problem is not null)
                {
                    failures.Enqueue($"{id} (seed {item.Seed}): {problem}");
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or InvalidDataException or InferenceException)
            {
                failures.Enqueue($"{id}: {ex.GetType().Name}: {ex.Message}");
            }
        });
        output.WriteLine($"{work.Count} requests at concurrency {Concurrency} in {clock.Elapsed.TotalSeconds:F1} s");

        Assert.True(failures.IsEmpty, $"{failures.Count} of {work.Count} requests failed, e.g.:\n{string.Join("\n", failures.Take(10))}\nlog:\n{host.Logs.Tail(40)}");

        // /status: the same two worker processes, on the CPU, each model warm in at least one of them, and every answered
        // job counted. Heartbeats make /status eventually consistent: a worker reports its last batch once it finds the
        // queue empty, which may land just after the last answer.
        var ids = workers.Select(w => w.Id).ToHashSet();
        var giveUp = Stopwatch.StartNew();
        while (true)
        {
            var status = await PlatformHost.GetStatusAsync(client);
            var live = status.GetProperty("workers").EnumerateArray().Where(w => ids.Contains(w.GetProperty("id").GetString()!)).ToList();
            var warm = live.SelectMany(w => w.GetProperty("warm_models").EnumerateArray().Select(m => m.GetProperty("model").GetString())).ToHashSet();
            var completed = live.Sum(w => w.GetProperty("jobs_completed").GetInt64());
            var ok = live.Count == 2
                && live.All(w => w.GetProperty("execution_provider").GetString() == "CPU" && w.GetProperty("state").GetString() == "running")
                && warm.Contains(MlpBenchModel.Name) && warm.Contains(ResNet18Model.Name)
                && completed >= work.Count;
            if (ok)
            {
                Assert.Equal(new[] { "CPU" }, status.GetProperty("execution_providers").EnumerateArray().Select(e => e.GetString()!).ToArray());
                Assert.Equal(workers.OrderBy(w => w.Id), host.Orchestrator.Workers.OrderBy(w => w.Id));
                output.WriteLine($"jobs completed per worker: {string.Join(", ", live.Select(w => $"{w.GetProperty("id").GetString()}={w.GetProperty("jobs_completed").GetInt64()}"))}");
                break;
            }

            Assert.True(giveUp.Elapsed < TimeSpan.FromSeconds(15),
                $"/status never showed both workers on CPU with both models warm and all {work.Count} jobs counted (saw {completed}):\n{status}");
            await Task.Delay(200);
        }
    }
}
