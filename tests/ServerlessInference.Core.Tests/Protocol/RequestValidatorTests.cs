using ServerlessInference.Models;
using ServerlessInference.Protocol;

namespace ServerlessInference.Tests.Protocol;

public sealed class RequestValidatorTests
{
    private static readonly ModelManifest s_dynamic = new()
    {
        Name = "mlp",
        Sha256 = new string('a', 64),
        SizeBytes = 10,
        Inputs = [new TensorSpec("x", TensorDatatype.Fp32, [-1, 4]), new TensorSpec("mask", TensorDatatype.Int64, [-1, 2])],
        Outputs = [new TensorSpec("y", TensorDatatype.Fp32, [-1, 3]), new TensorSpec("z", TensorDatatype.Fp32, [-1])],
        MaxBatchSize = 8,
        DynamicBatch = true,
    };

    private static readonly ModelManifest s_fixed = new()
    {
        Name = "resnet",
        Sha256 = new string('b', 64),
        SizeBytes = 10,
        Inputs = [new TensorSpec("img", TensorDatatype.Fp32, [1, 3, -1])],
        Outputs = [new TensorSpec("features", TensorDatatype.Fp32, [1, 512])],
    };

    private static InferTensor X(long batch) => InferTensor.Create("x", [batch, 4], new float[batch * 4]);

    private static InferTensor Mask(long batch) => InferTensor.Create("mask", [batch, 2], new long[batch * 2]);

    private static void AssertRejected(InferenceRequest request, ModelManifest manifest, string message)
    {
        var error = Assert.Throws<InferenceException>(() => RequestValidator.Validate(request, manifest));
        Assert.Equal(InferenceError.BadRequest, error.Error);
        Assert.Equal(message, error.Message);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(8)]
    public void Validate_BatchWithinLimit_Passes(long batch)
    {
        var request = new InferenceRequest { Inputs = [Mask(batch), X(batch)], Outputs = [new RequestedOutput { Name = "z" }] };

        RequestValidator.Validate(request, s_dynamic);
    }

    [Fact]
    public void Validate_VariableNonBatchDim_AcceptsAnySize()
    {
        var request = new InferenceRequest { Inputs = [InferTensor.Create("img", [1, 3, 7], new float[21])] };

        RequestValidator.Validate(request, s_fixed);
    }

    [Fact]
    public void Validate_UnknownInput_Throws() => AssertRejected(
        new InferenceRequest { Inputs = [X(1), Mask(1), InferTensor.Create("w", [1], new[] { 1f })] },
        s_dynamic,
        "unknown input 'w'; model 'mlp' has inputs: x, mask");

    [Fact]
    public void Validate_MissingInput_Throws() => AssertRejected(
        new InferenceRequest { Inputs = [X(1)] },
        s_dynamic,
        "missing input 'mask'; model 'mlp' expects: x, mask");

    [Fact]
    public void Validate_DuplicateInput_Throws() => AssertRejected(
        new InferenceRequest { Inputs = [X(1), Mask(1), X(1)] },
        s_dynamic,
        "input 'x' appears more than once");

    [Fact]
    public void Validate_DatatypeMismatch_Throws() => AssertRejected(
        new InferenceRequest { Inputs = [InferTensor.Create("x", [1, 4], new long[4]), Mask(1)] },
        s_dynamic,
        "input 'x' has datatype INT64, model expects FP32");

    [Fact]
    public void Validate_RankMismatch_Throws() => AssertRejected(
        new InferenceRequest { Inputs = [InferTensor.Create("x", [4], new float[4]), Mask(1)] },
        s_dynamic,
        "input 'x' has shape [4] (rank 1), model expects rank 2 [-1,4]");

    [Fact]
    public void Validate_FixedDimMismatch_Throws() => AssertRejected(
        new InferenceRequest { Inputs = [InferTensor.Create("x", [1, 5], new float[5]), Mask(1)] },
        s_dynamic,
        "input 'x' dim 1 is 5, model expects 4 (shape [-1,4])");

    [Fact]
    public void Validate_FixedBatchDimMismatch_Throws() => AssertRejected(
        new InferenceRequest { Inputs = [InferTensor.Create("img", [2, 3, 1], new float[6])] },
        s_fixed,
        "input 'img' dim 0 is 2, model expects 1 (shape [1,3,-1])");

    [Fact]
    public void Validate_BatchAboveMax_Throws() => AssertRejected(
        new InferenceRequest { Inputs = [X(9), Mask(9)] },
        s_dynamic,
        "input 'x' has batch size 9, more than the max batch size 8 of model 'mlp'");

    [Fact]
    public void Validate_BatchZero_Throws() => AssertRejected(
        new InferenceRequest { Inputs = [X(0), Mask(0)] },
        s_dynamic,
        "input 'x' has batch size 0; it must be at least 1");

    [Fact]
    public void Validate_InputsDisagreeOnBatch_Throws() => AssertRejected(
        new InferenceRequest { Inputs = [X(2), Mask(3)] },
        s_dynamic,
        "inputs disagree on the batch size: 'x' has 2, 'mask' has 3");

    [Fact]
    public void Validate_ZeroSizeTensor_Throws() => AssertRejected(
        new InferenceRequest { Inputs = [InferTensor.Create("img", [1, 3, 0], Array.Empty<float>())] },
        s_fixed,
        "input 'img' has no elements (shape [1,3,0])");

    [Fact]
    public void Validate_DataCountDiffersFromShape_Throws() => AssertRejected(
        new InferenceRequest { Inputs = [InferTensor.Create("x", [2, 4], new float[4]), Mask(2)] },
        s_dynamic,
        "input 'x' holds 4 elements, but shape [2,4] needs 8");

    [Fact]
    public void Validate_DataNotWholeElements_Throws() => AssertRejected(
        new InferenceRequest { Inputs = [new InferTensor { Name = "x", Datatype = TensorDatatype.Fp32, Shape = [1, 4], Data = new byte[15] }, Mask(1)] },
        s_dynamic,
        "input 'x' has 15 bytes of data, not a whole number of FP32 elements");

    [Fact]
    public void Validate_UnknownRequestedOutput_Throws() => AssertRejected(
        new InferenceRequest { Inputs = [X(1), Mask(1)], Outputs = [new RequestedOutput { Name = "q" }] },
        s_dynamic,
        "unknown output 'q'; model 'mlp' has outputs: y, z");

    [Fact]
    public void Validate_DuplicateRequestedOutput_Throws() => AssertRejected(
        new InferenceRequest { Inputs = [X(1), Mask(1)], Outputs = [new RequestedOutput { Name = "y" }, new RequestedOutput { Name = "y" }] },
        s_dynamic,
        "output 'y' is requested more than once");

    [Fact]
    public void Validate_BytesInputWithMatchingCount_Passes()
    {
        var manifest = s_fixed with { Inputs = [new TensorSpec("text", TensorDatatype.Bytes, [-1])] };
        var request = new InferenceRequest { Inputs = [InferTensor.CreateBytes("text", [2], [[1], [2, 3]])] };

        RequestValidator.Validate(request, manifest);
    }

    [Fact]
    public void Validate_ParsedRequestWithWrongShape_ThrowsWithPreciseMessage()
    {
        var request = OipTestData.ParseJson("""{"inputs":[{"name":"img","shape":[1,4,2],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}""");

        AssertRejected(request, s_fixed, "input 'img' dim 1 is 4, model expects 3 (shape [1,3,-1])");
    }
}
