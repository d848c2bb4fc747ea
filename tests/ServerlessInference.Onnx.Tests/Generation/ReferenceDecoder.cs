using System.Runtime.InteropServices;
using Onnx;
using ServerlessInference.Onnx.Demo;

namespace ServerlessInference.Onnx.Tests.Generation;

/// <summary>The demo language model's forward pass in plain C# (double precision), from the initializers of its
/// ONNX file: no ONNX Runtime. Follows the description in <see cref="DecoderLmModel"/>.</summary>
internal sealed class ReferenceDecoder
{
    private readonly Dictionary<string, float[]> _weights;
    private readonly DecoderLmConfig _config;

    public ReferenceDecoder(byte[] model, DecoderLmConfig config)
    {
        _config = config;
        _weights = ModelProto.Parser.ParseFrom(model).Graph.Initializer
            .Where(t => t.DataType == (int)TensorProto.Types.DataType.Float && t.RawData.Length > 0)
            .ToDictionary(t => t.Name, t => MemoryMarshal.Cast<byte, float>(t.RawData.Span).ToArray());
    }

    /// <summary>Logits [B,S,V] and presents (key, value per layer, each [B,H,P+S,Dh]).</summary>
    /// <param name="ids">[B,S]</param>
    /// <param name="mask">[B,P+S]</param>
    /// <param name="positions">[B,S]</param>
    /// <param name="past">Key and value per layer, each [B,H,P,Dh]; P may be 0.</param>
    public (double[] Logits, float[][] Presents) Forward(long[] ids, long[] mask, long[] positions, float[][] past, int batch, int length, int pastLength)
    {
        int d = _config.Hidden, heads = _config.Heads, dh = _config.HeadDim, v = _config.VocabularySize, total = pastLength + length;
        var x = new double[batch * length * d];
        var wte = _weights["wte"];
        var wpe = _weights["wpe"];
        for (var r = 0; r < batch * length; r++)
        {
            for (var j = 0; j < d; j++)
            {
                x[(r * d) + j] = wte[(ids[r] * d) + j] + (double)wpe[(positions[r] * d) + j];
            }
        }

        var presents = new float[2 * _config.Layers][];
        for (var layer = 0; layer < _config.Layers; layer++)
        {
            var p = $"l{layer}.";
            var h = LayerNorm(x, batch * length, p + "ln1");
            var q = MatMul(h, batch * length, d, _weights[p + "wq"], d);
            var k = MatMul(h, batch * length, d, _weights[p + "wk"], d);
            var val = MatMul(h, batch * length, d, _weights[p + "wv"], d);
            var keys = presents[2 * layer] = new float[batch * heads * total * dh];
            var values = presents[(2 * layer) + 1] = new float[batch * heads * total * dh];
            for (var b = 0; b < batch; b++)
            {
                for (var hd = 0; hd < heads; hd++)
                {
                    for (var t = 0; t < total; t++)
                    {
                        for (var e = 0; e < dh; e++)
                        {
                            var to = ((((b * heads) + hd) * total) + t) * dh + e;
                            if (t < pastLength)
                            {
                                var from = ((((b * heads) + hd) * pastLength) + t) * dh + e;
                                keys[to] = past[2 * layer][from];
                                values[to] = past[(2 * layer) + 1][from];
                            }
                            else
                            {
                                var from = (((b * length) + t - pastLength) * d) + (hd * dh) + e;
                                keys[to] = (float)k[from];
                                values[to] = (float)val[from];
                            }
                        }
                    }
                }
            }

            var attention = new double[batch * length * d];
            var scores = new double[total];
            var scale = 1.0 / Math.Sqrt(dh);
            for (var b = 0; b < batch; b++)
            {
                for (var hd = 0; hd < heads; hd++)
                {
                    for (var s = 0; s < length; s++)
                    {
                        var max = double.NegativeInfinity;
                        for (var t = 0; t < total; t++)
                        {
                            var dot = 0.0;
                            for (var e = 0; e < dh; e++)
                            {
                                dot += q[(((b * length) + s) * d) + (hd * dh) + e] * keys[((((b * heads) + hd) * total) + t) * dh + e];
                            }

                            var allowed = t <= pastLength + s && mask[(b * total) + t] != 0;
                            scores[t] = (dot * scale) + (allowed ? 0 : -1e9);
                            max = Math.Max(max, scores[t]);
                        }

                        var sum = 0.0;
                        for (var t = 0; t < total; t++)
                        {
                            scores[t] = Math.Exp(scores[t] - max);
                            sum += scores[t];
                        }

                        for (var e = 0; e < dh; e++)
                        {
                            var acc = 0.0;
                            for (var t = 0; t < total; t++)
                            {
                                acc += scores[t] / sum * values[((((b * heads) + hd) * total) + t) * dh + e];
                            }

                            attention[(((b * length) + s) * d) + (hd * dh) + e] = acc;
                        }
                    }
                }
            }

            Add(x, MatMul(attention, batch * length, d, _weights[p + "wo"], d));
            var h2 = LayerNorm(x, batch * length, p + "ln2");
            var f = MatMul(h2, batch * length, d, _weights[p + "w1"], _config.FeedForward);
            var b1 = _weights[p + "b1"];
            for (var i = 0; i < f.Length; i++)
            {
                f[i] = Math.Max(0, f[i] + b1[i % _config.FeedForward]);
            }

            var f2 = MatMul(f, batch * length, _config.FeedForward, _weights[p + "w2"], d);
            var b2 = _weights[p + "b2"];
            for (var i = 0; i < f2.Length; i++)
            {
                x[i] += f2[i] + b2[i % d];
            }
        }

        var final = LayerNorm(x, batch * length, "lnf");
        return (MatMul(final, batch * length, d, _weights["lm_head"], v), presents);
    }

    private double[] LayerNorm(double[] x, int rows, string prefix)
    {
        int d = _config.Hidden;
        var gain = _weights[prefix + ".g"];
        var bias = _weights[prefix + ".b"];
        var y = new double[x.Length];
        for (var r = 0; r < rows; r++)
        {
            var row = x.AsSpan(r * d, d);
            var mean = 0.0;
            foreach (var value in row)
            {
                mean += value;
            }

            mean /= d;
            var variance = 0.0;
            foreach (var value in row)
            {
                variance += (value - mean) * (value - mean);
            }

            var inv = 1.0 / Math.Sqrt((variance / d) + 1e-5);
            for (var j = 0; j < d; j++)
            {
                y[(r * d) + j] = ((row[j] - mean) * inv * gain[j]) + bias[j];
            }
        }

        return y;
    }

    private static double[] MatMul(double[] a, int rows, int inner, float[] w, int cols)
    {
        var y = new double[rows * cols];
        for (var r = 0; r < rows; r++)
        {
            for (var i = 0; i < inner; i++)
            {
                var left = a[(r * inner) + i];
                if (left == 0)
                {
                    continue;
                }

                for (var c = 0; c < cols; c++)
                {
                    y[(r * cols) + c] += left * w[(i * cols) + c];
                }
            }
        }

        return y;
    }

    private static void Add(double[] x, double[] y)
    {
        for (var i = 0; i < x.Length; i++)
        {
            x[i] += y[i];
        }
    }
}
