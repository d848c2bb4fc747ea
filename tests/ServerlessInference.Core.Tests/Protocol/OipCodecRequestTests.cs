using System.Globalization;
using System.Text;
using ServerlessInference.Protocol;
using static ServerlessInference.Tests.Protocol.OipTestData;

namespace ServerlessInference.Tests.Protocol;

public sealed class OipCodecRequestTests
{
    [Theory]
    [MemberData(nameof(AllDatatypes), MemberType = typeof(OipTestData))]
    public void WriteRequestThenParseRequest_JsonEveryDatatype_RoundTrips(TensorDatatype datatype)
    {
        var tensor = Tensor(datatype, "x");
        var (body, headerLength) = Write(new InferenceRequest { Id = "r1", Inputs = [tensor] }, binary: false);

        Assert.Null(headerLength);
        var parsed = OipCodec.ParseRequest(body, headerLength);

        Assert.Equal("r1", parsed.Id);
        AssertSameTensor(tensor, Assert.Single(parsed.Inputs));
    }

    [Theory]
    [MemberData(nameof(AllDatatypes), MemberType = typeof(OipTestData))]
    public void WriteRequestThenParseRequest_BinaryEveryDatatype_RoundTrips(TensorDatatype datatype)
    {
        var tensor = Tensor(datatype, "x");
        var (body, headerLength) = Write(new InferenceRequest { Inputs = [tensor] }, binary: true);

        Assert.NotNull(headerLength);
        Assert.Contains("\"binary_data_size\":", Encoding.UTF8.GetString(body, 0, headerLength.Value));
        var parsed = Assert.Single(OipCodec.ParseRequest(body, headerLength).Inputs);

        AssertSameTensor(tensor, parsed);
        Assert.Null(parsed.Parameters);
    }

    [Fact]
    public void ParseRequest_EveryDatatypeAsWrittenByHand_ReadsValues()
    {
        const string json = """
            {"inputs":[
              {"name":"b","shape":[2],"datatype":"BOOL","data":[true,false]},
              {"name":"u8","shape":[2],"datatype":"UINT8","data":[0,255]},
              {"name":"u16","shape":[1],"datatype":"UINT16","data":[65535]},
              {"name":"u32","shape":[1],"datatype":"UINT32","data":[4294967295]},
              {"name":"u64","shape":[1],"datatype":"UINT64","data":[18446744073709551615]},
              {"name":"i8","shape":[2],"datatype":"INT8","data":[-128,127]},
              {"name":"i16","shape":[1],"datatype":"INT16","data":[-32768]},
              {"name":"i32","shape":[1],"datatype":"INT32","data":[-2147483648]},
              {"name":"i64","shape":[1],"datatype":"INT64","data":[-9223372036854775808]},
              {"name":"f16","shape":[3],"datatype":"FP16","data":[1.5,-65504,6.1e-5]},
              {"name":"f32","shape":[3],"datatype":"FP32","data":[0.1,-3.4028235e38,1E-45]},
              {"name":"f64","shape":[2],"datatype":"FP64","data":[0.1,1.7976931348623157e308]},
              {"name":"s","shape":[2],"datatype":"BYTES","data":["h\u00e9\"llo",""]}
            ]}
            """;

        var inputs = ParseJson(json).Inputs.ToDictionary(input => input.Name);

        Assert.Equal(new byte[] { 1, 0 }, inputs["b"].Data.ToArray());
        Assert.Equal(new byte[] { 0, 255 }, inputs["u8"].AsSpan<byte>().ToArray());
        Assert.Equal(ushort.MaxValue, inputs["u16"].AsSpan<ushort>()[0]);
        Assert.Equal(uint.MaxValue, inputs["u32"].AsSpan<uint>()[0]);
        Assert.Equal(ulong.MaxValue, inputs["u64"].AsSpan<ulong>()[0]);
        Assert.Equal(new sbyte[] { -128, 127 }, inputs["i8"].AsSpan<sbyte>().ToArray());
        Assert.Equal(short.MinValue, inputs["i16"].AsSpan<short>()[0]);
        Assert.Equal(int.MinValue, inputs["i32"].AsSpan<int>()[0]);
        Assert.Equal(long.MinValue, inputs["i64"].AsSpan<long>()[0]);
        Assert.Equal(new[] { (Half)1.5f, Half.MinValue, Half.Parse("6.1e-5", CultureInfo.InvariantCulture) }, inputs["f16"].AsSpan<Half>().ToArray());
        Assert.Equal(new[] { 0.1f, float.MinValue, float.Epsilon }, inputs["f32"].AsSpan<float>().ToArray());
        Assert.Equal(new[] { 0.1, double.MaxValue }, inputs["f64"].AsSpan<double>().ToArray());
        Assert.Equal("hé\"llo", Encoding.UTF8.GetString(inputs["s"].BytesData![0]));
        Assert.Empty(inputs["s"].BytesData![1]);
        Assert.True(inputs["s"].Data.IsEmpty);
    }

