namespace ServerlessInference.Bench.Tests;

public class ModelLoadCountsTests
{
    [Fact]
    public void FromPrometheus_CounterSeries_SummedPerModel()
    {
        const string text = """
            # TYPE inference_model_loads_total counter
            # HELP inference_model_loads_total Models loaded into a warm pool
            inference_model_loads_total{model="mm-01",otel_scope_name="ServerlessInference"} 3 1733330000000
            inference_model_loads_total{otel_scope_name="ServerlessInference",model="mm-02"} 1
            inference_model_loads_total{model="mm-01",worker="b"} 2
            inference_model_loads_total_created{model="mm-01"} 1733330000
            inference_model_evictions_total{model="mm-01"} 7
            inference_requests_total{model="mm-01",outcome="ok"} 100
            """;

        var counts = ModelLoadCounts.FromPrometheus(text);

        Assert.NotNull(counts);
        Assert.Equal(2, counts.Count);
        Assert.Equal(5, counts["mm-01"]);
        Assert.Equal(1, counts["mm-02"]);
    }

    [Fact]
    public void FromPrometheus_NoLoadSeries_Null()
    {
        const string text = """
            # TYPE inference_batch_size histogram
            inference_batch_size_count{model="mm-01"} 12
            inference_model_evictions_total{model="mm-01"} 7
            """;

        Assert.Null(ModelLoadCounts.FromPrometheus(text));
    }

    [Theory]
    [InlineData("      Loaded mm-03/1 (37914571 bytes) in 152 ms on CPU", "mm-03")]
    [InlineData("info: ServerlessInference.Hosting.Orchestration.ChildProcessWorkerOrchestrator[5] [worker-2]       Loaded mm-12/1 (37914571 bytes) in 98 ms on CUDA (device 0)", "mm-12")]
    [InlineData("[worker-1] Loaded resnet18/2 (63636121 bytes) in 1204 ms on CPU", "resnet18")]
    public void ModelOfLogLine_WarmPoolLoadLine_TheModel(string line, string model) =>
        Assert.Equal(model, ModelLoadCounts.ModelOfLogLine(line));

    [Theory]
    [InlineData("      Loaded model mm-03/1 on CPU in 120 ms (37914571 bytes)")] // the engine's line: not a second count
    [InlineData("      Evicted mm-03/1 (37914571 bytes) from the warm pool")]
    [InlineData("      Loading mm-03/1 failed")]
    public void ModelOfLogLine_OtherLines_Null(string line) =>
        Assert.Null(ModelLoadCounts.ModelOfLogLine(line));
}
