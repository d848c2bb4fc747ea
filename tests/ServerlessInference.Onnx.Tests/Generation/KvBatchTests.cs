using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Onnx.Demo;
using ServerlessInference.Onnx.Generation;

namespace ServerlessInference.Onnx.Tests.Generation;

/// <summary><see cref="KvBatch"/>'s layout against a batch built naively from each row's live columns.</summary>
public sealed class KvBatchTests
{
    private const int Layers = 2, Heads = 3, HeadDim = 4, Tensors = 2 * Layers;
    private readonly Random _random = new(14);

    [Fact]
    public void Append_ShortJoiner_IsRightAlignedInANewLastRow()
    {
        using var batch = new KvBatch(Layers, Heads, HeadDim);
        var reference = new List<Row>();
        batch.Resize(7);
        Append(batch, reference, live: 7, sourceLength: 7);
        Append(batch, reference, live: 4, sourceLength: 6); // a longer prefill's last 4 columns
        Append(batch, reference, live: 1, sourceLength: 1);

        AssertLayout(reference, 7, batch);
    }

    [Fact]
    public void Append_LongerJoiner_WidensEveryRowFirst()
    {
        using var batch = new KvBatch(Layers, Heads, HeadDim);
        var reference = new List<Row>();
        batch.Resize(5);
        Append(batch, reference, live: 5, sourceLength: 5);
        Append(batch, reference, live: 3, sourceLength: 3);

        batch.Resize(9);
        Append(batch, reference, live: 9, sourceLength: 9);

        AssertLayout(reference, 9, batch);
    }

    [Fact]
    public void Append_LongerThanTheBatch_Throws()
    {
        using var batch = new KvBatch(Layers, Heads, HeadDim);
        batch.Resize(4);

        Assert.Throws<ArgumentOutOfRangeException>(() => batch.Append(Presents(new Row(5, _random), 5), 5));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(3)]
    public void Remove_Row_MovesTheLastRowIntoItsPlace(int removed)
    {
        using var batch = new KvBatch(Layers, Heads, HeadDim);
        var reference = new List<Row>();
        batch.Resize(6);
        foreach (var live in new[] { 6, 2, 5, 3 })
        {
            Append(batch, reference, live, live);
        }

        batch.Remove(removed);
        reference[removed] = reference[^1];
        reference.RemoveAt(reference.Count - 1);

        AssertLayout(reference, 6, batch);
    }

    [Fact]
    public void Remove_TheOnlyRow_EmptiesTheBatch()
    {
        using var batch = new KvBatch(Layers, Heads, HeadDim);
        batch.Resize(3);
        batch.Append(Presents(new Row(3, _random), 3), 3);

        batch.Remove(0);

        Assert.Equal((0, 0), (batch.Rows, batch.Length));
    }

    [Fact]
    public void Resize_Shorter_DropsAllPadColumnsOnTheLeft()
    {
        using var batch = new KvBatch(Layers, Heads, HeadDim);
        var reference = new List<Row>();
        batch.Resize(20);
        Append(batch, reference, live: 20, sourceLength: 20);
        Append(batch, reference, live: 4, sourceLength: 4);
        Append(batch, reference, live: 9, sourceLength: 9);
        batch.Remove(0);
        reference[0] = reference[^1];
        reference.RemoveAt(reference.Count - 1);

        batch.Resize(9);

        AssertLayout(reference, 9, batch);
    }

    [Fact]
    public void Empty_KeepsTheArraysForTheNextRows_AndClearDropsThem()
    {
        using var batch = new KvBatch(Layers, Heads, HeadDim);
        batch.Resize(6);
        var before = new List<Row>();
        Append(batch, before, live: 6, sourceLength: 6);
        Append(batch, before, live: 2, sourceLength: 2);
        var capacity = batch.Capacity;
        Assert.InRange(capacity, 2 * Heads * 6 * HeadDim, 2 * 2 * Heads * 6 * HeadDim); // sized with headroom, not to a power of two

        batch.Empty();

        Assert.Equal((0, 0, capacity), (batch.Rows, batch.Length, batch.Capacity));
        var reference = new List<Row>();
        batch.Resize(5);
        Append(batch, reference, live: 5, sourceLength: 5);
        Append(batch, reference, live: 3, sourceLength: 4);
        Assert.Equal(capacity, batch.Capacity); // the same arrays
        AssertLayout(reference, 5, batch);

        batch.Clear();
        Assert.Equal((0, 0, 0), (batch.Rows, batch.Length, batch.Capacity));
    }

