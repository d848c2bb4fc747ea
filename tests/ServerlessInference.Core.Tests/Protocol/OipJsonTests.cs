using System.Text;
using System.Text.Json;
using ServerlessInference.Models;
using ServerlessInference.Protocol;

namespace ServerlessInference.Tests.Protocol;

public sealed class OipJsonTests
{
    private static readonly string s_sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    private static ModelManifest Manifest(string version = "1") => new()
    {
        Name = "resnet18",
        Version = version,
        File = "resnet18.onnx",
        Sha256 = s_sha,
        SizeBytes = 63_600_000,
        Inputs = [new TensorSpec("Input247", TensorDatatype.Fp32, [-1, 3, 224, 224])],
        Outputs = [new TensorSpec("Pooling395_Output_0", TensorDatatype.Fp32, [-1, 512, 1, 1]), new TensorSpec("label", TensorDatatype.Bytes, [-1])],
        MaxBatchSize = 16,
        DynamicBatch = true,
    };

    private static void AssertSameManifest(ModelManifest expected, ModelManifest actual)
    {
        Assert.Equal(
            (expected.Name, expected.Version, expected.File, expected.Sha256, expected.SizeBytes, expected.Platform, expected.MaxBatchSize, expected.DynamicBatch),
            (actual.Name, actual.Version, actual.File, actual.Sha256, actual.SizeBytes, actual.Platform, actual.MaxBatchSize, actual.DynamicBatch));
        Assert.Equal(expected.Inputs.Count, actual.Inputs.Count);
        Assert.Equal(expected.Outputs.Count, actual.Outputs.Count);
        foreach (var (e, a) in expected.Inputs.Concat(expected.Outputs).Zip(actual.Inputs.Concat(actual.Outputs)))
        {
            Assert.Equal(e.Name, a.Name);
            Assert.Equal(e.Datatype, a.Datatype);
            Assert.Equal(e.Shape, a.Shape);
        }
    }

    [Fact]
    public void ModelManifestJson_SerializeThenDeserialize_RoundTrips()
    {
        var manifest = Manifest();

        var json = ModelManifestJson.Serialize(manifest);

        AssertSameManifest(manifest, ModelManifestJson.Deserialize(json));
    }

    [Fact]
    public void ModelManifestJson_Serialize_WritesSnakeCaseAndDatatypeNames()
    {
        using var document = JsonDocument.Parse(ModelManifestJson.Serialize(Manifest()));
        var root = document.RootElement;

        Assert.Equal(
            ["name", "version", "file", "sha256", "size_bytes", "platform", "inputs", "outputs", "max_batch_size", "dynamic_batch"],
            root.EnumerateObject().Select(property => property.Name));
        Assert.Equal("FP32", root.GetProperty("inputs")[0].GetProperty("datatype").GetString());
        Assert.Equal("BYTES", root.GetProperty("outputs")[1].GetProperty("datatype").GetString());
        Assert.Equal("[-1,3,224,224]", root.GetProperty("inputs")[0].GetProperty("shape").GetRawText().Replace(" ", "").Replace("\n", ""));
        Assert.Equal(63_600_000, root.GetProperty("size_bytes").GetInt64());
        Assert.True(root.GetProperty("dynamic_batch").GetBoolean());
    }

    [Fact]
    public void ModelManifestJson_DeserializeMinimal_AppliesDefaults()
    {
        var manifest = ModelManifestJson.Deserialize("""
            // hand-written
            {"name":"mlp","sha256":"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef","size_bytes":5,
             "inputs":[{"name":"x","datatype":"fp32","shape":[1,16]}],"outputs":[{"name":"y","datatype":"FP32","shape":[1,4]},],
             "unknown":true}
            """u8);

        Assert.Equal("1", manifest.Version);
        Assert.Equal("model.onnx", manifest.File);
        Assert.Equal("onnxruntime_onnx", manifest.Platform);
        Assert.Equal(1, manifest.MaxBatchSize);
        Assert.False(manifest.DynamicBatch);
        Assert.Equal(s_sha, manifest.Sha256);
        Assert.Equal(TensorDatatype.Fp32, manifest.Inputs[0].Datatype);
    }

