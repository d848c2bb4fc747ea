using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Testing.Gateway;
using Shared = ServerlessInference.Testing.Gateway.Oip;

namespace ServerlessInference.IntegrationTests;

/// <summary>The shared gateway helpers (<see cref="Shared"/>) as <see cref="HttpContent"/>, plus what talking to real
/// processes needs: job documents, mismatches collected from concurrent requests.</summary>
internal static class Oip
{
    public const string MlpInput = MlpBenchModel.InputName;
    public const string ResNetInput = ResNet18Model.InputName;

    public static float[] Deterministic(int count, int seed) => Shared.Deterministic(count, seed);

    public static HttpContent Json(InferenceRequest request) => ToHttpContent(Shared.Json(request));

    public static HttpContent Binary(InferenceRequest request) => ToHttpContent(Shared.Binary(request));

    private static HttpContent ToHttpContent(GatewayContent gateway)
    {
        var content = new ByteArrayContent(gateway.Body);
        content.Headers.ContentType = new MediaTypeHeaderValue(gateway.ContentType!);
        foreach (var (name, value) in gateway.Headers ?? new Dictionary<string, string>())
        {
            content.Headers.Add(name, value);
        }

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
    public static float[] RunDirect(InferenceSession session, string input, int[] shape, float[] values) =>
        Shared.RunDirect(session, input, shape, values);

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
