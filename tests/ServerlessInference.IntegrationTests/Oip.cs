using System.Buffers;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ServerlessInference.Onnx.Demo;

namespace ServerlessInference.IntegrationTests;

/// <summary>Request building, response reading and reference ONNX Runtime runs (after the DevHost tests' helpers).</summary>
internal static class Oip
{
    public const string MlpInput = MlpBenchModel.InputName;
    public const string ResNetInput = ResNet18Model.InputName;

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

    public static InferenceRequest Request(string input, long[] shape, float[] values, string id, bool binaryOutput = false) => new()
    {
        Id = id,
        Inputs = [InferTensor.Create(input, shape, values)],
        Parameters = binaryOutput ? new Dictionary<string, object> { [ParameterNames.BinaryDataOutput] = true } : null,
    };

    public static HttpContent MlpRequest(float[] values, string id) => Json(Request(MlpInput, [1, 512], values, id));

    public static HttpContent ResNetRequest(float[] values, string id) => Binary(Request(ResNetInput, [1, 3, 224, 224], values, id, binaryOutput: true));

    /// <summary>A POST to <c>/v2/models/{model}/infer</c>; <paramref name="respondAsync"/> adds <c>Prefer: respond-async</c>.</summary>
    public static HttpRequestMessage Infer(string model, HttpContent content, bool respondAsync = false)
    {
        var post = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{model}/infer") { Content = content };
        if (respondAsync)
        {
            post.Headers.Add("Prefer", "respond-async");
        }

        return post;
    }

    /// <summary>Parses an infer answer (JSON or binary); throws with the body when it is not a success.</summary>
    public static async Task<InferenceResponse> ReadResponseAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsByteArrayAsync();
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"{(int)response.StatusCode}: {Encoding.UTF8.GetString(body)}");
        }

        int? headerLength = response.Headers.TryGetValues(ParameterNames.InferenceHeaderContentLength, out var values)
            ? int.Parse(values.Single(), CultureInfo.InvariantCulture)
            : response.Content.Headers.TryGetValues(ParameterNames.InferenceHeaderContentLength, out var contentValues)
                ? int.Parse(contentValues.Single(), CultureInfo.InvariantCulture)
                : null;
        return OipCodec.ParseResponse(body, headerLength);
    }

    /// <summary>The <c>response</c> of a finished <c>/jobs/{id}</c> document.</summary>
    public static InferenceResponse JobResponse(JsonElement job) =>
        OipCodec.ParseResponse(Encoding.UTF8.GetBytes(job.GetProperty("response").GetRawText()), null);

    public static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();

    public static async Task<string> ReadErrorAsync(HttpResponseMessage response) =>
        (await ReadJsonAsync(response)).GetProperty("error").GetString()!;

    /// <summary>Runs a model directly with ONNX Runtime (no platform) for reference outputs.</summary>
    public static float[] RunDirect(InferenceSession session, string input, int[] shape, float[] values)
    {
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(input, new DenseTensor<float>(values, shape))]);
        return results.First().AsEnumerable<float>().ToArray();
    }

    /// <summary>Null when <paramref name="actual"/> matches <paramref name="expected"/> within a relative tolerance; else
    /// what differs (for collecting mismatches from concurrent requests).</summary>
    public static string? Mismatch(float[] expected, ReadOnlySpan<float> actual, float tolerance = 1e-4f)
    {
        if (expected.Length != actual.Length)
        {
            return $"expected {expected.Length} elements, got {actual.Length}";
        }

        for (var i = 0; i < expected.Length; i++)
        {
            var scale = Math.Max(1f, Math.Abs(expected[i]));
            if (!(Math.Abs(expected[i] - actual[i]) <= tolerance * scale))
            {
                return $"element {i}: expected {expected[i]}, got {actual[i]}";
            }
        }

        return null;
    }

    public static void AssertClose(float[] expected, ReadOnlySpan<float> actual, float tolerance = 1e-4f)
    {
        var mismatch = Mismatch(expected, actual, tolerance);
        Assert.True(mismatch is null, mismatch);
    }
}
