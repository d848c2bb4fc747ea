using System.Buffers;
using System.Text;
using System.Text.Json;
using ServerlessInference.Protocol;
using static ServerlessInference.Tests.Protocol.OipTestData;

namespace ServerlessInference.Tests.Protocol;

public sealed class OipCodecResponseTests
{
    private static InferenceResponse Response(params InferTensor[] outputs) => new()
    {
        ModelName = "m",
        ModelVersion = "2",
        Id = "job-1",
        Outputs = outputs,
    };

    [Fact]
    public void WriteResponse_NoBinaryOutputs_WritesOipJsonAndReturnsNull()
    {
        var response = Response(InferTensor.Create("y", [1, 2], new[] { 0.5f, -1f }));
        response.Parameters = new() { ["n"] = 1L, ["d"] = 1.0, ["s"] = "x", ["b"] = false };

        var (body, headerLength) = Write(response, null);

        Assert.Null(headerLength);
        Assert.Equal(
            """{"model_name":"m","model_version":"2","id":"job-1","parameters":{"n":1,"d":1.0,"s":"x","b":false},"outputs":[{"name":"y","datatype":"FP32","shape":[1,2],"data":[0.5,-1]}]}""",
            Encoding.UTF8.GetString(body));
    }

    [Fact]
    public void WriteResponse_OptionalFieldsAbsent_AreOmitted()
    {
        var response = new InferenceResponse { ModelName = "m", Outputs = [InferTensor.Create("y", [1], new[] { true })] };

        var (body, _) = Write(response, null);

        Assert.Equal("""{"model_name":"m","outputs":[{"name":"y","datatype":"BOOL","shape":[1],"data":[true]}]}""", Encoding.UTF8.GetString(body));
    }

    [Theory]
    [MemberData(nameof(AllDatatypes), MemberType = typeof(OipTestData))]
    public void WriteResponseThenParseResponse_EveryDatatypeJsonAndBinary_RoundTrips(TensorDatatype datatype)
    {
        var json = Tensor(datatype, "json");
        var binary = Tensor(datatype, "binary");
        var response = Response(json, binary);
        response.Parameters = new() { ["d"] = 2.0, ["n"] = -3L };

        var (body, headerLength) = Write(response, name => name == "binary");

        Assert.NotNull(headerLength);
        var parsed = OipCodec.ParseResponse(body, headerLength);
        Assert.Equal("m", parsed.ModelName);
        Assert.Equal("2", parsed.ModelVersion);
        Assert.Equal("job-1", parsed.Id);
        Assert.Equal(2.0, Assert.IsType<double>(parsed.Parameters!["d"]));
        Assert.Equal(-3L, Assert.IsType<long>(parsed.Parameters["n"]));
        AssertSameTensor(json, parsed.Outputs[0]);
        AssertSameTensor(binary, parsed.Outputs[1]);
    }

    [Fact]
    public void WriteResponse_BinaryOutput_HasSizeParameterNoDataAndRawBytesAfterJson()
    {
        var response = Response(InferTensor.Create("a", [2], new[] { 1, 2 }), InferTensor.Create("b", [1], new[] { 3.5 }));

        var (body, headerLength) = Write(response, name => name == "b");

        using var header = JsonDocument.Parse(body.AsMemory(0, headerLength!.Value));
        var outputs = header.RootElement.GetProperty("outputs");
        Assert.Equal("[1,2]", outputs[0].GetProperty("data").GetRawText());
        Assert.False(outputs[0].TryGetProperty("parameters", out _));
        Assert.Equal(8, outputs[1].GetProperty("parameters").GetProperty("binary_data_size").GetInt64());
        Assert.False(outputs[1].TryGetProperty("data", out _));
        Assert.Equal(BitConverter.GetBytes(3.5), body[headerLength.Value..]);
    }

    [Fact]
    public void WriteResponse_WantsBinaryOutputOfRequest_SelectsOutputs()
    {
        var request = ParseJson("""{"parameters":{"binary_data_output":true},"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[1]}]}""");

        var (body, headerLength) = Write(Response(InferTensor.Create("y", [1], new[] { 7L })), request.WantsBinaryOutput);

        Assert.Equal(body.Length - 8, headerLength);
    }

    [Fact]
    public void WriteResponse_NonFiniteFloats_WritesNamedStringsThatParseBack()
    {
        var response = Response(
            InferTensor.Create("f", [4], new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity, 1f }),
            InferTensor.Create("d", [3], new[] { double.NaN, double.NegativeInfinity, 0.25 }),
            InferTensor.Create("h", [2], new[] { Half.PositiveInfinity, Half.NaN }));

        var (body, headerLength) = Write(response, null);

        var text = Encoding.UTF8.GetString(body);
        Assert.Contains("""{"name":"f","datatype":"FP32","shape":[4],"data":["NaN","Infinity","-Infinity",1]}""", text);
        Assert.Contains("""["NaN","-Infinity",0.25]""", text);
        Assert.Contains("""["Infinity","NaN"]""", text);
        using (JsonDocument.Parse(body))
        {
            // Valid JSON for strict parsers.
        }

