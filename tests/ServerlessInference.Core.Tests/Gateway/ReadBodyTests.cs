using Microsoft.AspNetCore.Http;
using ServerlessInference.Gateway;

namespace ServerlessInference.Tests.Gateway;

public sealed class ReadBodyTests
{
    private static HttpRequest Request(byte[] body, long? contentLength)
    {
        var context = new DefaultHttpContext();
        context.Request.Body = new MemoryStream(body);
        context.Request.ContentLength = contentLength;
        return context.Request;
    }

    [Fact]
    public async Task ReadBodyAsync_ClaimsMoreThanItSends_AllocatesWhatArrivedNotWhatWasClaimed()
    {
        var request = Request(new byte[100], contentLength: 16L << 20);
        _ = await Assert.ThrowsAsync<InferenceException>(() => GatewayHttp.ReadBodyAsync(Request(new byte[10], 100_000), 32L << 20, default).AsTask());

        // A MemoryStream completes every read at once, so the whole call runs on this thread.
        var before = GC.GetAllocatedBytesForCurrentThread();
        var ex = await Assert.ThrowsAsync<InferenceException>(() => GatewayHttp.ReadBodyAsync(request, 32L << 20, default).AsTask());
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(InferenceError.BadRequest, ex.Error);
        Assert.Contains("shorter than its Content-Length", ex.Message);
        Assert.True(allocated < 256 * 1024, $"reading a 100-byte body that claims 16 MiB allocated {allocated} bytes");
    }

    [Theory]
    [InlineData(0, 0L)]
    [InlineData(10, 10L)]
    [InlineData(64 * 1024, 64L * 1024)]
    [InlineData(64 * 1024 + 1, 64L * 1024 + 1)]
    [InlineData(3 * 1024 * 1024 + 17, 3L * 1024 * 1024 + 17)]
    [InlineData(3 * 1024 * 1024 + 17, null)]
    [InlineData(100, null)]
    public async Task ReadBodyAsync_HonestBody_ReturnsEveryByte(int size, long? contentLength)
    {
        var body = new byte[size];
        new Random(size).NextBytes(body);

        var read = await GatewayHttp.ReadBodyAsync(Request(body, contentLength), 16L << 20, default);

        Assert.Equal(body, read.ToArray());
    }

    [Theory]
    [InlineData(1000L)]
    [InlineData(null)]
    public async Task ReadBodyAsync_LargerThanTheLimit_ThrowsPayloadTooLarge(long? contentLength)
    {
        var ex = await Assert.ThrowsAsync<InferenceException>(() => GatewayHttp.ReadBodyAsync(Request(new byte[1000], contentLength), 999, default).AsTask());

        Assert.Equal(InferenceError.PayloadTooLarge, ex.Error);
        Assert.Contains("Inference:Gateway:MaxBodyBytes", ex.Message);
    }

    [Fact]
    public async Task ReadBodyAsync_ShorterThanDeclaredLargeBody_ThrowsBadRequest()
    {
        var ex = await Assert.ThrowsAsync<InferenceException>(() => GatewayHttp.ReadBodyAsync(Request(new byte[100_000], 200_000), 1 << 20, default).AsTask());

        Assert.Equal(InferenceError.BadRequest, ex.Error);
    }
}