    [Fact]
    public void ParseRequest_NestedData_Flattens()
    {
        var request = ParseJson("""{"inputs":[{"name":"x","shape":[2,2,2],"datatype":"INT32","data":[[[1,2],[3,4]],[[5,6],[7,8]]]}]}""");

        Assert.Equal(new[] { 1, 2, 3, 4, 5, 6, 7, 8 }, request.Inputs[0].AsSpan<int>().ToArray());
    }

    [Fact]
    public void ParseRequest_NestedBytesData_Flattens()
    {
        var request = ParseJson("""{"inputs":[{"name":"x","shape":[2,1],"datatype":"BYTES","data":[["a"],["b"]]}]}""");

        Assert.Equal(["a", "b"], request.Inputs[0].BytesData!.Select(Encoding.UTF8.GetString));
    }

    [Theory]
    [InlineData("""{"name":"x","shape":[3],"datatype":"FP32","data":[1,2.5,-3]}""")]
    [InlineData("""{"data":[1,2.5,-3],"name":"x","shape":[3],"datatype":"FP32"}""")]
    [InlineData("""{"datatype":"FP32","data":[1,2.5,-3],"shape":[3],"name":"x"}""")]
    [InlineData("""{"shape":[3],"data":[[1],[2.5],[-3]],"datatype":"fp32","name":"x","extra":{"a":[1,{"b":2}]}}""")]
    [InlineData("""{"name":"x","datatype":"FP32","shape":[3],"data":[1,2.5,-3]}""")]
    public void ParseRequest_AnyPropertyOrder_ReadsSameTensor(string input)
    {
        var request = ParseJson($$"""{"outputs":[{"name":"y"}],"inputs":[{{input}}],"id":"7","unknown":[1,2,{"x":null}]}""");

        var tensor = Assert.Single(request.Inputs);
        Assert.Equal("x", tensor.Name);
        Assert.Equal(TensorDatatype.Fp32, tensor.Datatype);
        Assert.Equal(new long[] { 3 }, tensor.Shape);
        Assert.Equal(new[] { 1f, 2.5f, -3f }, tensor.AsSpan<float>().ToArray());
        Assert.Equal("7", request.Id);
        Assert.Equal("y", Assert.Single(request.Outputs!).Name);
    }

    [Fact]
    public void ParseRequest_DataBeforeShape_StillChecksElementCount()
    {
        var error = ParseError("""{"inputs":[{"data":[1,2],"name":"x","shape":[3],"datatype":"FP32"}]}""");

        Assert.Equal("input 'x': data has 2 elements, but shape [3] needs 3", error.Message);
    }

    [Fact]
    public void ParseRequest_ParametersAndRequestedOutputs_AreRead()
    {
        var request = ParseJson("""
            {"id":"a","parameters":{"s":"v","b":true,"n":3,"d":0.5,"big":1e300},
             "inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":[1],"parameters":{"k":"v"}}],
             "outputs":[{"name":"y","parameters":{"binary_data":true}},{"name":"z"}]}
            """);

        Assert.Equal("v", request.Parameters!["s"]);
        Assert.Equal(true, request.Parameters["b"]);
        Assert.Equal(3L, request.Parameters["n"]);
        Assert.Equal(0.5, request.Parameters["d"]);
        Assert.Equal(1e300, request.Parameters["big"]);
        Assert.Equal("v", request.Inputs[0].Parameters!["k"]);
        Assert.True(request.WantsBinaryOutput("y"));
        Assert.False(request.WantsBinaryOutput("z"));
        Assert.Null(request.Outputs![1].Parameters);
    }

    [Fact]
    public void ParseRequest_NullOptionalProperties_AreAbsent()
    {
        var request = ParseJson("""{"id":null,"parameters":null,"outputs":null,"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[1],"parameters":null}]}""");

        Assert.Null(request.Id);
        Assert.Null(request.Parameters);
        Assert.Null(request.Outputs);
        Assert.Null(request.Inputs[0].Parameters);
    }

