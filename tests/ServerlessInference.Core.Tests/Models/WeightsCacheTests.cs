using Microsoft.Extensions.Logging.Abstractions;
using ServerlessInference.Models;
using ServerlessInference.Tests.TestDoubles;

namespace ServerlessInference.Tests.Models;

/// <summary>The proof of verification reads ctime through statx, so these tests expect Linux (as every host here is).</summary>
public sealed class WeightsCacheTests : IDisposable
{
    private readonly TempModelStore _models = new();

    public void Dispose() => _models.Dispose();

    private WeightsCache Cache() => new(_models.Store, _models.CacheDirectory, NullLogger<WeightsCache>.Instance);

    private string CachedPath(ModelManifest manifest) => Path.Combine(_models.CacheDirectory, manifest.Sha256 + ".onnx");

    private static string ProofPath(string weights) => weights + ".verified";

    [Fact]
    public async Task GetVerifiedAsync_SecondLoadOfUnchangedFile_TrustsTheProofWithoutHashing()
    {
        var a = _models.Add("a", size: 4096);

        var first = await Cache().GetVerifiedAsync(a, default);
        var second = await Cache().GetVerifiedAsync(a, default);

        Assert.Equal(WeightsVerification.Downloaded, first.Verification);
        Assert.True(File.Exists(ProofPath(first.Path)));
        Assert.Equal(WeightsVerification.Proof, second.Verification);
        Assert.Equal(first.Path, second.Path);
    }

    [Fact]
    public async Task GetVerifiedAsync_SameLengthRewriteWithMtimeRestored_HashesDetectsAndFetchesAgain()
    {
        var a = _models.Add("a", size: 4096);
        var path = (await Cache().GetVerifiedAsync(a, default)).Path;

        // DateTime holds 100 ns ticks, the file system nanoseconds: give the file an mtime that SetLastWriteTimeUtc can
        // restore exactly, and let the cache prove that state.
        var mtime = File.GetLastWriteTimeUtc(path);
        File.SetLastWriteTimeUtc(path, mtime);
        Assert.Equal(WeightsVerification.Hashed, (await Cache().GetVerifiedAsync(a, default)).Verification);
        var good = await File.ReadAllBytesAsync(path);
        var recorded = FileIdentity.TryRead(path)!.Value;

        // Same length, other bytes, written in place (same inode), mtime put back as it was.
        var bad = (byte[])good.Clone();
        bad[100] ^= 0xFF;
        await using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write))
        {
            await stream.WriteAsync(bad);
        }

        File.SetLastWriteTimeUtc(path, mtime);

        // ctime moves with the kernel's coarse clock: a change in the same tick as the proof's read is the documented
        // blind spot, so make sure this change lands in a later tick (each utimes call sets ctime to "now").
        while (FileIdentity.TryRead(path)!.Value.CtimeNanoseconds == recorded.CtimeNanoseconds
            && FileIdentity.TryRead(path)!.Value.CtimeSeconds == recorded.CtimeSeconds)
        {
            File.SetLastWriteTimeUtc(path, mtime);
        }

        var tampered = FileIdentity.TryRead(path)!.Value;
        Assert.Equal(recorded.Length, tampered.Length);
        Assert.Equal(recorded.Inode, tampered.Inode);
        Assert.Equal((recorded.MtimeSeconds, recorded.MtimeNanoseconds), (tampered.MtimeSeconds, tampered.MtimeNanoseconds));

        var again = await Cache().GetVerifiedAsync(a, default);

        Assert.Equal(WeightsVerification.Downloaded, again.Verification);
        Assert.Equal(good, await File.ReadAllBytesAsync(again.Path));
    }

    [Fact]
    public async Task GetVerifiedAsync_FileReplacedByRename_HashesAgain()
    {
        var a = _models.Add("a", size: 4096);
        var path = (await Cache().GetVerifiedAsync(a, default)).Path;
        var copy = path + ".copy";
        File.Copy(path, copy);
        File.SetLastWriteTimeUtc(copy, File.GetLastWriteTimeUtc(path));
        File.Move(copy, path, overwrite: true);

        var again = await Cache().GetVerifiedAsync(a, default);

        Assert.Equal(WeightsVerification.Hashed, again.Verification);
    }

    [Theory]
    [InlineData("missing")]
    [InlineData("garbage")]
    [InlineData("other-sha")]
    [InlineData("other-identity")]
    [InlineData("truncated")]
    public async Task GetVerifiedAsync_ProofMissingCorruptOrForged_HashesThenWritesAGoodProof(string damage)
    {
        var a = _models.Add("a", size: 4096);
        var path = (await Cache().GetVerifiedAsync(a, default)).Path;
        var proof = ProofPath(path);
        var lines = await File.ReadAllLinesAsync(proof);
        var identity = FileIdentity.TryParse(lines[2])!.Value;
        switch (damage)
        {
            case "missing":
                File.Delete(proof);
                break;
            case "garbage":
                await File.WriteAllBytesAsync(proof, [0xFF, 0x00, 0x13, 0x37]);
                break;
            case "other-sha":
                await File.WriteAllLinesAsync(proof, [lines[0], new string('0', 64), lines[2]]);
                break;
            case "other-identity":
                await File.WriteAllLinesAsync(proof, [lines[0], lines[1], (identity with { Inode = identity.Inode + 1 }).Format()]);
                break;
            case "truncated":
                await File.WriteAllTextAsync(proof, lines[0] + "\n" + lines[1]);
                break;
        }

        var hashed = await Cache().GetVerifiedAsync(a, default);
        var trusted = await Cache().GetVerifiedAsync(a, default);

        Assert.Equal(WeightsVerification.Hashed, hashed.Verification);
        Assert.Equal(WeightsVerification.Proof, trusted.Verification);
    }

    [Fact]
    public async Task GetVerifiedAsync_ProofOfAnotherModelCopiedOver_HashesAgain()
    {
        var a = _models.Add("a", size: 4096);
        var b = _models.Add("b", size: 4096);
        var pathA = (await Cache().GetVerifiedAsync(a, default)).Path;
        var pathB = (await Cache().GetVerifiedAsync(b, default)).Path;
        File.Copy(ProofPath(pathB), ProofPath(pathA), overwrite: true);

        var again = await Cache().GetVerifiedAsync(a, default);

        Assert.Equal(WeightsVerification.Hashed, again.Verification);
    }

    [Fact]
    public async Task GetVerifiedAsync_CorruptFileWithStaleProof_FetchesAgainAndDropsTheProof()
    {
        var a = _models.Add("a", size: 4096);
        var path = (await Cache().GetVerifiedAsync(a, default)).Path;
        await File.WriteAllBytesAsync(path, new byte[10]);

        var again = await Cache().GetVerifiedAsync(a, default);

        Assert.Equal(WeightsVerification.Downloaded, again.Verification);
        Assert.Equal(4096, new FileInfo(path).Length);
    }

    [Fact]
    public void FileIdentity_FormatThenParse_RoundTripsAndRejectsOtherText()
    {
        var identity = new FileIdentity(2049, 123456789, 4096, 1_700_000_000, 999_999_999, -5, 1);

        Assert.Equal(identity, FileIdentity.TryParse(identity.Format()));
        Assert.Null(FileIdentity.TryParse("1 2 3"));
        Assert.Null(FileIdentity.TryParse("1 2 3 4 5 6 x"));
        Assert.Null(FileIdentity.TryParse("1 2 3 4 5 6 7 8"));
    }
}
