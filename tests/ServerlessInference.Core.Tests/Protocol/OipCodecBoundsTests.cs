using System.Text;

namespace ServerlessInference.Tests.Protocol;

/// <summary>A claimed shape or size never sizes a buffer beyond what the body can hold.</summary>
public sealed class OipCodecBoundsTests
{
    private static long Allocated(Action parse)
    {
        parse();
        var before = GC.GetAllocatedBytesForCurrentThread();
        parse();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    private static Action Refused(string json)
    {
        var body = Encoding.UTF8.GetBytes(json);
        return () =>
        {
            var ex = Assert.Throws<InferenceException>(() => OipCodec.ParseRequest(body, null));
            Assert.Equal(InferenceError.BadRequest, ex.Error);
        };
    }

    [Theory]
    [InlineData("FP64")]
    [InlineData("FP32")]
    [InlineData("INT64")]
    [InlineData("BOOL")]
    [InlineData("BYTES")]
    public void ParseRequest_ShapeOfABillionWithThreeElements_IsBadRequestWithoutAllocatingTheShape(string datatype)
    {
        var data = datatype switch { "BYTES" => "\"a\",\"b\",\"c\"", "BOOL" => "true,false,true", _ => "1,2,3" };
        var inOrder = $$"""{"inputs":[{"name":"x","shape":[1000000000],"datatype":"{{datatype}}","data":[{{data}}]}]}""";
        var dataFirst = $$"""{"inputs":[{"data":[{{data}}],"name":"x","shape":[1000000000],"datatype":"{{datatype}}"}]}""";

        Assert.True(Allocated(Refused(inOrder)) < 64 * 1024);
        Assert.True(Allocated(Refused(dataFirst)) < 64 * 1024);
    }

    [Fact]
    public void ParseRequest_ShapeBeyondAPaddedBody_AllocatesAtMostFourTimesTheBody()
    {
        // The text after "data" could hold (padding - 2) / 2 elements: the buffer may be that big, never the claim.
        var padding = new string(' ', 100_000);
        var json = $$"""{"inputs":[{"name":"x","shape":[1000000000],"datatype":"FP64","data":[1,2,3]{{padding}}}]}""";

        Assert.True(Allocated(Refused(json)) < 64 * 1024);

        var claimable = $$"""{"inputs":[{"name":"x","shape":[40000],"datatype":"FP64","data":[1,2,3]{{padding}}}]}""";
        var allocated = Allocated(Refused(claimable));
        Assert.True(allocated < 4L * claimable.Length + 64 * 1024, $"allocated {allocated} for a {claimable.Length}-byte body");
    }

    [Theory]
    [InlineData("FP32", "1000000000")]
    [InlineData("FP32", "9223372036854775807")]
    [InlineData("BYTES", "1000000000")]
    public void ParseRequest_BinaryClaimsBeyondTheBody_IsBadRequestWithoutAllocatingTheClaim(string datatype, string size)
    {
        var json = "{\"inputs\":[{\"name\":\"x\",\"shape\":[1000000000],\"datatype\":\"" + datatype + "\",\"parameters\":{\"binary_data_size\":" + size + "}}]}";
        var header = Encoding.UTF8.GetBytes(json);
        byte[] body = [.. header, 1, 0, 0, 0, 65, 1, 0, 0, 0, 66, 1, 0, 0, 0, 67];

        var allocated = Allocated(() =>
        {
            var ex = Assert.Throws<InferenceException>(() => OipCodec.ParseRequest(body, header.Length));
            Assert.Equal(InferenceError.BadRequest, ex.Error);
        });

        Assert.True(allocated < 64 * 1024, $"allocated {allocated}");
    }

    [Fact]
    public void ParseRequest_BinaryBytesShapeOfABillion_AllocatesForWhatTheBodyHolds()
    {
        var json = """{"inputs":[{"name":"x","shape":[1000000000],"datatype":"BYTES","parameters":{"binary_data_size":15}}]}""";
        var header = Encoding.UTF8.GetBytes(json);
        byte[] body = [.. header, 1, 0, 0, 0, 65, 1, 0, 0, 0, 66, 1, 0, 0, 0, 67];

        var allocated = Allocated(() =>
        {
            var ex = Assert.Throws<InferenceException>(() => OipCodec.ParseRequest(body, header.Length));
            Assert.Contains("holds 3 elements", ex.Message);
        });

        Assert.True(allocated < 64 * 1024, $"allocated {allocated}");
    }
}