        var parsed = OipCodec.ParseResponse(body, headerLength);
        Assert.Equal(new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity, 1f }, parsed.Outputs[0].AsSpan<float>().ToArray());
        Assert.Equal(new[] { double.NaN, double.NegativeInfinity, 0.25 }, parsed.Outputs[1].AsSpan<double>().ToArray());
        Assert.Equal(new[] { Half.PositiveInfinity, Half.NaN }, parsed.Outputs[2].AsSpan<Half>().ToArray());
    }

    [Fact]
    public void WriteResponse_Floats_WriteShortestRoundTripText()
    {
        var (body, _) = Write(Response(InferTensor.Create("y", [4], new[] { 0.1f, 1e-7f, 3e38f, 16777216f })), null);

        Assert.Contains("\"data\":[0.1,1E-07,3E+38,16777216]", Encoding.UTF8.GetString(body));
    }

    [Fact]
    public void WriteResponse_LargeFp64Output_GrowsBufferAndRoundTrips()
    {
        var values = Enumerable.Range(0, 10_000).Select(i => -double.Epsilon * i - (double.MaxValue / (i + 1))).ToArray();
        var tensor = InferTensor.Create("y", [values.Length], values);

        var (body, headerLength) = Write(Response(tensor), null);

        AssertSameTensor(tensor, OipCodec.ParseResponse(body, headerLength).Outputs[0]);
    }

    [Fact]
    public void WriteResponse_NonUtf8BytesOutput_IsBinaryEvenWhenNotRequested()
    {
        var tensor = InferTensor.CreateBytes("s", [1], [[0xC3, 0x28]]);

        var (body, headerLength) = Write(Response(tensor), null);

        Assert.NotNull(headerLength);
        AssertSameTensor(tensor, OipCodec.ParseResponse(body, headerLength).Outputs[0]);
    }

    [Fact]
    public void WriteResponse_OutputDataDoesNotMatchShape_ThrowsModelFailure()
    {
        var tensor = new InferTensor { Name = "y", Datatype = TensorDatatype.Fp32, Shape = [2], Data = new byte[6] };

        var error = Assert.Throws<InferenceException>(() => Write(Response(tensor), null));

        Assert.Equal(InferenceError.ModelFailure, error.Error);
        Assert.Equal("output 'y': 6 bytes of data is not a whole number of FP32 elements", error.Message);
    }

    [Fact]
    public void WriteResponse_AppendsToExistingBufferContent_ReturnsOnlyItsJsonLength()
    {
        var buffer = new ArrayBufferWriter<byte>();
        var headerLength = OipCodec.WriteResponse(buffer, Response(InferTensor.Create("y", [1], new[] { (byte)9 })), _ => true);

        Assert.Equal(buffer.WrittenCount - 1, headerLength);
        Assert.Equal(9, buffer.WrittenSpan[^1]);
    }

    [Fact]
    public void ParseResponse_TritonStyleBody_ReadsOutputs()
    {
        var (body, headerLength) = BinaryBody(
            """{"model_name":"resnet","model_version":"1","outputs":[{"name":"OUTPUT0","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}},{"name":"OUTPUT1","datatype":"INT32","shape":[1],"data":[4]}]}""",
            BitConverter.GetBytes(1.25f), BitConverter.GetBytes(-2f));

        var response = OipCodec.ParseResponse(body, headerLength);

        Assert.Equal(new[] { 1.25f, -2f }, response.Outputs[0].AsSpan<float>().ToArray());
        Assert.Equal(4, response.Outputs[1].AsSpan<int>()[0]);
        Assert.Null(response.Outputs[0].Parameters);
    }

    [Fact]
    public void ParseResponse_ErrorBody_ThrowsModelFailureWithServerMessage()
    {
        var error = Assert.Throws<InferenceException>(() => OipCodec.ParseResponse(Encoding.UTF8.GetBytes("""{"error":"boom"}"""), null));

        Assert.Equal(InferenceError.ModelFailure, error.Error);
        Assert.Equal("boom", error.Message);
    }

    [Theory]
    [InlineData("""{"model_name":"m"}""", "response has no outputs")]
    [InlineData("""{"outputs":[]}""", "response has no model_name")]
    [InlineData("""{"model_name":"m","outputs":[{"name":"y","datatype":"INT8","shape":[2],"data":[1]}]}""", "output 'y': data has 1 elements, but shape [2] needs 2")]
    [InlineData("""{"model_name":"m","outputs":[{"name":"y","datatype":"INT8","shape":[1],"data":[1000]}]}""", "output 'y': element 0 is not a valid INT8 (1000)")]
    [InlineData("""{"model_name":"m","outputs":[{"name":"y","datatype":"INT8","shape":[1],"data":[1]}],}""", "invalid JSON: ")]
    public void ParseResponse_BadBody_ThrowsBadRequest(string json, string message)
    {
        var error = Assert.Throws<InferenceException>(() => OipCodec.ParseResponse(Encoding.UTF8.GetBytes(json), null));

        Assert.Equal(InferenceError.BadRequest, error.Error);
        Assert.StartsWith(message, error.Message);
    }
}