    [Fact]
    public void ParseRequest_ScalarShape_HasOneElement()
    {
        var request = ParseJson("""{"inputs":[{"name":"x","shape":[],"datatype":"FP64","data":[2.5]}]}""");

        Assert.Equal(2.5, request.Inputs[0].AsSpan<double>()[0]);
    }

    [Fact]
    public void ParseRequest_NamedFloatStrings_ReadAsNaNAndInfinity()
    {
        var request = ParseJson("""
            {"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":["NaN","Infinity","-Infinity"]},
                       {"name":"y","shape":[3],"datatype":"FP64","data":["NaN","Infinity","-Infinity"]},
                       {"name":"z","shape":[3],"datatype":"FP16","data":["NaN","Infinity","-Infinity"]}]}
            """);

        Assert.Equal(new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity }, request.Inputs[0].AsSpan<float>().ToArray());
        Assert.Equal(new[] { double.NaN, double.PositiveInfinity, double.NegativeInfinity }, request.Inputs[1].AsSpan<double>().ToArray());
        Assert.Equal(new[] { Half.NaN, Half.PositiveInfinity, Half.NegativeInfinity }, request.Inputs[2].AsSpan<Half>().ToArray());
    }

    [Fact]
    public void ParseRequest_ResNetSizedFp32Input_ReadsExactFloats()
    {
        const int count = 3 * 224 * 224;
        var random = new Random(18);
        var expected = new float[count];
        var json = new StringBuilder(count * 12);
        json.Append("""{"inputs":[{"name":"Input247","shape":[1,3,224,224],"datatype":"FP32","data":[""");
        for (var i = 0; i < count; i++)
        {
            // Mix normalised pixels with arbitrary finite bit patterns to exercise every exponent.
            var value = i % 4 == 0 ? BitConverter.Int32BitsToSingle(random.Next() & 0x7F7FFFFF) * (random.Next(2) == 0 ? 1 : -1) : (random.NextSingle() * 4) - 2;
            expected[i] = value;
            json.Append(i == 0 ? "" : ",").Append(value.ToString("R", CultureInfo.InvariantCulture));
        }

        json.Append("]}]}");
        var body = Encoding.UTF8.GetBytes(json.ToString());

        var tensor = Assert.Single(OipCodec.ParseRequest(body, null).Inputs);

        Assert.Equal(count * 4, tensor.Data.Length);
        Assert.True(expected.AsSpan().SequenceEqual(tensor.AsSpan<float>()));
        var (written, _) = Write(new InferenceRequest { Inputs = [tensor] }, binary: false);
        Assert.True(expected.AsSpan().SequenceEqual(OipCodec.ParseRequest(written, null).Inputs[0].AsSpan<float>()));
    }

    [Theory]
    [InlineData("{", "invalid JSON: ")]
    [InlineData("", "invalid JSON: ")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[1]}]} x""", "invalid JSON: ")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[1,]}]}""", "invalid JSON: ")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[01]}]}""", "invalid JSON: ")]
    [InlineData("[]", "request body must be a JSON object")]
    [InlineData("{}", "request has no inputs")]
    [InlineData("""{"inputs":[]}""", "request has no inputs")]
    [InlineData("""{"inputs":{}}""", "'inputs' must be a JSON array")]
    [InlineData("""{"inputs":[1]}""", "input #0 must be a JSON object")]
    [InlineData("""{"inputs":[{"shape":[1],"datatype":"INT8","data":[1]}]}""", "input #0 has no name")]
    [InlineData("""{"inputs":[{"name":1}]}""", "input #0: name must be a string")]
    [InlineData("""{"inputs":[{"name":"x","datatype":"INT8","data":[1]}]}""", "input 'x' has no shape")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"data":[1]}]}""", "input 'x' has no datatype")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT8"}]}""", "input 'x' has no data")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"FP99","data":[1]}]}""", "input 'x': unknown datatype 'FP99'")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":5,"data":[1]}]}""", "input 'x': datatype must be a string")]
    [InlineData("""{"inputs":[{"name":"x","shape":[-1],"datatype":"INT8","data":[1]}]}""", "input 'x': shape must be a JSON array of non-negative integers")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1.5],"datatype":"INT8","data":[1]}]}""", "input 'x': shape must be a JSON array of non-negative integers")]
    [InlineData("""{"inputs":[{"name":"x","shape":3,"datatype":"INT8","data":[1]}]}""", "input 'x': shape must be a JSON array of non-negative integers")]
    [InlineData("""{"inputs":[{"name":"x","shape":[4294967296,4294967296],"datatype":"INT8","data":[1]}]}""", "input 'x': shape [4294967296,4294967296] overflows the element count")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":1}]}""", "input 'x': data must be a JSON array")]
    [InlineData("""{"inputs":[{"name":"x","shape":[3],"datatype":"INT8","data":[1,2]}]}""", "input 'x': data has 2 elements, but shape [3] needs 3")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[1,2]}]}""", "input 'x': data has 2 elements, but shape [1] needs 1")]
    [InlineData("""{"inputs":[{"name":"x","shape":[2],"datatype":"BYTES","data":["a"]}]}""", "input 'x': data has 1 elements, but shape [2] needs 2")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1000000000000],"datatype":"FP64","data":[1]}]}""", "input 'x': data has 1 elements, but shape [1000000000000] needs 1000000000000")]
    [InlineData("""{"inputs":[{"name":"x","shape":[2],"datatype":"INT8","data":[1,128]}]}""", "input 'x': element 1 is not a valid INT8 (128)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[-129]}]}""", "input 'x': element 0 is not a valid INT8 (-129)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"UINT8","data":[-1]}]}""", "input 'x': element 0 is not a valid UINT8 (-1)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"UINT16","data":[65536]}]}""", "input 'x': element 0 is not a valid UINT16 (65536)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT16","data":[32768]}]}""", "input 'x': element 0 is not a valid INT16 (32768)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"UINT32","data":[4294967296]}]}""", "input 'x': element 0 is not a valid UINT32 (4294967296)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[1.5]}]}""", "input 'x': element 0 is not a valid INT32 (1.5)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[1e3]}]}""", "input 'x': element 0 is not a valid INT32 (1e3)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"UINT64","data":[-1]}]}""", "input 'x': element 0 is not a valid UINT64 (-1)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":[9223372036854775808]}]}""", "input 'x': element 0 is not a valid INT64 (9223372036854775808)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":["1"]}]}""", "input 'x': element 0 is not a valid INT64 (\"1\")")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":[null]}]}""", "input 'x': element 0 is not a valid INT64 (null)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":[{"a":1}]}]}""", "input 'x': element 0 is not a valid INT64 ({)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"BOOL","data":[1]}]}""", "input 'x': element 0 is not a valid BOOL (1)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,"abc"]}]}""", "input 'x': element 1 is not a valid FP32 (\"abc\")")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1e39]}]}""", "input 'x': element 0 is not a valid FP32 (1e39)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"FP64","data":[1e400]}]}""", "input 'x': element 0 is not a valid FP64 (1e400)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"FP16","data":[70000]}]}""", "input 'x': element 0 is not a valid FP16 (70000)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"FP16","data":[true]}]}""", "input 'x': element 0 is not a valid FP16 (true)")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":[1]}]}""", "input 'x': element 0 is not a valid BYTES (1); BYTES elements are JSON strings")]
    [InlineData("""{"inputs":[{"data":[1,300],"shape":[2],"datatype":"UINT8","name":"late"}]}""", "input 'late': element 1 is not a valid UINT8 (300)")]
    [InlineData("""{"id":5,"inputs":[]}""", "request 'id' must be a string")]
    [InlineData("""{"parameters":[1],"inputs":[]}""", "request: parameters must be a JSON object")]
    [InlineData("""{"parameters":{"a":[1]},"inputs":[]}""", "request: parameter 'a' must be a string, number or boolean")]
    [InlineData("""{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[1],"parameters":{"a":null}}]}""", "input 'x': parameter 'a' must be a string, number or boolean")]
    [InlineData("""{"outputs":{},"inputs":[]}""", "request 'outputs' must be a JSON array")]
    [InlineData("""{"outputs":[{"parameters":{}}],"inputs":[]}""", "requested output #0 has no name")]
    [InlineData("""{"outputs":[7],"inputs":[]}""", "requested output #0 must be a JSON object")]
    public void ParseRequest_BadBody_ThrowsBadRequestNamingTheProblem(string json, string message)
    {
        var error = ParseError(json);

        Assert.Equal(InferenceError.BadRequest, error.Error);
        if (message.EndsWith(": ", StringComparison.Ordinal))
        {
            Assert.StartsWith(message, error.Message);
            Assert.True(error.Message.Length > message.Length);
        }
        else
        {
            Assert.Equal(message, error.Message);
        }
    }
}