    [Fact]
    public void Append_PastTheCapacity_GrowsAndKeepsTheRows()
    {
        using var batch = new KvBatch(Layers, Heads, HeadDim);
        var reference = new List<Row>();
        batch.Resize(8);
        Append(batch, reference, live: 8, sourceLength: 8);
        var capacity = batch.Capacity;
        while (batch.Rows * Heads * 8 * HeadDim <= capacity)
        {
            Append(batch, reference, live: 1 + _random.Next(8), sourceLength: 8);
        }

        Assert.True(batch.Capacity > capacity);
        AssertLayout(reference, 8, batch);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(5, 5)]
    [InlineData(5, 2)]
    [InlineData(300, 1)] // past the capacity: the arrays grow
    public void Advance_AfterAStepWroteThePresents_KeepsTheFirstKeptNewColumns(int width, int kept)
    {
        using var batch = new KvBatch(Layers, Heads, HeadDim);
        var reference = new List<Row>();
        batch.Resize(6);
        Append(batch, reference, live: 6, sourceLength: 6);
        Append(batch, reference, live: 2, sourceLength: 2);
        Append(batch, reference, live: 4, sourceLength: 4);

        // Stand in for the model: the presents are the past followed by `width` new columns per row.
        var (past, presents) = batch.StepViews(width);
        var added = reference.Select(_ => new Row(width, _random)).ToList();
        var before = Dense(reference, 6);
        for (var j = 0; j < Tensors; j++)
        {
            Assert.Equal(before[j], past[j].GetTensorDataAsSpan<float>().ToArray());
        }

        var written = reference.Select((row, i) => row.Then(added[i], width)).ToList();
        var expected = Dense(written, 6 + width);
        for (var j = 0; j < Tensors; j++)
        {
            expected[j].CopyTo(presents[j].GetTensorMutableDataAsSpan<float>());
        }

        batch.Advance(width, kept);

        AssertLayout([.. reference.Select((row, i) => row.Then(added[i], kept))], 6 + kept, batch);
    }

    [Fact]
    public void StepViews_BoundToTheDecoder_OnnxRuntimeWritesThePresentsIntoTheBatch()
    {
        _ = TestModels.Engine;
        var config = LmTestModels.Tiny;
        using var decoder = DecoderSession.Create(new InferenceSession(LmTestModels.TinyPath), DecoderLmModel.Manifest(config).Generation!, "tiny-lm/1");
        using var batch = new KvBatch(decoder.Layers, decoder.Heads, decoder.HeadDim);
        long[] a = [5, 77, 300, 12, 9], b = [250, 8, 19];
        batch.Resize(a.Length);
        foreach (var prompt in new[] { a, b })
        {
            using var prefill = Prefill(decoder, prompt);
            batch.Append([.. prefill.Skip(1)], prompt.Length);
        }

        // One decode step of both rows: [B=2] past [2,H,5,Dh] (b left-padded by 2).
        long[] ids = [17, 23], positions = [5, 3], mask = [1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1];
        var logits = new float[2 * config.VocabularySize];
        float[][] expectedPresents;
        float[] expectedLogits;
        using (var idsValue = OrtValue.CreateTensorValueFromMemory(ids, [2, 1]))
        using (var maskValue = OrtValue.CreateTensorValueFromMemory(mask, [2, 6]))
        using (var positionsValue = OrtValue.CreateTensorValueFromMemory(positions, [2, 1]))
        using (var logitsValue = OrtValue.CreateTensorValueFromMemory(logits, [2, 1, config.VocabularySize]))
        {
            var (past, presents) = batch.StepViews(1);
            using (var plain = decoder.Run(idsValue, maskValue, positionsValue, past))
            {
                expectedLogits = plain[0].GetTensorDataAsSpan<float>().ToArray();
                expectedPresents = [.. plain.Skip(1).Select(p => p.GetTensorDataAsSpan<float>().ToArray())];
            }

            decoder.Run(idsValue, maskValue, positionsValue, past, logitsValue, presents);
        }

        batch.Advance(1, 1);

        Assert.Equal(expectedLogits, logits);
        Assert.Equal((2, 6), (batch.Rows, batch.Length));
        for (var j = 0; j < batch.Tensors; j++)
        {
            Assert.Equal(expectedPresents[j], batch.Tensor(j).ToArray());
        }
    }

