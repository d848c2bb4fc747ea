using System.Runtime.InteropServices;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Demo;
using static ServerlessInference.Onnx.Tests.TestModels;

namespace ServerlessInference.Onnx.Tests;

public sealed class OnnxLoadedModelTests
{
    private static readonly int[] s_mlp = [6, 10, 3];

    [Fact]
    public async Task RunBatchAsync_StackedRequests_SameNumbersAsOneByOne()
    {
        using var model = await LoadAsync(MlpBenchModel.Build(s_mlp, 3), MlpBenchModel.Manifest(layerSizes: s_mlp));
        var requests = Enumerable.Range(0, 5)
            .Select(i => Request($"r{i}", Floats("input", rows: 1 + (i % 3), width: 6, start: i)))
            .ToArray();

        var stacked = await model.RunBatchAsync(requests, CancellationToken.None);

        for (var i = 0; i < requests.Length; i++)
        {
            var alone = await model.RunBatchAsync([requests[i]], CancellationToken.None);
            var response = stacked[i].Response!;
            Assert.Equal(($"r{i}", "mlp-bench", "1"), (response.Id, response.ModelName, response.ModelVersion));
            Assert.Equal([1L + (i % 3), 3L], response.Outputs[0].Shape);
            AssertClose(FloatsOf(alone[0], "output"), FloatsOf(stacked[i], "output"));
        }
    }

    [Fact]
    public async Task RunBatchAsync_DynamicBatchGroup_RunsAsOneOnnxRuntimeCall()
    {
        var (bytes, manifest) = RowsPerCall();
        using var model = await LoadAsync(bytes, manifest);
        int[] rows = [1, 2, 1, 3];

        var results = await model.RunBatchAsync([.. rows.Select((n, i) => Request($"r{i}", Floats("x", n, 1, i)))], CancellationToken.None);

        // Every row saw all 7 rows in its call: one run for the four requests, split back per request.
        for (var i = 0; i < rows.Length; i++)
        {
            Assert.Equal([rows[i], 1L], results[i].Response!.Outputs[0].Shape);
            Assert.Equal(Enumerable.Repeat(7f, rows[i]), FloatsOf(results[i]));
        }
    }

    [Fact]
    public async Task RunBatchAsync_MoreRowsThanMaxBatchSize_RunsCallsOfAtMostMaxRows()
    {
        var (bytes, manifest) = RowsPerCall(maxBatchSize: 4);
        using var model = await LoadAsync(bytes, manifest);
        int[] rows = [3, 1, 3, 1, 2];

        var results = await model.RunBatchAsync([.. rows.Select((n, i) => Request($"r{i}", Floats("x", n, 1, i)))], CancellationToken.None);

        // In arrival order, a request joins the current call while it fits in 4 rows: [3,1], [3,1], [2].
        float[] rowsInCall = [4, 4, 4, 4, 2];
        for (var i = 0; i < rows.Length; i++)
        {
            Assert.Equal(Enumerable.Repeat(rowsInCall[i], rows[i]), FloatsOf(results[i]));
        }
    }

    [Fact]
    public async Task RunBatchAsync_MoreRowsThanMaxBatchSize_SplitsAndAnswersAll()
    {
        using var model = await LoadAsync(MlpBenchModel.Build(s_mlp, 3), MlpBenchModel.Manifest(maxBatchSize: 4, layerSizes: s_mlp));
        InferenceRequest[] requests = [.. Enumerable.Range(0, 4).Select(i => Request($"r{i}", Floats("input", 3, 6, i)))];

        var stacked = await model.RunBatchAsync(requests, CancellationToken.None);

        for (var i = 0; i < requests.Length; i++)
        {
            var alone = await model.RunBatchAsync([requests[i]], CancellationToken.None);
            AssertClose(FloatsOf(alone[0], "output"), FloatsOf(stacked[i], "output"));
        }
    }

    [Fact]
    public async Task RunBatchAsync_RequestOverMaxBatchSize_FailsAlone()
    {
        using var model = await LoadAsync(MlpBenchModel.Build(s_mlp, 3), MlpBenchModel.Manifest(maxBatchSize: 4, layerSizes: s_mlp));

        var results = await model.RunBatchAsync(
            [Request("big", Floats("input", 5, 6, 0)), Request("ok", Floats("input", 2, 6, 0))], CancellationToken.None);

        Assert.Contains("5 rows", results[0].Error);
        Assert.Equal(InferenceError.BadRequest, results[0].ErrorKind);
        Assert.Null(results[1].Error);
    }

