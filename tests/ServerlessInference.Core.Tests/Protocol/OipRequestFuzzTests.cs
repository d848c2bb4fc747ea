using System.Buffers;
using System.Text;
using ServerlessInference.Testing.Fuzzing;
using Xunit.Abstractions;

namespace ServerlessInference.Tests.Protocol;

/// <summary>The request parser against mutated valid requests (<see cref="OipRequestFuzzer"/>): every input either
/// parses or fails as a 400 (<see cref="InferenceError.BadRequest"/>), never anything else; what it allocates stays
/// within a small multiple of the body, whatever shape or size the body claims; and an input it accepts can be encoded
/// again for a queue and read back. <c>tests/run.sh</c> runs the default count; <c>SI_FUZZ_ITERATIONS</c> and
/// <c>SI_FUZZ_SEED</c> run longer or other inputs.</summary>
public sealed class OipRequestFuzzTests(ITestOutputHelper output)
{
    public const int DefaultIterations = 4000;

    /// <summary>Valid requests of every datatype, JSON and binary, in both property orders, with parameters.</summary>
    public static List<(byte[] Body, int? HeaderLength)> Seeds()
    {
        var seeds = new List<(byte[], int?)>();
        foreach (var datatype in Enum.GetValues<TensorDatatype>())
        {
            var request = new InferenceRequest { Id = "r", Inputs = [OipTestData.Tensor(datatype, "x")] };
            seeds.Add(OipTestData.Write(request, binary: false));
            seeds.Add(OipTestData.Write(request, binary: true));
        }

        var mixed = new InferenceRequest
        {
            Id = "mixed",
            Parameters = new Dictionary<string, object> { ["binary_data_output"] = true, ["note"] = "n", ["k"] = 3L },
            Inputs = [OipTestData.Tensor(TensorDatatype.Fp32, "a"), OipTestData.Tensor(TensorDatatype.Bytes, "b"), OipTestData.Tensor(TensorDatatype.Int64, "c")],
            Outputs = [new RequestedOutput { Name = "y", Parameters = new Dictionary<string, object> { ["binary_data"] = true } }],
        };
        seeds.Add(OipTestData.Write(mixed, binary: false));
        seeds.Add(OipTestData.Write(mixed, binary: true));
        seeds.Add((Encoding.UTF8.GetBytes("""{"inputs":[{"data":[[1,2],[3,4]],"datatype":"FP32","shape":[2,2],"name":"x"}]}"""), null));
        seeds.Add((Encoding.UTF8.GetBytes("""{"inputs":[{"name":"t","shape":[2],"datatype":"BYTES","data":["a\u00e9","\n"]}],"outputs":[{"name":"o"}]}"""), null));
        seeds.Add((Encoding.UTF8.GetBytes("""{"inputs":[{"name":"f","shape":[3],"datatype":"FP16","data":["NaN","Infinity",-0.5]}]}"""), null));
        return seeds;
    }

    [Fact]
    public void ParseRequest_MutatedRequests_FailOnlyAsBadRequestWithBoundedAllocation()
    {
        var seeds = Seeds();
        var fuzzer = new OipRequestFuzzer(seeds, OipRequestFuzzer.Seed);
        var iterations = OipRequestFuzzer.Iterations(DefaultIterations);

        // Warm up: the first parses JIT-compile what the measured ones run.
        foreach (var (body, headerLength) in seeds)
        {
            Check(new FuzzInput(body, headerLength, "seed"), out _);
        }

        var warmup = new OipRequestFuzzer(seeds, OipRequestFuzzer.Seed + 1);
        for (var i = 0; i < 200; i++)
        {
            Check(warmup.Next(), out _);
        }

        var failures = new List<string>();
        var accepted = 0;
        for (var i = 0; i < iterations; i++)
        {
            var input = fuzzer.Next();
            var problem = Check(input, out var parsed);
            accepted += parsed ? 1 : 0;
            if (problem is not null)
            {
                failures.Add($"input {i}: {problem}\n    {input.Describe()}");
            }
        }

        output.WriteLine($"{iterations} inputs (seed {OipRequestFuzzer.Seed}): {accepted} parsed, {iterations - accepted - failures.Count} refused with 400, {failures.Count} failures");
        Assert.True(failures.Count == 0, $"{failures.Count} of {iterations} inputs (seed {OipRequestFuzzer.Seed}) failed:\n" + string.Join("\n", failures.Take(10)));
    }

    /// <summary>Null when <paramref name="input"/> behaved; otherwise what went wrong.</summary>
    private static string? Check(FuzzInput input, out bool parsed)
    {
        parsed = false;
        var before = GC.GetAllocatedBytesForCurrentThread();
        InferenceRequest request;
        try
        {
            request = OipCodec.ParseRequest(input.Body, input.HeaderLength);
        }
        catch (InferenceException ex) when (ex.Error == InferenceError.BadRequest)
        {
            return Allocation(input, before);
        }
        catch (Exception ex)
        {
            return $"{ex.GetType().Name}: {ex.Message}";
        }

        parsed = true;
        if (Allocation(input, before) is { } tooMuch)
        {
            return tooMuch;
        }

        // What a queue does with an accepted request: encode it (binary) and read it back.
        try
        {
            var buffer = new ArrayBufferWriter<byte>();
            var headerLength = OipCodec.WriteRequest(buffer, request, binary: true);
            OipCodec.ParseRequest(buffer.WrittenMemory, headerLength);
        }
        catch (Exception ex)
        {
            return $"accepted, but re-encoding it for a queue failed: {ex.GetType().Name}: {ex.Message}";
        }

        return null;
    }

    /// <summary>The bound: a BYTES tensor of one-character strings costs about ten times its text (an array per element),
    /// numbers at most four times (8 bytes from "0,"); nothing may follow a claimed shape or size.</summary>
    private static string? Allocation(FuzzInput input, long before)
    {
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        var bound = 16L * input.Body.Length + 256 * 1024;
        return allocated > bound ? $"allocated {allocated} bytes for a {input.Body.Length}-byte body (bound {bound})" : null;
    }
}
