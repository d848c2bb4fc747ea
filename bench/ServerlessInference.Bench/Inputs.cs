namespace ServerlessInference.Bench;

/// <summary>Deterministic inputs: the same values on every run and machine (integer generator, exact float math).</summary>
/// <remarks>Also compiled into bench/ServerlessInference.Bench.Gpu, so both benches feed the same values.</remarks>
internal static class Inputs
{
    public static float[] Floats(int count, int seed)
    {
        var values = new float[count];
        var state = (uint)seed * 2654435761u + 1;
        for (var i = 0; i < values.Length; i++)
        {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            values[i] = (state >> 8) / (float)(1 << 24); // [0, 1) with 24 bits: exact in float
        }

        return values;
    }
}
