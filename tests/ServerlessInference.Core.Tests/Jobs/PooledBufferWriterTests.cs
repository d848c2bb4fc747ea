using ServerlessInference.Jobs;

namespace ServerlessInference.Tests.Jobs;

public sealed class PooledBufferWriterTests
{
    [Fact]
    public void GetSpan_BeyondTheFirstArray_GrowsAndKeepsWhatWasWritten()
    {
        var writer = new PooledBufferWriter(16);
        var expected = new List<byte>();
        for (var i = 0; i < 100; i++)
        {
            var span = writer.GetSpan(37);
            Assert.True(span.Length >= 37);
            for (var j = 0; j < 37; j++)
            {
                span[j] = (byte)(i + j);
                expected.Add((byte)(i + j));
            }

            writer.Advance(37);
        }

        Assert.Equal(3700, writer.WrittenCount);
        Assert.Equal(expected, writer.WrittenMemory.ToArray());
        writer.Release();
        Assert.Equal(0, writer.WrittenCount);
    }

    [Fact]
    public void Advance_PastTheSpanGiven_Throws()
    {
        var writer = new PooledBufferWriter(256);
        var length = writer.GetSpan(10).Length;

        Assert.Throws<InvalidOperationException>(() => writer.Advance(length + 1));
    }

    [Fact]
    public void Encode_PooledAndPlain_WriteTheSameBytes()
    {
        var job = new InferenceJob
        {
            Id = "j1",
            Model = "m",
            Version = "1",
            SubmittedAt = DateTimeOffset.UnixEpoch,
            Deadline = DateTimeOffset.UnixEpoch.AddMinutes(1),
            Request = new InferenceRequest { Inputs = [InferTensor.Create("x", [2, 3], new float[] { 1, 2, 3, 4, 5, 6 })] },
        };

        var plain = InferenceJobCodec.Encode(job);
        var pooled = InferenceJobCodec.Encode(job, out var buffer);

        Assert.Equal(plain.Request.ToArray(), pooled.Request.ToArray());
        Assert.Equal(plain.HeaderLength, pooled.HeaderLength);
        Assert.Equal(job.Request.Inputs[0].AsSpan<float>().ToArray(), InferenceJobCodec.Decode(pooled).Request.Inputs[0].AsSpan<float>().ToArray());
        buffer.Release();
    }
}
