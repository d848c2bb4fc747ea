using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;

namespace ServerlessInference.Onnx.Tests.Generation;

public sealed class OnnxPromptTokenCounterTests
{
    [Fact]
    public void ReadMetadataProperties_DemoModel_FindsTheTokenizerFilesTheEngineLoads()
    {
        using var onnx = new MemoryStream(LmTestModels.TinyBytes);

        var properties = OnnxPromptTokenCounter.ReadMetadataProperties(onnx);

        var manifest = DecoderLmModel.Manifest(DecoderLmModel.TinyLm);
        var tokenizer = manifest.Generation!.Tokenizer;
        Assert.Contains(tokenizer.Vocab!, properties.Keys);
        Assert.Contains(tokenizer.Merges!, properties.Keys);

        // The same tokenizer the engine builds from these files counts the same tokens.
        var loaded = TextTokenizer.Load(tokenizer, name => properties.TryGetValue(name, out var text) ? new MemoryStream(System.Text.Encoding.UTF8.GetBytes(text)) : null);
        Assert.True(loaded.Encode("the cat sat on the mat").Count > 0);
    }
}