    [Fact]
    public async Task RunBatchAsync_WrongDataLength_FailsAloneOthersSucceed()
    {
        using var model = await LoadAsync(MlpBenchModel.Build(s_mlp, 3), MlpBenchModel.Manifest(layerSizes: s_mlp));
        var shortData = new InferTensor { Name = "input", Datatype = TensorDatatype.Fp32, Shape = [2, 6], Data = new byte[40] };

        var results = await model.RunBatchAsync(
            [Request("a", Floats("input", 1, 6, 0)), Request("bad", shortData), Request("c", Floats("input", 2, 6, 1))],
            CancellationToken.None);

        Assert.Null(results[0].Error);
        Assert.Equal("input 'input' holds 40 bytes; shape [2,6] of FP32 needs 48", results[1].Error);
        Assert.Null(results[1].Response);
        Assert.Null(results[2].Error);
        Assert.Equal([2L, 3L], results[2].Response!.Outputs[0].Shape);
    }

    [Fact]
    public async Task RunBatchAsync_StackedRunThrows_OnlyTheBadRequestFails()
    {
        var (bytes, manifest) = Gather();
        using var model = await LoadAsync(bytes, manifest);

        var results = await model.RunBatchAsync(
        [
            Request("a", InferTensor.Create("idx", [2, 1], new long[] { 0, 3 })),
            Request("bad", InferTensor.Create("idx", [1, 1], new long[] { 7 })),
            Request("c", InferTensor.Create("idx", [1, 1], new long[] { 1 })),
        ], CancellationToken.None);

        Assert.Equal([10f, 40f], FloatsOf(results[0]));
        Assert.StartsWith("model 'gather/1' failed:", results[1].Error);
        Assert.Equal(InferenceError.ModelFailure, results[1].ErrorKind);
        Assert.Equal([20f], FloatsOf(results[2]));
    }

    [Fact]
    public async Task RunBatchAsync_RequestedOutputs_ReturnsOnlyThoseAndAllWhenNull()
    {
        var (bytes, manifest) = TwoOutputs();
        using var model = await LoadAsync(bytes, manifest);
        var x = InferTensor.Create("x", [1, 4], new[] { -1f, 2f, -3f, 4f });

        var results = await model.RunBatchAsync(
        [
            new InferenceRequest { Id = "neg", Inputs = [x], Outputs = [new RequestedOutput { Name = "neg" }] },
            new InferenceRequest { Id = "all", Inputs = [x] },
            new InferenceRequest { Id = "unknown", Inputs = [x], Outputs = [new RequestedOutput { Name = "nope" }] },
        ], CancellationToken.None);

        var only = Assert.Single(results[0].Response!.Outputs);
        Assert.Equal("neg", only.Name);
        Assert.Equal([1f, -2f, 3f, -4f], only.AsSpan<float>().ToArray());
        Assert.Equal(["relu", "neg"], results[1].Response!.Outputs.Select(o => o.Name));
        Assert.Equal([0f, 2f, 0f, 4f], FloatsOf(results[1], "relu"));
        Assert.StartsWith("unknown output 'nope'", results[2].Error);
        Assert.Equal(InferenceError.BadRequest, results[2].ErrorKind);
    }

    [Fact]
    public async Task RunBatchAsync_DifferentNonBatchShapes_EachGetsItsOwnShape()
    {
        var (bytes, manifest) = Identity(TensorDatatype.Fp32, variableWidth: true);
        using var model = await LoadAsync(bytes, manifest);
        InferTensor[] inputs = [Floats("x", 2, 3, 0), Floats("x", 1, 5, 1), Floats("x", 1, 3, 2)];

        var results = await model.RunBatchAsync([.. inputs.Select((x, i) => Request($"r{i}", x))], CancellationToken.None);

        for (var i = 0; i < inputs.Length; i++)
        {
            Assert.Equal(inputs[i].Shape, results[i].Response!.Outputs[0].Shape);
            Assert.Equal(inputs[i].AsSpan<float>().ToArray(), FloatsOf(results[i]));
        }
    }

    [Theory]
    [MemberData(nameof(AllDatatypes))]
    public async Task RunBatchAsync_EveryDatatype_RoundTripsThroughStackedIdentity(TensorDatatype datatype)
    {
        var (bytes, manifest) = Identity(datatype, variableWidth: false);
        using var model = await LoadAsync(bytes, manifest);
        InferTensor[] inputs = [Tensor(datatype, rows: 1, seed: 1), Tensor(datatype, rows: 2, seed: 2)];

        var results = await model.RunBatchAsync([Request("a", inputs[0]), Request("b", inputs[1])], CancellationToken.None);

        for (var i = 0; i < inputs.Length; i++)
        {
            var output = Assert.Single(results[i].Response!.Outputs);
            Assert.Equal(datatype, output.Datatype);
            Assert.Equal(inputs[i].Shape, output.Shape);
            if (datatype == TensorDatatype.Bytes)
            {
                Assert.Equal(inputs[i].BytesData!, output.BytesData!);
            }
            else
            {
                Assert.Equal(inputs[i].Data.ToArray(), output.Data.ToArray());
            }
        }
    }

