using Onnx;
using ServerlessInference.Models;

namespace ServerlessInference.Onnx.Demo;

/// <summary>A dynamic-batch FP32 multi-layer perceptron built in code, the platform's batching benchmark:
/// 512 → 2048 → 2048 → 2048 → 16 with ReLU between layers (about 38 MB of weights).</summary>
/// <remarks>Layer <c>i</c> is <c>MatMul(h, w{i}) + b{i}</c> with initializers <c>w{i}</c> [in, out] and <c>b{i}</c>
/// [out]; every layer but the last is followed by <c>Relu</c>. Weights come from SplitMix64 with a fixed seed and
/// plain IEEE arithmetic, so the bytes never change across .NET versions: weights are uniform in
/// ±sqrt(6 / fan_in) (He initialisation keeps ReLU activations near unit scale), biases uniform in ±0.01.
/// IR 10, opset 21.</remarks>
public static class MlpBenchModel
{
    public const string Name = "mlp-bench";
    public const string Version = "1";
    public const string InputName = "input";
    public const string OutputName = "output";
    public const int DefaultMaxBatchSize = 32;
    public const int DefaultSeed = 20261126;

    /// <summary>512 → 2048 → 2048 → 2048 → 16.</summary>
    public static IReadOnlyList<int> DefaultLayerSizes { get; } = [512, 2048, 2048, 2048, 16];

    /// <summary>The benchmark model's bytes (takes a few hundred milliseconds).</summary>
    public static byte[] Build() => Build([.. DefaultLayerSizes], DefaultSeed);

    /// <summary>An MLP with <paramref name="layerSizes"/> (input width first, output width last; at least two).</summary>
    public static byte[] Build(IReadOnlyList<int> layerSizes, int seed)
    {
        ArgumentNullException.ThrowIfNull(layerSizes);
        if (layerSizes.Count < 2 || layerSizes.Any(size => size < 1))
        {
            throw new ArgumentException("an MLP needs at least two positive layer sizes", nameof(layerSizes));
        }

        var random = new SplitMix64((ulong)seed);
        var graph = new GraphProto { Name = Name };
        graph.Input.Add(OnnxModelProtos.ValueInfo(InputName, TensorProto.Types.DataType.Float, null, layerSizes[0]));
        graph.Output.Add(OnnxModelProtos.ValueInfo(OutputName, TensorProto.Types.DataType.Float, null, layerSizes[^1]));

        var hidden = InputName;
        var layers = layerSizes.Count - 1;
        for (var i = 0; i < layers; i++)
        {
            int fanIn = layerSizes[i], fanOut = layerSizes[i + 1];
            var weights = new float[checked(fanIn * fanOut)];
            var scale = Math.Sqrt(6.0 / fanIn);
            for (var j = 0; j < weights.Length; j++)
            {
                weights[j] = (float)(random.NextSigned() * scale);
            }

            var biases = new float[fanOut];
            for (var j = 0; j < biases.Length; j++)
            {
                biases[j] = (float)(random.NextSigned() * 0.01);
            }

            graph.Initializer.Add(OnnxModelProtos.FloatTensor($"w{i}", weights, fanIn, fanOut));
            graph.Initializer.Add(OnnxModelProtos.FloatTensor($"b{i}", biases, fanOut));

            var last = i == layers - 1;
            var sum = last ? OutputName : $"z{i}";
            graph.Node.Add(OnnxModelProtos.Node("MatMul", [hidden, $"w{i}"], [$"mm{i}"]));
            graph.Node.Add(OnnxModelProtos.Node("Add", [$"mm{i}", $"b{i}"], [sum]));
            if (!last)
            {
                graph.Node.Add(OnnxModelProtos.Node("Relu", [sum], [$"h{i}"]));
                hidden = $"h{i}";
            }
        }

        return OnnxModelProtos.Model(graph);
    }

    /// <summary>The manifest of an MLP built by <see cref="Build(IReadOnlyList{int}, int)"/>. Leave
    /// <paramref name="sha256"/> and <paramref name="sizeBytes"/> empty for <see cref="IModelStore.UploadAsync"/>,
    /// which computes them.</summary>
    public static ModelManifest Manifest(string sha256 = "", long sizeBytes = 0, int maxBatchSize = DefaultMaxBatchSize, IReadOnlyList<int>? layerSizes = null)
    {
        layerSizes ??= DefaultLayerSizes;
        return new ModelManifest
        {
            Name = Name,
            Version = Version,
            Sha256 = sha256,
            SizeBytes = sizeBytes,
            Inputs = [new TensorSpec(InputName, TensorDatatype.Fp32, [-1, layerSizes[0]])],
            Outputs = [new TensorSpec(OutputName, TensorDatatype.Fp32, [-1, layerSizes[^1]])],
            MaxBatchSize = maxBatchSize,
            DynamicBatch = true,
        };
    }

    /// <summary>SplitMix64 (Steele, Lea, Flood 2014): integer-only, so its stream is the same everywhere.</summary>
    private struct SplitMix64(ulong state)
    {
        private ulong _state = state;

        /// <summary>Uniform in [-1, 1) with 24 random bits, exact in both float and double.</summary>
        public double NextSigned()
        {
            _state += 0x9E3779B97F4A7C15UL;
            var z = _state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return ((z >> 40) * (1.0 / (1 << 23))) - 1.0;
        }
    }
}