    private static IDisposableReadOnlyCollection<OrtValue> Prefill(DecoderSession decoder, long[] prompt)
    {
        using var ids = OrtValue.CreateTensorValueFromMemory(prompt, [1, prompt.Length]);
        using var mask = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(1L, prompt.Length).ToArray(), [1, prompt.Length]);
        using var positions = OrtValue.CreateTensorValueFromMemory(Enumerable.Range(0, prompt.Length).Select(i => (long)i).ToArray(), [1, prompt.Length]);
        var empty = Enumerable.Range(0, 2 * decoder.Layers)
            .Select(_ => OrtValue.CreateTensorValueFromMemory(Array.Empty<float>(), [1, decoder.Heads, 0, decoder.HeadDim])).ToArray();
        try
        {
            return decoder.Run(ids, mask, positions, empty);
        }
        finally
        {
            foreach (var value in empty)
            {
                value.Dispose();
            }
        }
    }

    /// <summary>Appends a row whose prefill had <paramref name="sourceLength"/> columns, the last <paramref name="live"/> of them live.</summary>
    private void Append(KvBatch batch, List<Row> reference, int live, int sourceLength)
    {
        var source = new Row(sourceLength, _random);
        var presents = Presents(source, sourceLength);
        try
        {
            Assert.Equal(reference.Count, batch.Append(presents, live));
        }
        finally
        {
            foreach (var value in presents)
            {
                value.Dispose();
            }
        }

        reference.Add(source.Last(live));
    }

    private static OrtValue[] Presents(Row row, int length) =>
        [.. Enumerable.Range(0, Tensors).Select(j => OrtValue.CreateTensorValueFromMemory(row.Dense(j, length), [1, Heads, length, HeadDim]))];

    private static float[][] Dense(List<Row> rows, int length) =>
        [.. Enumerable.Range(0, Tensors).Select(j => rows.SelectMany(row => row.Dense(j, length)).ToArray())];

    private static void AssertLayout(List<Row> rows, int length, KvBatch batch)
    {
        Assert.Equal((rows.Count, length), (batch.Rows, batch.Length));
        var expected = Dense(rows, length);
        for (var j = 0; j < Tensors; j++)
        {
            Assert.Equal(expected[j], batch.Tensor(j).ToArray());
        }
    }

    /// <summary>One row's live columns: [tensor][head][column] → Dh floats.</summary>
    private sealed class Row
    {
        private readonly float[][][][] _columns;

        public Row(int live, Random random) =>
            _columns = [.. Enumerable.Range(0, Tensors).Select(_ => Enumerable.Range(0, Heads)
                .Select(_ => Enumerable.Range(0, live).Select(_ => Enumerable.Range(0, HeadDim).Select(_ => 1 + random.NextSingle()).ToArray()).ToArray()).ToArray())];

        private Row(float[][][][] columns) => _columns = columns;

        public int Live => _columns[0][0].Length;

        public Row Last(int live) => new([.. _columns.Select(t => t.Select(h => h[^live..]).ToArray())]);

        /// <summary>This row's columns followed by the first <paramref name="count"/> of <paramref name="next"/>'s.</summary>
        public Row Then(Row next, int count) =>
            new([.. _columns.Select((t, j) => t.Select((h, head) => h.Concat(next._columns[j][head].Take(count)).ToArray()).ToArray())]);

        /// <summary>Tensor <paramref name="tensor"/> of this row as [H, length, Dh], left-padded with zeros.</summary>
        public float[] Dense(int tensor, int length)
        {
            var dense = new float[Heads * length * HeadDim];
            for (var h = 0; h < Heads; h++)
            {
                for (var c = 0; c < Live; c++)
                {
                    _columns[tensor][h][c].CopyTo(dense, ((h * length) + length - Live + c) * HeadDim);
                }
            }

            return dense;
        }
    }
}
