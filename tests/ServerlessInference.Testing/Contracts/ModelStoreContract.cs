using System.Security.Cryptography;
using ServerlessInference.Models;

namespace ServerlessInference.Testing.Contracts;

/// <summary>What every <see cref="IModelStore"/> provider must do. Derive once per provider and return a fresh, empty
/// store from <see cref="CreateStoreAsync"/>.</summary>
public abstract class ModelStoreContract
{
    /// <summary>A new, empty store, private to the calling test.</summary>
    protected abstract Task<IModelStore> CreateStoreAsync();

    /// <summary>A manifest as a caller would upload it: checksum and size still unknown.</summary>
    public static ModelManifest Manifest(string name, string version = "1", string file = "model.onnx") => new()
    {
        Name = name,
        Version = version,
        File = file,
        Sha256 = "",
        SizeBytes = 0,
        Inputs = [new TensorSpec("x", TensorDatatype.Fp32, [-1, 4])],
        Outputs = [new TensorSpec("y", TensorDatatype.Fp32, [-1, 2])],
        MaxBatchSize = 8,
        DynamicBatch = true,
    };

    public static byte[] Weights(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public async Task UploadAsync_Weights_ComputesShaAndSizeAndRoundTripsManifest()
    {
        var store = await CreateStoreAsync();
        var weights = Weights(100_000, seed: 1);

        var stored = await store.UploadAsync(Manifest("mlp"), new MemoryStream(weights), default);

        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(weights)), stored.Sha256);
        Assert.Equal(weights.Length, stored.SizeBytes);
        var read = await store.GetManifestAsync("mlp", "1", default);
        Assert.NotNull(read);
        AssertSameManifest(stored, read);
    }

    [Fact]
    public async Task OpenWeightsAsync_UploadedFromUnseekableStream_ReadsBackByteIdentical()
    {
        var store = await CreateStoreAsync();
        // Larger than one upload block of the Blob store, and not a multiple of it.
        var weights = Weights((9 << 20) + 12_345, seed: 2);

        var stored = await store.UploadAsync(Manifest("big"), new UnseekableStream(new MemoryStream(weights)), default);

        Assert.Equal(weights.Length, stored.SizeBytes);
        await using var stream = await store.OpenWeightsAsync(stored, default);
        var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        Assert.Equal(weights.Length, copy.Length);
        Assert.True(weights.AsSpan().SequenceEqual(copy.GetBuffer().AsSpan(0, (int)copy.Length)), "weights read back differ from those uploaded");
    }

    [Fact]
    public async Task UploadAsync_EmptyWeights_StoresZeroBytes()
    {
        var store = await CreateStoreAsync();

        var stored = await store.UploadAsync(Manifest("empty"), new MemoryStream(), default);

        Assert.Equal(0, stored.SizeBytes);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(ReadOnlySpan<byte>.Empty)), stored.Sha256);
        await using var stream = await store.OpenWeightsAsync(stored, default);
        Assert.Equal(-1, stream.ReadByte());
    }

    [Fact]
    public async Task GetManifestAsync_NoVersion_ReturnsHighestNumericVersion()
    {
        var store = await CreateStoreAsync();
        foreach (var version in new[] { "2", "10", "1" })
        {
            await store.UploadAsync(Manifest("m", version), new MemoryStream(Weights(64, seed: version.Length)), default);
        }

        var latest = await store.GetManifestAsync("m", null, default);

        Assert.Equal("10", latest?.Version);
        Assert.Equal("2", (await store.GetManifestAsync("m", "2", default))?.Version);
    }

    [Fact]
    public async Task GetManifestAsync_UnknownModelOrVersion_ReturnsNull()
    {
        var store = await CreateStoreAsync();
        Assert.Null(await store.GetManifestAsync("nope", null, default));
        Assert.Null(await store.GetManifestAsync("nope", "1", default));

        await store.UploadAsync(Manifest("model", "1"), new MemoryStream(Weights(64, seed: 3)), default);

        Assert.Null(await store.GetManifestAsync("model", "2", default));
        Assert.Null(await store.GetManifestAsync("nope", null, default));
        // A prefix of a stored name is a different, unknown model.
        Assert.Null(await store.GetManifestAsync("mod", null, default));
        Assert.Null(await store.GetManifestAsync("mod", "1", default));
    }

    [Fact]
    public async Task ListAsync_EmptyStore_ReturnsNothing()
    {
        var store = await CreateStoreAsync();

        Assert.Empty(await store.ListAsync(default));
    }

    [Fact]
    public async Task ListAsync_SeveralModels_ReturnsEveryVersionOfEach()
    {
        var store = await CreateStoreAsync();
        await store.UploadAsync(Manifest("a", "1"), new MemoryStream(Weights(10, seed: 4)), default);
        await store.UploadAsync(Manifest("a", "2"), new MemoryStream(Weights(20, seed: 5)), default);
        await store.UploadAsync(Manifest("b", "1"), new MemoryStream(Weights(30, seed: 6)), default);

        var listed = await store.ListAsync(default);

        Assert.Equal(["a/1", "a/2", "b/1"], listed.Select(m => m.Key).Order(StringComparer.Ordinal));
        Assert.Equal(20, listed.Single(m => m.Key == "a/2").SizeBytes);
    }

    [Fact]
    public async Task UploadAsync_SameVersionAgain_ReplacesWeightsAndManifest()
    {
        var store = await CreateStoreAsync();
        await store.UploadAsync(Manifest("m"), new MemoryStream(Weights(1000, seed: 7)), default);
        var second = Weights(500, seed: 8);

        var stored = await store.UploadAsync(Manifest("m") with { MaxBatchSize = 32 }, new MemoryStream(second), default);

        var read = await store.GetManifestAsync("m", "1", default);
        Assert.NotNull(read);
        AssertSameManifest(stored, read);
        Assert.Equal(32, read.MaxBatchSize);
        Assert.Equal(500, read.SizeBytes);
        await using var stream = await store.OpenWeightsAsync(read, default);
        var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        Assert.Equal(second, copy.ToArray());
        Assert.Single(await store.ListAsync(default));
    }

    [Theory]
    [InlineData("a/b", "1")]
    [InlineData("..", "1")]
    [InlineData(".", "1")]
    [InlineData("a\\b", "1")]
    [InlineData("m", "../1")]
    [InlineData("m", "..")]
    [InlineData("", "1")]
    public async Task UploadAsync_PathUnsafeNameOrVersion_ThrowsBadRequest(string name, string version)
    {
        var store = await CreateStoreAsync();

        var ex = await Assert.ThrowsAsync<InferenceException>(async () =>
            await store.UploadAsync(Manifest(name, version), new MemoryStream(Weights(10, seed: 9)), default));

        Assert.Equal(InferenceError.BadRequest, ex.Error);
        Assert.Empty(await store.ListAsync(default));
    }

    [Theory]
    [InlineData("a/b", null)]
    [InlineData("..", null)]
    [InlineData("m", "../1")]
    public async Task GetManifestAsync_PathUnsafeNameOrVersion_ReturnsNull(string name, string? version)
    {
        var store = await CreateStoreAsync();
        await store.UploadAsync(Manifest("m"), new MemoryStream(Weights(10, seed: 10)), default);

        Assert.Null(await store.GetManifestAsync(name, version, default));
    }

    [Fact]
    public async Task DeleteAsync_OneVersion_RemovesItAndKeepsTheOthers()
    {
        var store = await CreateStoreAsync();
        await store.UploadAsync(Manifest("m", "1"), new MemoryStream(Weights(64, seed: 11)), default);
        var second = await store.UploadAsync(Manifest("m", "2"), new MemoryStream(Weights(64, seed: 12)), default);
        await store.UploadAsync(Manifest("other", "1"), new MemoryStream(Weights(64, seed: 13)), default);

        var removed = await store.DeleteAsync("m", "2", default);

        Assert.Equal(["m/2"], removed.Select(m => m.Key));
        Assert.Equal(second.Sha256, removed[0].Sha256);
        Assert.Null(await store.GetManifestAsync("m", "2", default));
        Assert.Equal("1", (await store.GetManifestAsync("m", null, default))?.Version);
        Assert.Equal(["m/1", "other/1"], (await store.ListAsync(default)).Select(m => m.Key).Order(StringComparer.Ordinal));
        await Assert.ThrowsAsync<InferenceException>(async () => await store.OpenWeightsAsync(second, default));
    }

    [Fact]
    public async Task DeleteAsync_NoVersion_RemovesEveryVersionOfThatModelOnly()
    {
        var store = await CreateStoreAsync();
        await store.UploadAsync(Manifest("m", "1"), new MemoryStream(Weights(64, seed: 14)), default);
        await store.UploadAsync(Manifest("m", "2"), new MemoryStream(Weights(64, seed: 15)), default);
        // A name that starts like the deleted one is another model.
        await store.UploadAsync(Manifest("m2", "1"), new MemoryStream(Weights(64, seed: 16)), default);

        var removed = await store.DeleteAsync("m", null, default);

        Assert.Equal(["m/1", "m/2"], removed.Select(m => m.Key).Order(StringComparer.Ordinal));
        Assert.Null(await store.GetManifestAsync("m", null, default));
        Assert.Equal(["m2/1"], (await store.ListAsync(default)).Select(m => m.Key));
    }

    [Theory]
    [InlineData("nope", null)]
    [InlineData("m", "9")]
    [InlineData("..", null)]
    [InlineData("m", "../m")]
    public async Task DeleteAsync_UnknownOrPathUnsafe_RemovesNothing(string name, string? version)
    {
        var store = await CreateStoreAsync();
        await store.UploadAsync(Manifest("m"), new MemoryStream(Weights(64, seed: 17)), default);

        var removed = await store.DeleteAsync(name, version, default);

        Assert.Empty(removed);
        Assert.Equal(["m/1"], (await store.ListAsync(default)).Select(m => m.Key));
    }

    private static void AssertSameManifest(ModelManifest expected, ModelManifest actual) =>
        // TensorSpec holds arrays, so records compare by reference; the stored JSON compares by value.
        Assert.Equal(ModelManifestJson.Serialize(expected), ModelManifestJson.Serialize(actual));

    /// <summary>A stream that cannot seek or tell its length, like a network body.</summary>
    private sealed class UnseekableStream(Stream inner) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, Math.Min(count, 7_000));

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            inner.ReadAsync(buffer[..Math.Min(buffer.Length, 7_000)], cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
