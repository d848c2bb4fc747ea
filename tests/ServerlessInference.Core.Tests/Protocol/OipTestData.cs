using System.Buffers;
using System.Text;
using ServerlessInference.Protocol;

namespace ServerlessInference.Tests.Protocol;

/// <summary>Tensors of every datatype, with edge values, and helpers shared by the protocol tests.</summary>
internal static class OipTestData
{
    public static InferTensor Tensor(TensorDatatype datatype, string name = "t") => datatype switch
    {
        TensorDatatype.Bool => InferTensor.Create(name, [2, 2], new[] { true, false, false, true }),
        TensorDatatype.Uint8 => InferTensor.Create(name, [3], new byte[] { 0, 7, byte.MaxValue }),
        TensorDatatype.Uint16 => InferTensor.Create(name, [3], new ushort[] { 0, 300, ushort.MaxValue }),
        TensorDatatype.Uint32 => InferTensor.Create(name, [3], new uint[] { 0, 70000, uint.MaxValue }),
        TensorDatatype.Uint64 => InferTensor.Create(name, [3], new ulong[] { 0, 1UL << 40, ulong.MaxValue }),
        TensorDatatype.Int8 => InferTensor.Create(name, [3], new sbyte[] { sbyte.MinValue, 0, sbyte.MaxValue }),
        TensorDatatype.Int16 => InferTensor.Create(name, [3], new short[] { short.MinValue, -1, short.MaxValue }),
        TensorDatatype.Int32 => InferTensor.Create(name, [3], new[] { int.MinValue, 42, int.MaxValue }),
        TensorDatatype.Int64 => InferTensor.Create(name, [1, 3], new[] { long.MinValue, -42L, long.MaxValue }),
        TensorDatatype.Fp16 => InferTensor.Create(name, [2, 3],
            new[] { Half.MinValue, Half.Epsilon, (Half)0.1f, Half.MaxValue, (Half)(-2.5f), Half.NegativeZero }),
        TensorDatatype.Fp32 => InferTensor.Create(name, [2, 3],
            new[] { float.MinValue, float.Epsilon, 0.1f, float.MaxValue, -1.17549435E-38f, 3.14159274f }),
        TensorDatatype.Fp64 => InferTensor.Create(name, [2, 2],
            new[] { double.MinValue, double.Epsilon, 0.1, double.MaxValue }),
        TensorDatatype.Bytes => InferTensor.CreateBytes(name, [3],
            [Encoding.UTF8.GetBytes("hello"), [], Encoding.UTF8.GetBytes("\"quoted\" é \n ✓")]),
        _ => throw new ArgumentOutOfRangeException(nameof(datatype)),
    };

    public static TheoryData<TensorDatatype> AllDatatypes()
    {
        var data = new TheoryData<TensorDatatype>();
        foreach (var datatype in Enum.GetValues<TensorDatatype>())
        {
            data.Add(datatype);
        }

        return data;
    }

    public static InferenceRequest ParseJson(string json, int? headerLength = null) =>
        OipCodec.ParseRequest(Encoding.UTF8.GetBytes(json), headerLength);

    public static InferenceException ParseError(string json) =>
        Assert.Throws<InferenceException>(() => ParseJson(json));

    /// <summary>A JSON header followed by raw bytes, as a Triton binary request is sent.</summary>
    public static (byte[] Body, int HeaderLength) BinaryBody(string json, params byte[][] parts)
    {
        var header = Encoding.UTF8.GetBytes(json);
        return ([.. header, .. parts.SelectMany(part => part)], header.Length);
    }

    public static (byte[] Body, int? HeaderLength) Write(InferenceRequest request, bool binary)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var headerLength = OipCodec.WriteRequest(buffer, request, binary);
        return (buffer.WrittenSpan.ToArray(), headerLength);
    }

    public static (byte[] Body, int? HeaderLength) Write(InferenceResponse response, Func<string, bool>? isBinary)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var headerLength = OipCodec.WriteResponse(buffer, response, isBinary);
        return (buffer.WrittenSpan.ToArray(), headerLength);
    }

    public static void AssertSameTensor(InferTensor expected, InferTensor actual)
    {
        Assert.Equal(expected.Name, actual.Name);
        Assert.Equal(expected.Datatype, actual.Datatype);
        Assert.Equal(expected.Shape, actual.Shape);
        switch (expected.Datatype)
        {
            case TensorDatatype.Bytes:
                Assert.NotNull(actual.BytesData);
                Assert.Equal(expected.BytesData!.Count, actual.BytesData.Count);
                for (var i = 0; i < expected.BytesData.Count; i++)
                {
                    Assert.Equal(expected.BytesData[i], actual.BytesData[i]);
                }

                break;
            case TensorDatatype.Fp16:
                // Compare values so that NaN equals NaN whatever its payload.
                Assert.Equal(expected.AsSpan<Half>().ToArray(), actual.AsSpan<Half>().ToArray());
                break;
            case TensorDatatype.Fp32:
                Assert.Equal(expected.AsSpan<float>().ToArray(), actual.AsSpan<float>().ToArray());
                break;
            case TensorDatatype.Fp64:
                Assert.Equal(expected.AsSpan<double>().ToArray(), actual.AsSpan<double>().ToArray());
                break;
            default:
                Assert.Equal(expected.Data.ToArray(), actual.Data.ToArray());
                break;
        }
    }
}