    public static TheoryData<TensorDatatype> AllDatatypes() => [.. Enum.GetValues<TensorDatatype>()];

    [Fact]
    public async Task RunBatchAsync_FixedBatchModel_RunsEachRequestAndRejectsWrongShape()
    {
        var (bytes, manifest) = FixedDouble();
        using var model = await LoadAsync(bytes, manifest);

        var results = await model.RunBatchAsync(
        [
            Request("a", InferTensor.Create("x", [1, 4], new[] { 1f, 2f, 3f, 4f })),
            Request("two-rows", Floats("x", 2, 4, 0)),
            Request("c", InferTensor.Create("x", [1, 4], new[] { -1f, 0f, 0.5f, 8f })),
        ], CancellationToken.None);

        Assert.Equal([2f, 4f, 6f, 8f], FloatsOf(results[0]));
        Assert.Equal("input 'x' has shape [2,4]; the model takes [1,4]", results[1].Error);
        Assert.Equal([-2f, 0f, 1f, 16f], FloatsOf(results[2]));
        Assert.Equal([1L, 4L], results[2].Response!.Outputs[0].Shape);
    }

    [Fact]
    public async Task RunBatchAsync_MissingOrMistypedInput_FailsAlone()
    {
        var (bytes, manifest) = FixedDouble();
        using var model = await LoadAsync(bytes, manifest);

        var results = await model.RunBatchAsync(
        [
            Request("missing"),
            Request("mistyped", InferTensor.Create("x", [1, 4], new[] { 1.0, 2.0, 3.0, 4.0 })),
            Request("ok", InferTensor.Create("x", [1, 4], new[] { 1f, 1f, 1f, 1f })),
        ], CancellationToken.None);

        Assert.Equal("input 'x' is missing", results[0].Error);
        Assert.Equal("input 'x' is FP64; the model takes FP32", results[1].Error);
        Assert.Null(results[2].Error);
    }

    [Fact]
    public async Task RunBatchAsync_CancelledToken_Throws()
    {
        var (bytes, manifest) = FixedDouble();
        using var model = await LoadAsync(bytes, manifest);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            await model.RunBatchAsync([Request("a", Floats("x", 1, 4, 0))], new CancellationToken(canceled: true)));
    }

    [Fact]
    public async Task RunBatchAsync_ConcurrentCallers_AllGetTheirOwnAnswers()
    {
        using var model = await LoadAsync(MlpBenchModel.Build(s_mlp, 3), MlpBenchModel.Manifest(layerSizes: s_mlp));
        var request = Request("r", Floats("input", 2, 6, 0.5f));
        var expected = FloatsOf((await model.RunBatchAsync([request], CancellationToken.None))[0], "output");

        var all = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () =>
            await model.RunBatchAsync([request, request, request], CancellationToken.None))));

        Assert.All(all.SelectMany(r => r), r => AssertClose(expected, FloatsOf(r, "output")));
    }

    [Fact]
    public async Task RunBatchAsync_AfterDispose_Throws()
    {
        var (bytes, manifest) = FixedDouble();
        var model = await LoadAsync(bytes, manifest);
        model.Dispose();

        await Assert.ThrowsAsync<ObjectDisposedException>(async () =>
            await model.RunBatchAsync([Request("a", Floats("x", 1, 4, 0))], CancellationToken.None));
    }

    private static InferTensor Tensor(TensorDatatype datatype, int rows, int seed)
    {
        long[] shape = [rows, 3];
        var count = rows * 3;
        if (datatype == TensorDatatype.Bytes)
        {
            return InferTensor.CreateBytes("x", shape,
                [.. Enumerable.Range(0, count).Select(i => new byte[] { (byte)'a', (byte)(seed + i), 0xC3, 0xA9 })]);
        }

        var data = new byte[count * datatype.ElementSize()];
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = (byte)((seed * 31) + (i * 7));
        }

        if (datatype == TensorDatatype.Bool)
        {
            for (var i = 0; i < data.Length; i++)
            {
                data[i] &= 1;
            }
        }
        else if (datatype == TensorDatatype.Fp16)
        {
            MemoryMarshal.Cast<byte, Half>(data.AsSpan()).Fill((Half)(seed + 0.5));
        }

        return new InferTensor { Name = "x", Datatype = datatype, Shape = shape, Data = data };
    }
}
