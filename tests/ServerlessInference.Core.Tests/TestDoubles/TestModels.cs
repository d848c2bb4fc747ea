using ServerlessInference.Embedded;
using ServerlessInference.Jobs;
using ServerlessInference.Models;

namespace ServerlessInference.Tests.TestDoubles;

/// <summary>A temporary folder model store with fake models of chosen sizes; deleted on dispose.</summary>
internal sealed class TempModelStore : IDisposable
{
    public TempModelStore()
    {
        Root = Path.Combine(Path.GetTempPath(), "si-tests", Guid.NewGuid().ToString("N"));
        Store = new FolderModelStore(Path.Combine(Root, "models"));
        CacheDirectory = Path.Combine(Root, "cache");
    }

    public string Root { get; }

    public FolderModelStore Store { get; }

    public string CacheDirectory { get; }

    /// <summary>Uploads a model whose weights are <paramref name="size"/> bytes, input <c>x</c> FP32 [-1,4] (dynamic batch);
    /// <paramref name="weight"/> is the manifest's fair-share weight.</summary>
    public ModelManifest Add(string name, int size = 100, string version = "1", double weight = 1)
    {
        var weights = new byte[size];
        new Random(name.GetHashCode(StringComparison.Ordinal)).NextBytes(weights);
        var manifest = new ModelManifest
        {
            Name = name,
            Version = version,
            Sha256 = "",
            SizeBytes = 0,
            Inputs = [new TensorSpec("x", TensorDatatype.Fp32, [-1, 4])],
            Outputs = [new TensorSpec("y", TensorDatatype.Fp32, [-1, 4])],
            MaxBatchSize = 64,
            DynamicBatch = true,
            Weight = weight,
        };
        return Store.UploadAsync(manifest, new MemoryStream(weights), CancellationToken.None).AsTask().GetAwaiter().GetResult();
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class TestJobs
{
    public static InferenceRequest Request(params float[] values) => new()
    {
        Inputs = [InferTensor.Create("x", [values.Length / 4, 4], values)],
    };

    public static InferenceJob Job(string model, DateTimeOffset now, float seed = 1, TimeSpan? deadline = null) => new()
    {
        Id = InferenceJob.NewId(),
        Model = model,
        Version = "1",
        Request = Request(seed, seed + 1, seed + 2, seed + 3),
        SubmittedAt = now,
        Deadline = now + (deadline ?? TimeSpan.FromMinutes(10)),
    };
}
