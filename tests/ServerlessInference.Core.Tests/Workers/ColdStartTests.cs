using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessInference.Jobs;
using ServerlessInference.Telemetry;
using ServerlessInference.Tests.TestDoubles;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Workers;

/// <summary>A job that waits for a worker or a model load is recorded stage by stage, on the fake clock.</summary>
public sealed class ColdStartTests : IDisposable
{
    private readonly WorkerRig _rig = new();

    public void Dispose() => _rig.Dispose();

    private static double Ms(IReadOnlyList<ColdStartStageTime> stages, string stage) => Assert.Single(stages, s => s.Stage == stage).Milliseconds;

    [Fact]
    public async Task RunAsync_FirstJobWaitedForTheWorker_RecordsEveryStageOnceInTheRegistryAndMetrics()
    {
        _rig.Models.Add("cold-m");
        _rig.Models.Add("cold-other");
        var t0 = _rig.Time.GetUtcNow();
        var startup = new WorkerStartup
        {
            ScalerNoticedAt = t0.AddMilliseconds(100),
            ProcessStartedAt = t0.AddMilliseconds(150),
            RuntimeReadyAt = t0.AddMilliseconds(400),
        };
        _rig.Engine.DuringLoad = () => _rig.Time.Advance(TimeSpan.FromMilliseconds(160));
        _rig.Engine.BeforeRun = (_, _) =>
        {
            _rig.Time.Advance(TimeSpan.FromMilliseconds(30));
            return Task.CompletedTask;
        };
        var stages = new List<(string Stage, double Seconds)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == InferenceMetrics.MeterName && instrument.Name == "inference_cold_start_stage")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, value, tags, _) =>
        {
            // Other tests record on meters of the same name at the same time: count only this test's models.
            string? stage = null, model = null;
            foreach (var tag in tags)
            {
                stage = tag.Key == "stage" ? (string)tag.Value! : stage;
                model = tag.Key == "model" ? (string)tag.Value! : model;
            }

            if (stage is not null && model is "cold-m" or "cold-other")
            {
                lock (stages)
                {
                    stages.Add((stage, value));
                }
            }
        });
        listener.Start();

        var first = await _rig.SubmitAsync("cold-m");
        _rig.Time.Advance(TimeSpan.FromMilliseconds(500));
        var worker = new InferenceWorker(
            "w1", _rig.Queue, _rig.Results, _rig.Pool, _rig.Catalog, _rig.Registry, _rig.WorkerOptions, _rig.Time, _rig.Metrics,
            NullLogger.Instance, startup: startup);
        var run = worker.RunAsync(default);
        await _rig.AwaitAllAsync([first]);
        // Warm now: no second record.
        var warm = await _rig.SubmitAsync("cold-m");
        await _rig.AwaitAllAsync([warm]);
        // Another model on the running worker: a model cold start, without the process's stages.
        _rig.Time.Advance(TimeSpan.FromMilliseconds(1000));
        var other = await _rig.SubmitAsync("cold-other");
        await _rig.AwaitAllAsync([other]);
        worker.RequestStop();
        await run.WaitAsync(TimeSpan.FromSeconds(30));

        var recorded = await _rig.Registry.ListColdStartsAsync(default);
        Assert.Equal(2, recorded.Count);
        var model = recorded[0];
        Assert.Equal("cold-other", model.Model);
        Assert.Equal(other.Id, model.JobId);
        Assert.Equal(
            [ColdStartStage.Received, ColdStartStage.ModelFetchedVerified, ColdStartStage.SessionCreated, ColdStartStage.FirstBatchRun, ColdStartStage.Answered],
            model.Stages.Select(s => s.Stage));
        Assert.Equal(160, Ms(model.Stages, ColdStartStage.SessionCreated), 3);
        Assert.Equal(30, Ms(model.Stages, ColdStartStage.FirstBatchRun), 3);

        var cold = recorded[1];
        Assert.Equal(first.Id, cold.JobId);
        Assert.Equal("w1", cold.WorkerId);
        Assert.Equal(ColdStartStage.All, cold.Stages.Select(s => s.Stage));
        Assert.Equal(100, Ms(cold.Stages, ColdStartStage.ScalerNoticed), 3);
        Assert.Equal(50, Ms(cold.Stages, ColdStartStage.ProcessStarted), 3);
        Assert.Equal(250, Ms(cold.Stages, ColdStartStage.RuntimeReady), 3);
        Assert.Equal(100, Ms(cold.Stages, ColdStartStage.Registered), 3);
        Assert.Equal(160, Ms(cold.Stages, ColdStartStage.SessionCreated), 3);
        Assert.Equal(30, Ms(cold.Stages, ColdStartStage.FirstBatchRun), 3);
        Assert.Equal(690, cold.TotalMilliseconds, 3);
        Assert.Equal(cold.TotalMilliseconds, cold.Stages.Sum(s => s.Milliseconds), 3);

        // The metrics saw both cold starts' stages: nine stages, then five.
        Assert.Equal(14, stages.Count);
        Assert.Contains((ColdStartStage.RuntimeReady, 0.25), stages);
    }

    [Fact]
    public void Stage_MarksBeforeTheJobOrMissing_AreLeftOut_MarksOutOfOrder_CountZero()
    {
        var t0 = new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero);

        var stages = ColdStart.Stage(t0,
        [
            ("before", t0.AddMilliseconds(-5)),
            ("missing", null),
            ("a", t0.AddMilliseconds(10)),
            ("earlier", t0.AddMilliseconds(8)),
            ("b", t0.AddMilliseconds(25)),
        ]);

        Assert.Equal([new ColdStartStageTime("a", 10), new ColdStartStageTime("earlier", 0), new ColdStartStageTime("b", 15)], stages);
    }

    [Fact]
    public void ReadProcessStartedAt_OnTheGivenClock_IsThisProcessesAgeBeforeNow()
    {
        var now = _rig.Time.GetUtcNow();
        var age = DateTime.Now - System.Diagnostics.Process.GetCurrentProcess().StartTime;

        var started = WorkerStartup.ReadProcessStartedAt(_rig.Time);

        // The fake clock's now minus this test process's age (which the OS's coarse start time knows to about a second).
        Assert.InRange(now - started, age - TimeSpan.FromSeconds(1.5), age + TimeSpan.FromSeconds(1.5));
    }

    [Fact]
    public void ParseOrderedAt_RoundTripsTheOrchestratorsValue_AndIgnoresJunk()
    {
        var at = new DateTimeOffset(2026, 12, 4, 12, 0, 0, 123, TimeSpan.Zero);

        Assert.Equal(at, WorkerStartup.ParseOrderedAt(at.ToString("O", System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Null(WorkerStartup.ParseOrderedAt(null));
        Assert.Null(WorkerStartup.ParseOrderedAt("yesterday"));
    }

    [Fact]
    public async Task RecordColdStartAsync_MoreThanKept_KeepsTheNewestFirst()
    {
        var t0 = _rig.Time.GetUtcNow();
        for (var i = 0; i < IWorkerRegistry.ColdStartsKept + 3; i++)
        {
            await _rig.Registry.RecordColdStartAsync(new ColdStart
            {
                WorkerId = "w", JobId = "j" + i, Model = "m", Version = "1", QueuedAt = t0, AnsweredAt = t0.AddMilliseconds(i), Stages = [],
            }, default);
        }

        var kept = await _rig.Registry.ListColdStartsAsync(default);

        Assert.Equal(IWorkerRegistry.ColdStartsKept, kept.Count);
        Assert.Equal("j12", kept[0].JobId);
        Assert.Equal("j3", kept[^1].JobId);
    }
}
