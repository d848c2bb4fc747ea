using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace ServerlessInference.Testing.Gateway;

/// <summary>Request building, response reading and reference ONNX Runtime runs for the gateway behaviour tests.</summary>
public static class Oip
{
    public static float[] Deterministic(int count, int seed)
    {
        var values = new float[count];
        var state = (uint)(seed * 2654435761u + 12345);
        for (var i = 0; i < count; i++)
        {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            values[i] = (state % 2001) / 1000f - 1f;
        }

        return values;
    }

    public static GatewayContent Json(InferenceRequest request)
    {
        var buffer = new ArrayBufferWriter<byte>();
        OipCodec.WriteRequest(buffer, request, binary: false);
        return new GatewayContent(buffer.WrittenSpan.ToArray(), "application/json");
    }

    public static GatewayContent Binary(InferenceRequest request)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var headerLength = OipCodec.WriteRequest(buffer, request, binary: true)!.Value;
        return new GatewayContent(buffer.WrittenSpan.ToArray(), "application/octet-stream", new Dictionary<string, string>
        {
            [ParameterNames.InferenceHeaderContentLength] = headerLength.ToString(CultureInfo.InvariantCulture),
        });
    }

    public static GatewayContent Raw(string json) => new(Encoding.UTF8.GetBytes(json), "application/json; charset=utf-8");

    public static InferenceRequest Request(string input, long[] shape, float[] values, bool binaryOutput = false) => new()
    {
        Id = "req-" + values[0].ToString("R", CultureInfo.InvariantCulture),
        Inputs = [InferTensor.Create(input, shape, values)],
        Parameters = binaryOutput ? new Dictionary<string, object> { [ParameterNames.BinaryDataOutput] = true } : null,
    };

    public static InferenceResponse ReadResponse(GatewayResponse response)
    {
        Assert.True(response.IsSuccess, response.ToString());
        int? headerLength = response.Header(ParameterNames.InferenceHeaderContentLength) is { } value
            ? int.Parse(value, CultureInfo.InvariantCulture)
            : null;
        return OipCodec.ParseResponse(response.Body, headerLength);
    }

    /// <summary>Runs a model directly with ONNX Runtime (no platform) for reference outputs.</summary>
    public static float[] RunDirect(InferenceSession session, string input, int[] shape, float[] values)
    {
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(input, new DenseTensor<float>(values, shape))]);
        return results.First().AsEnumerable<float>().ToArray();
    }

    public static void AssertClose(float[] expected, ReadOnlySpan<float> actual, float tolerance = 1e-4f)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            var scale = Math.Max(1f, Math.Abs(expected[i]));
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance * scale, $"element {i}: expected {expected[i]}, got {actual[i]}");
        }
    }
}