    [Theory]
    [InlineData("""{"sha256":"S","size_bytes":1,"inputs":[],"outputs":[]}""", "invalid model manifest: 'name' is missing")]
    [InlineData("""{"name":"m","size_bytes":1,"inputs":[],"outputs":[]}""", "invalid model manifest: 'sha256' is missing")]
    [InlineData("""{"name":"m","sha256":"abc","size_bytes":1,"inputs":[],"outputs":[]}""", "invalid model manifest: 'sha256' must be 64 hex digits, got 'abc'")]
    [InlineData("""{"name":"m","sha256":"S","inputs":[],"outputs":[]}""", "invalid model manifest: 'size_bytes' is missing")]
    [InlineData("""{"name":"m","sha256":"S","size_bytes":-1,"inputs":[],"outputs":[]}""", "invalid model manifest: 'size_bytes' is negative (-1)")]
    [InlineData("""{"name":"m","sha256":"S","size_bytes":1,"outputs":[]}""", "invalid model manifest: 'inputs' is missing")]
    [InlineData("""{"name":"m","sha256":"S","size_bytes":1,"inputs":[],"outputs":[]}""", "invalid model manifest: a model needs at least one input and one output")]
    [InlineData("""{"name":"m","sha256":"S","size_bytes":1,"max_batch_size":0,"inputs":[],"outputs":[]}""", "invalid model manifest: 'max_batch_size' must be at least 1, got 0")]
    [InlineData("""{"name":"m","sha256":"S","size_bytes":1,"inputs":[{"name":"x","shape":[1]}],"outputs":[]}""", "invalid model manifest: 'inputs[0].datatype' is missing")]
    [InlineData("""{"name":"m","sha256":"S","size_bytes":1,"inputs":[{"name":"x","datatype":"FP32"}],"outputs":[]}""", "invalid model manifest: 'inputs[0].shape' is missing")]
    [InlineData("""{"name":"m","sha256":"S","size_bytes":1,"inputs":[{"name":"x","datatype":"FP32","shape":[-2]}],"outputs":[]}""", "invalid model manifest: inputs[0] 'x' has shape [-2]; dims must be -1 (variable) or at least 0")]
    [InlineData("""{"name":"m","sha256":"S","size_bytes":1,"dynamic_batch":true,"inputs":[{"name":"x","datatype":"FP32","shape":[1,2]}],"outputs":[]}""", "invalid model manifest: inputs[0] 'x' has shape [1,2]; a dynamic_batch model needs -1 as dim 0")]
    [InlineData("""{"name":"m","sha256":"S","size_bytes":1,"inputs":[{"name":"x","datatype":"FP32","shape":[1]},{"name":"x","datatype":"FP32","shape":[1]}],"outputs":[]}""", "invalid model manifest: inputs[1] has an empty or repeated name 'x'")]
    [InlineData("""{"name":"m","sha256":"S","size_bytes":1,"version":"","inputs":[{"name":"x","datatype":"FP32","shape":[1]}],"outputs":[{"name":"y","datatype":"FP32","shape":[1]}]}""", "invalid model manifest: 'version' is empty")]
    [InlineData("""{"name":"m","sha256":"S","size_bytes":1,"inputs":[{"name":"x","datatype":"FP33","shape":[1]}],"outputs":[]}""", "invalid model manifest: unknown datatype 'FP33'")]
    [InlineData("""{"name":"m","sha256":"S","size_bytes":"big","inputs":[],"outputs":[]}""", "invalid model manifest: The JSON value could not be converted")]
    [InlineData("""{"name":"m",""", "invalid model manifest: ")]
    [InlineData("null", "invalid model manifest: the document is null")]
    public void ModelManifestJson_BadManifest_ThrowsInvalidDataNamingTheProblem(string json, string message)
    {
        json = json.Replace("\"S\"", $"\"{s_sha}\"", StringComparison.Ordinal);

        var error = Assert.Throws<InvalidDataException>(() => ModelManifestJson.Deserialize(Encoding.UTF8.GetBytes(json)));

        Assert.StartsWith(message, error.Message);
    }

