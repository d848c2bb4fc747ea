namespace ServerlessInference.Tests.Protocol;

public sealed class ClientErrorTextTests
{
    [Theory]
    [InlineData("model 'm:1' failed to load: Load model from /home/x/.models/ab/model.onnx failed:Protobuf parsing failed.",
        "model 'm:1' failed to load: Load model from .../model.onnx failed:Protobuf parsing failed.")]
    [InlineData("weights of model 'm:1' are missing from the model store (/srv/models/m/1/model.onnx)",
        "weights of model 'm:1' are missing from the model store (.../model.onnx)")]
    [InlineData("cannot open ~/.cache/si/weights/abc.onnx", "cannot open .../abc.onnx")]
    [InlineData("cannot open ../models/m/1/model.onnx", "cannot open .../model.onnx")]
    [InlineData(@"LoadLibrary failed: C:\Users\x\.models\m\model.onnx", @"LoadLibrary failed: ...\model.onnx")]
    public void Scrub_LocalPath_KeepsOnlyTheFileName(string message, string expected)
    {
        var scrubbed = ClientErrorText.Scrub(message);

        Assert.Equal(expected, scrubbed);
        Assert.Equal(scrubbed, ClientErrorText.Scrub(scrubbed));
    }

    [Theory]
    [InlineData("model 'm' has no chat template; use /v1/completions")]
    [InlineData("poll /jobs/abc/stream or POST /v2/models/m/infer")]
    [InlineData("unreachable: https://example.blob.core.windows.net/models/m/1/manifest.json")]
    [InlineData("model name, version and file must be plain path segments: 'm/1/model.onnx'")]
    [InlineData("tensor 'x' has shape [2,4] but the model expects [-1,8]")]
    [InlineData("dead-lettered after 3 deliveries (max 3); last error: kernel exploded")]
    public void Scrub_NoLocalPath_LeavesTheTextAlone(string message) =>
        Assert.Equal(message, ClientErrorText.Scrub(message));
}
