using ServerlessInference.Embedded;
using ServerlessInference.Onnx.Demo;

namespace ServerlessInference.DevHost.Tests;

/// <summary><c>models demo lm-spec</c>: the speculative-decoding demo that start-up does not seed.</summary>
public sealed class ModelsDemoCommandTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "si-demo-command-tests", Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
            // The OS cleans its temp folder.
        }
    }

    [Fact]
    public async Task ModelsDemo_LmSpec_StoresTheTargetNamingItsDraftAndTheDraft()
    {
        var output = new StringWriter();
        var error = new StringWriter();

        var code = await ModelsCommand.RunAsync(["models", "demo", "lm-spec", $"--Inference:ModelStore:Root={_root}"], output, error);

        Assert.True(code == 0, error.ToString());
        var store = new FolderModelStore(_root);
        var target = await store.GetManifestAsync("lm-spec", DecoderLmModel.Version, default);
        var draft = await store.GetManifestAsync("lm-spec-draft", DecoderLmModel.Version, default);
        Assert.NotNull(target);
        Assert.NotNull(draft);
        Assert.Equal("lm-spec-draft", target.Generation!.Speculative!.Draft);
        Assert.Equal(8, target.Generation.NumLayers);
        Assert.Equal(64, target.Sha256.Length);
        Assert.Contains($"sha256 {target.Sha256}", output.ToString());

        // The same bytes every time: a second run stores the same checksums.
        Assert.Equal(0, await ModelsCommand.RunAsync(["models", "demo", "lm-spec", $"--Inference:ModelStore:Root={_root}"], new StringWriter(), error));
        Assert.Equal(target.Sha256, (await store.GetManifestAsync("lm-spec", DecoderLmModel.Version, default))!.Sha256);
    }

    [Theory]
    [InlineData(new[] { "lm-bench" }, "builds lm-spec")]
    [InlineData(new[] { "lm-spec", "--version", "2" }, "takes no options")]
    [InlineData(new string[0], "needs the model's name")]
    public async Task ModelsDemo_BadArguments_AreUsageErrors(string[] args, string expectedError)
    {
        var error = new StringWriter();

        var code = await ModelsCommand.RunAsync(["models", "demo", .. args, $"--Inference:ModelStore:Root={_root}"], new StringWriter(), error);

        Assert.Equal(2, code);
        Assert.Contains(expectedError, error.ToString());
        Assert.False(Directory.Exists(Path.Combine(_root, "lm-spec")));
    }
}
