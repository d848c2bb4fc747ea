using System.Runtime.InteropServices;
using System.Text;
using ServerlessInference.Protocol;
using static ServerlessInference.Tests.Protocol.OipTestData;

namespace ServerlessInference.Tests.Protocol;

public sealed class OipCodecBinaryTests
{
    private static byte[] Le<T>(params T[] values) where T : unmanaged => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    private static byte[] BinaryStrings(params string[] values)
    {
        var bytes = new List<byte>();
        foreach (var value in values)
        {
            var utf8 = Encoding.UTF8.GetBytes(value);
            bytes.AddRange(BitConverter.GetBytes(utf8.Length));
            bytes.AddRange(utf8);
        }

        return [.. bytes];
    }

    [Fact]
    public void ParseRequest_MixedJsonAndBinaryInputs_ReadsEachInOrder()
    {
        // Binary inputs are laid out in the order they appear, whatever JSON inputs sit between them.
        var (body, headerLength) = BinaryBody("""
            {"inputs":[
              {"name":"j","shape":[2],"datatype":"FP32","data":[1.5,2]},
              {"name":"b","shape":[3],"datatype":"INT64","parameters":{"binary_data_size":24,"keep":"me"}},
              {"name":"js","shape":[1],"datatype":"BYTES","data":["json"]},
              {"parameters":{"binary_data_size":14},"name":"s","shape":[2],"datatype":"BYTES"},
              {"name":"h","datatype":"FP16","shape":[2],"parameters":{"binary_data_size":4}}
            ]}
            """,
            Le(1L, -2L, long.MaxValue),
            BinaryStrings("ab", "cdef"),
            Le((Half)0.5f, (Half)(-1f)));

        var inputs = OipCodec.ParseRequest(body, headerLength).Inputs;

        Assert.Equal(new[] { 1.5f, 2f }, inputs[0].AsSpan<float>().ToArray());
        Assert.Equal(new[] { 1L, -2L, long.MaxValue }, inputs[1].AsSpan<long>().ToArray());
        Assert.Equal("json", Encoding.UTF8.GetString(inputs[2].BytesData![0]));
        Assert.Equal(["ab", "cdef"], inputs[3].BytesData!.Select(Encoding.UTF8.GetString));
        Assert.Equal(new[] { (Half)0.5f, (Half)(-1f) }, inputs[4].AsSpan<Half>().ToArray());
        // binary_data_size describes the transport and is removed; other parameters stay.
        Assert.Equal(new Dictionary<string, object> { ["keep"] = "me" }, inputs[1].Parameters);
        Assert.Null(inputs[3].Parameters);
    }

    [Fact]
    public void ParseRequest_BinaryInput_SlicesTheBodyWithoutCopying()
    {
        var (body, headerLength) = BinaryBody("""{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}""", Le(1f, 2f));

        var tensor = OipCodec.ParseRequest(body, headerLength).Inputs[0];

        Assert.True(MemoryMarshal.TryGetArray(tensor.Data, out var segment));
        Assert.Same(body, segment.Array);
        Assert.Equal(headerLength, segment.Offset);
    }

    [Fact]
    public void ParseRequest_HeaderLengthEqualsBody_ParsesJsonOnly()
    {
        var json = Encoding.UTF8.GetBytes("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[3]}]}""");

        var request = OipCodec.ParseRequest(json, json.Length);

        Assert.Equal(3, request.Inputs[0].AsSpan<sbyte>()[0]);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(1000)]
    public void ParseRequest_HeaderLengthOutsideBody_ThrowsBadRequest(int headerLength)
    {
        var body = Encoding.UTF8.GetBytes("""{"inputs":[]}""");

        var error = Assert.Throws<InferenceException>(() => OipCodec.ParseRequest(body, headerLength));

        Assert.Equal(InferenceError.BadRequest, error.Error);
        Assert.Equal($"Inference-Header-Content-Length {headerLength} is outside the body of 13 bytes", error.Message);
    }

