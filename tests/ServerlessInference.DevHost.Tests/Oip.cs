using System.Buffers;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace ServerlessInference.DevHost.Tests;

/// <summary>Request building, response reading and reference ONNX Runtime runs for the end-to-end tests.</summary>
internal static class Oip
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

    public static HttpContent Json(InferenceRequest request)
    {
        var buffer = new ArrayBufferWriter<byte>();
        OipCodec.WriteRequest(buffer, request, binary: false);
        var content = new ByteArrayContent(buffer.WrittenSpan.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    public static HttpContent Binary(InferenceRequest request)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var headerLength = OipCodec.WriteRequest(buffer, request, binary: true)!.Value;
        var content = new ByteArrayContent(buffer.WrittenSpan.ToArray());
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        content.Headers.Add(ParameterNames.InferenceHeaderContentLength, headerLength.ToString(CultureInfo.InvariantCulture));
        return content;
    }

    public static HttpContent Raw(string json) => new StringContent(json, Encoding.UTF8, "application/json");

    public static InferenceRequest Request(string input, long[] shape, float[] values, bool binaryOutput = false) => new()
    {
        Id = "req-" + values[0].ToString("R", CultureInfo.InvariantCulture),
        Inputs = [InferTensor.Create(input, shape, values)],
        Parameters = binaryOutput ? new Dictionary<string, object> { [ParameterNames.BinaryDataOutput] = true } : null,
    };

    public static async Task<InferenceResponse> ReadResponseAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {Encoding.UTF8.GetString(body)}");
        int? headerLength = response.Headers.TryGetValues(ParameterNames.InferenceHeaderContentLength, out var values)
            ? int.Parse(values.Single(), CultureInfo.InvariantCulture)
            : response.Content.Headers.TryGetValues(ParameterNames.InferenceHeaderContentLength, out var contentValues)
                ? int.Parse(contentValues.Single(), CultureInfo.InvariantCulture)
                : null;
        return OipCodec.ParseResponse(body, headerLength);
    }

    public static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();

    public static async Task<string> ReadErrorAsync(HttpResponseMessage response)
    {
        var json = await ReadJsonAsync(response);
        return json.GetProperty("error").GetString()!;
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