    [Fact]
    public void ModelManifestJson_UnknownDatatype_NamesThePath()
    {
        var json = $$"""{"name":"m","sha256":"{{s_sha}}","size_bytes":1,"inputs":[{"name":"x","datatype":"FP33","shape":[1]}],"outputs":[]}""";

        var error = Assert.Throws<InvalidDataException>(() => ModelManifestJson.Deserialize(Encoding.UTF8.GetBytes(json)));

        Assert.Contains("$.inputs[0].datatype", error.Message);
    }

    [Fact]
    public void OipJsonContext_ErrorBody_WritesErrorProperty()
    {
        var json = JsonSerializer.Serialize(new ErrorBody("unknown model 'x'"), OipJsonContext.Default.ErrorBody);

        Assert.Equal("""{"error":"unknown model \u0027x\u0027"}""", json);
        Assert.Equal("unknown model 'x'", JsonSerializer.Deserialize(json, OipJsonContext.Default.ErrorBody)!.Error);
    }

    [Fact]
    public void OipJsonContext_ServerMetadata_WritesOipShape()
    {
        var json = JsonSerializer.Serialize(new ServerMetadata("serverless-inference", "0.1.0", ["binary_tensor_data"]), OipJsonContext.Default.ServerMetadata);

        Assert.Equal("""{"name":"serverless-inference","version":"0.1.0","extensions":["binary_tensor_data"]}""", json);
    }

    [Fact]
    public void ModelMetadataFrom_SeveralVersions_ListsThemNumericallyAndDescribesTheLatest()
    {
        var latest = Manifest("10") with { Inputs = [new TensorSpec("x", TensorDatatype.Int64, [-1, 8])] };

        var metadata = ModelMetadata.From([Manifest("2"), latest, Manifest("1")]);
        var json = JsonSerializer.Serialize(metadata, OipJsonContext.Default.ModelMetadata);

        Assert.Equal(["1", "2", "10"], metadata.Versions);
        Assert.Equal(
            """{"name":"resnet18","versions":["1","2","10"],"platform":"onnxruntime_onnx","inputs":[{"name":"x","datatype":"INT64","shape":[-1,8]}],"outputs":[{"name":"Pooling395_Output_0","datatype":"FP32","shape":[-1,512,1,1]},{"name":"label","datatype":"BYTES","shape":[-1]}]}""",
            json);
        var back = JsonSerializer.Deserialize(json, OipJsonContext.Default.ModelMetadata)!;
        Assert.Equal(TensorDatatype.Int64, back.Inputs[0].Datatype);
    }

    [Fact]
    public void ModelMetadataFrom_ManifestsOfDifferentModels_Throws()
    {
        Assert.Throws<ArgumentException>(() => ModelMetadata.From([Manifest(), Manifest() with { Name = "other" }]));
        Assert.Throws<ArgumentException>(() => ModelMetadata.From([]));
    }

    [Fact]
    public void ModelMetadataSerialize_ManifestAndVersions_DescribesThatManifest()
    {
        using var document = JsonDocument.Parse(ModelMetadata.Serialize(Manifest("3"), ["1", "3"]));

        Assert.Equal("resnet18", document.RootElement.GetProperty("name").GetString());
        Assert.Equal(2, document.RootElement.GetProperty("versions").GetArrayLength());
        Assert.Equal("FP32", document.RootElement.GetProperty("inputs")[0].GetProperty("datatype").GetString());
    }
}