    [Fact]
    public void ParseRequest_HeaderLengthCutsJson_ThrowsInvalidJson()
    {
        var (body, headerLength) = BinaryBody("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","parameters":{"binary_data_size":1}}]}""", [1]);

        var error = Assert.Throws<InferenceException>(() => OipCodec.ParseRequest(body, headerLength - 3));

        Assert.StartsWith("invalid JSON: ", error.Message);
    }

    [Theory]
    [InlineData(3, "binary data after the JSON header is 8 bytes, but the binary_data_size values sum to 7")]
    [InlineData(5, "binary data after the JSON header is 8 bytes, but the binary_data_size values sum to 9")]
    public void ParseRequest_BinarySizesDoNotSumToRemainder_ThrowsBadRequest(int secondSize, string message)
    {
        var (body, headerLength) = BinaryBody(
            $$$"""{"inputs":[{"name":"a","shape":[1],"datatype":"INT32","parameters":{"binary_data_size":4}},{"name":"b","shape":[4],"datatype":"UINT8","parameters":{"binary_data_size":{{{secondSize}}}}}]}""",
            Le(7), [1, 2, 3, 4]);

        var error = Assert.Throws<InferenceException>(() => OipCodec.ParseRequest(body, headerLength));

        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void ParseRequest_BytesAfterHeaderButNoBinaryInput_ThrowsBadRequest()
    {
        var (body, headerLength) = BinaryBody("""{"inputs":[{"name":"a","shape":[1],"datatype":"INT8","data":[1]}]}""", [1, 2]);

        var error = Assert.Throws<InferenceException>(() => OipCodec.ParseRequest(body, headerLength));

        Assert.Equal("2 bytes follow the JSON header, but no input has binary_data_size", error.Message);
    }

    [Theory]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","parameters":{"binary_data_size":4}}]}""", "input 'x' has binary_data_size but the request has no Inference-Header-Content-Length header")]
    public void ParseRequest_BinarySizeWithoutHeader_ThrowsBadRequest(string json, string message)
    {
        Assert.Equal(message, ParseError(json).Message);
    }

    [Theory]
    [InlineData("""{"name":"x","shape":[1],"datatype":"INT32","data":[1],"parameters":{"binary_data_size":4}}""", "input 'x' has both data and binary_data_size")]
    [InlineData("""{"name":"x","shape":[1],"datatype":"INT32","parameters":{"binary_data_size":"4"}}""", "input 'x': binary_data_size must be a non-negative integer")]
    [InlineData("""{"name":"x","shape":[1],"datatype":"INT32","parameters":{"binary_data_size":4.5}}""", "input 'x': binary_data_size must be a non-negative integer")]
    [InlineData("""{"name":"x","shape":[1],"datatype":"INT32","parameters":{"binary_data_size":-4}}""", "input 'x': binary_data_size must be a non-negative integer")]
    [InlineData("""{"name":"x","shape":[2],"datatype":"INT32","parameters":{"binary_data_size":4}}""", "input 'x': binary_data_size is 4 bytes, but shape [2] of INT32 needs 8")]
    [InlineData("""{"name":"x","shape":[1],"datatype":"FP64","parameters":{"binary_data_size":4}}""", "input 'x': binary_data_size is 4 bytes, but shape [1] of FP64 needs 8")]
    public void ParseRequest_BadBinaryInput_ThrowsBadRequest(string input, string message)
    {
        var (body, headerLength) = BinaryBody($$"""{"inputs":[{{input}}]}""", [1, 2, 3, 4]);

        var error = Assert.Throws<InferenceException>(() => OipCodec.ParseRequest(body, headerLength));

        Assert.Equal(InferenceError.BadRequest, error.Error);
        Assert.Equal(message, error.Message);
    }

    [Theory]
    [InlineData(new byte[] { 2, 0, 0 }, "input 's': binary BYTES data is truncated at element 0")]
    [InlineData(new byte[] { 5, 0, 0, 0, 1, 2 }, "input 's': binary BYTES data is truncated at element 0")]
    [InlineData(new byte[] { 1, 0, 0, 0, 65, 1, 0, 0, 0, 66, 0, 0, 0, 0 }, "input 's': binary BYTES data holds 3 elements, but shape [2] needs 2")]
    [InlineData(new byte[] { 1, 0, 0, 0, 65 }, "input 's': binary BYTES data holds 1 elements, but shape [2] needs 2")]
    [InlineData(new byte[] { 1, 0, 0, 0, 65, 255, 255, 255, 255 }, "input 's': binary BYTES data is truncated at element 1")]
    public void ParseRequest_BadBinaryBytes_ThrowsBadRequest(byte[] data, string message)
    {
        var (body, headerLength) = BinaryBody(
            $$$"""{"inputs":[{"name":"s","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":{{{data.Length}}}}}]}""", data);

        var error = Assert.Throws<InferenceException>(() => OipCodec.ParseRequest(body, headerLength));

        Assert.Equal(message, error.Message);
    }

    [Fact]
    public void WriteRequest_Binary_SendsEveryInputAfterTheJsonInOrder()
    {
        var request = new InferenceRequest
        {
            Id = "q",
            Parameters = new() { ["priority"] = 2L },
            Inputs =
            [
                InferTensor.Create("a", [2], new[] { 1f, 2f }),
                InferTensor.CreateBytes("s", [1], [Encoding.UTF8.GetBytes("xy")]),
            ],
            Outputs = [new RequestedOutput { Name = "y", Parameters = new() { ["binary_data"] = true } }],
        };

        var (body, headerLength) = Write(request, binary: true);

        var json = Encoding.UTF8.GetString(body, 0, headerLength!.Value);
        Assert.Equal(
            """{"id":"q","parameters":{"priority":2},"inputs":[{"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}},{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":6}}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}""",
            json);
        Assert.Equal([.. Le(1f, 2f), .. BinaryStrings("xy")], body[headerLength.Value..]);
        var parsed = OipCodec.ParseRequest(body, headerLength);
        Assert.Equal(2L, parsed.Parameters!["priority"]);
        Assert.True(parsed.WantsBinaryOutput("y"));
    }

    [Fact]
    public void WriteRequest_StaleBinaryDataSizeParameter_IsReplacedByTheWriter()
    {
        var tensor = InferTensor.Create("a", [1], new[] { 5 });
        tensor.Parameters = new() { [ParameterNames.BinaryDataSize] = 999L, ["k"] = "v" };

        var (jsonBody, jsonHeader) = Write(new InferenceRequest { Inputs = [tensor] }, binary: false);
        var (binaryBody, binaryHeader) = Write(new InferenceRequest { Inputs = [tensor] }, binary: true);

        Assert.Null(jsonHeader);
        Assert.Equal("""{"inputs":[{"name":"a","shape":[1],"datatype":"INT32","parameters":{"k":"v"},"data":[5]}]}""", Encoding.UTF8.GetString(jsonBody));
        Assert.Contains("""{"k":"v","binary_data_size":4}""", Encoding.UTF8.GetString(binaryBody, 0, binaryHeader!.Value));
        Assert.Equal(5, OipCodec.ParseRequest(binaryBody, binaryHeader).Inputs[0].AsSpan<int>()[0]);
    }

    [Fact]
    public void WriteRequest_NonUtf8BytesInput_IsSentBinaryEvenInJsonMode()
    {
        var tensor = InferTensor.CreateBytes("s", [2], [[0xFF, 0x00], Encoding.UTF8.GetBytes("ok")]);

        var (body, headerLength) = Write(new InferenceRequest { Inputs = [tensor, InferTensor.Create("n", [1], new[] { 1L })] }, binary: false);

        Assert.NotNull(headerLength);
        Assert.Contains("\"data\":[1]", Encoding.UTF8.GetString(body, 0, headerLength.Value));
        AssertSameTensor(tensor, OipCodec.ParseRequest(body, headerLength).Inputs[0]);
    }

    [Fact]
    public void WriteRequest_DataDoesNotMatchShape_ThrowsBadRequest()
    {
        var tensor = InferTensor.Create("a", [3], new[] { 1f, 2f });

        var error = Assert.Throws<InferenceException>(() => Write(new InferenceRequest { Inputs = [tensor] }, binary: true));

        Assert.Equal("input 'a' holds 2 elements, but shape [3] needs 3", error.Message);
    }
}
