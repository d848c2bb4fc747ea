using System.Buffers;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ServerlessInference.Models;

namespace ServerlessInference.Onnx;

/// <summary>An ONNX Runtime session for one model version.</summary>
/// <remarks>
/// <para><see cref="RunBatchAsync"/> is thread-safe and runs on the calling thread (plus the shared intra-op pool).
/// A dynamic-batch model stacks requests whose non-batch dims agree along dim 0, at most
/// <see cref="ModelManifest.MaxBatchSize"/> rows per call, and splits the outputs back by each request's row count;
/// when a stacked call fails, its requests run one by one so only the bad one fails. A fixed-batch model runs
/// request by request.</para>
/// <para>Input bytes are read in place (one request) or copied into a pooled buffer (a stack). Output tensors of
/// known size are written by ONNX Runtime straight into one managed array per call; the responses of a stack hold
/// slices of that array, so keep the whole response rather than <c>TryGetArray</c> on its memory.</para>
/// <para>Dispose may race with runs: the session is released when the last run in flight ends, and runs that
/// start after <see cref="Dispose"/> throw <see cref="ObjectDisposedException"/>.</para>
/// </remarks>
public sealed class OnnxLoadedModel : ILoadedModel
{
    private readonly InferenceSession _session;
    private readonly ModelSignature _signature;
    private readonly ILogger _logger;
    private readonly int[] _allOutputs;
    private int _disposed;

    // One reference for the owner plus one per run in flight; the session goes when it reaches zero.
    private int _references = 1;

    internal OnnxLoadedModel(ModelManifest manifest, InferenceSession session, ModelSignature signature, long sizeBytes, string executionProvider, OptimizedModelUse optimizedModel, ILogger logger)
    {
        OptimizedModel = optimizedModel;
        Manifest = manifest;
        _session = session;
        _signature = signature;
        SizeBytes = sizeBytes;
        ExecutionProvider = executionProvider;
        _logger = logger;
        _allOutputs = Enumerable.Range(0, signature.Outputs.Length).ToArray();
    }

    public ModelManifest Manifest { get; }

    /// <summary>The size of the weights file: ONNX Runtime keeps the initializers in memory, so the file size is a
    /// fair estimate of what the session holds (arena growth during runs is not counted).</summary>
    public long SizeBytes { get; }

    /// <summary><c>CUDA</c> or <c>CPU</c>: the provider the session was created with.</summary>
    public string ExecutionProvider { get; }

    /// <summary>Whether the session came from the cached optimized graph (<see cref="OnnxEngineOptions.CacheOptimizedModels"/>).</summary>
    public OptimizedModelUse OptimizedModel { get; }

    public ValueTask<IReadOnlyList<BatchItemResult>> RunBatchAsync(IReadOnlyList<InferenceRequest> requests, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(requests);
        cancellationToken.ThrowIfCancellationRequested();
        AddReference();
        try
        {
            return ValueTask.FromResult(RunBatch(requests, cancellationToken));
        }
        finally
        {
            Release();
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Release();
        }
    }

    private IReadOnlyList<BatchItemResult> RunBatch(IReadOnlyList<InferenceRequest> requests, CancellationToken cancellationToken)
    {
        var results = new BatchItemResult[requests.Count];
        var prepared = new List<PreparedRequest>(requests.Count);
        for (var i = 0; i < requests.Count; i++)
        {
            try
            {
                prepared.Add(Prepare(requests[i], i));
            }
            catch (InferenceException ex)
            {
                results[i] = BatchItemResult.Failure(ex.Message, ex.Error);
            }
            catch (OverflowException)
            {
                results[i] = BatchItemResult.Failure("an input is too large", InferenceError.BadRequest);
            }
        }

        if (prepared.Count > 0)
        {
            using var runOptions = new RunOptions();
            using var registration = cancellationToken.CanBeCanceled
                ? cancellationToken.Register(static state => ((RunOptions)state!).Terminate = true, runOptions)
                : default;
            if (Manifest.DynamicBatch)
            {
                foreach (var group in Stack(prepared))
                {
                    RunGroup(group, runOptions, results, cancellationToken);
                }
            }
            else
            {
                foreach (var request in prepared)
                {
                    RunGroup([request], runOptions, results, cancellationToken);
                }
            }
        }

        return results;
    }

    private void AddReference()
    {
        var references = Volatile.Read(ref _references);
        while (true)
        {
            ObjectDisposedException.ThrowIf(references == 0 || Volatile.Read(ref _disposed) == 1, this);
            var seen = Interlocked.CompareExchange(ref _references, references + 1, references);
            if (seen == references)
            {
                return;
            }

            references = seen;
        }
    }

    private void Release()
    {
        if (Interlocked.Decrement(ref _references) == 0)
        {
            _session.Dispose();
        }
    }

    /// <summary>Orders a request's inputs as the session wants them and checks them cheaply (the gateway's
    /// validator has already checked them against the manifest).</summary>
    private PreparedRequest Prepare(InferenceRequest request, int index)
    {
        var bindings = _signature.Inputs;
        var inputs = new InferTensor[bindings.Length];
        foreach (var tensor in request.Inputs)
        {
            var i = Array.FindIndex(bindings, b => b.Name == tensor.Name);
            if (i < 0)
            {
                throw BadRequest($"unknown input '{tensor.Name}' (model inputs: {string.Join(", ", _signature.InputNames)})");
            }

            if (inputs[i] is not null)
            {
                throw BadRequest($"input '{tensor.Name}' appears twice");
            }

            inputs[i] = tensor;
        }

        long rows = 1;
        for (var i = 0; i < bindings.Length; i++)
        {
            var binding = bindings[i];
            var tensor = inputs[i] ?? throw BadRequest($"input '{binding.Name}' is missing");
            CheckInput(binding, tensor);
            if (Manifest.DynamicBatch)
            {
                if (i == 0)
                {
                    rows = tensor.Shape[0];
                }
                else if (tensor.Shape[0] != rows)
                {
                    throw BadRequest($"inputs disagree on dim 0: '{bindings[0].Name}' has {rows} rows, '{binding.Name}' has {tensor.Shape[0]}");
                }
            }
        }

        if (Manifest.DynamicBatch && (rows < 1 || rows > Manifest.MaxBatchSize))
        {
            throw BadRequest($"the request has {rows} rows; model '{Manifest.Key}' takes 1 to {Manifest.MaxBatchSize}");
        }

        return new PreparedRequest(index, request, inputs, rows, ResolveOutputs(request.Outputs));
    }

    private static void CheckInput(TensorBinding binding, InferTensor tensor)
    {
        if (tensor.Datatype != binding.Datatype)
        {
            throw BadRequest($"input '{binding.Name}' is {tensor.Datatype.Name()}; the model takes {binding.Datatype.Name()}");
        }

        var shapeMatches = tensor.Shape.Length == binding.Dims.Length;
        for (var d = 0; shapeMatches && d < binding.Dims.Length; d++)
        {
            shapeMatches = binding.Dims[d] < 0 || binding.Dims[d] == tensor.Shape[d];
        }

        if (!shapeMatches)
        {
            throw BadRequest($"input '{binding.Name}' has shape {ModelSignature.Format(tensor.Shape)}; the model takes {ModelSignature.Format(binding.Dims)}");
        }

        var count = ShapeMath.ElementCount(tensor.Shape);
        if (binding.Datatype == TensorDatatype.Bytes)
        {
            var held = tensor.BytesData?.Count ?? 0;
            if (held != count)
            {
                throw BadRequest($"input '{binding.Name}' holds {held} elements; shape {ModelSignature.Format(tensor.Shape)} needs {count}");
            }
        }
        else
        {
            var expected = checked(count * binding.Datatype.ElementSize());
            if (tensor.Data.Length != expected)
            {
                throw BadRequest($"input '{binding.Name}' holds {tensor.Data.Length} bytes; shape {ModelSignature.Format(tensor.Shape)} of {binding.Datatype.Name()} needs {expected}");
            }
        }
    }

    private int[] ResolveOutputs(IReadOnlyList<RequestedOutput>? requested)
    {
        if (requested is null || requested.Count == 0)
        {
            return _allOutputs;
        }

        var wanted = new bool[_signature.Outputs.Length];
        foreach (var output in requested)
        {
            var o = Array.FindIndex(_signature.Outputs, b => b.Name == output.Name);
            if (o < 0)
            {
                throw BadRequest($"unknown output '{output.Name}' (model outputs: {string.Join(", ", _signature.Outputs.Select(b => b.Name))})");
            }

            wanted[o] = true;
        }

        return Indices(wanted);
    }

    /// <summary>Groups requests whose non-batch dims agree, in arrival order, cut at the model's row limit.</summary>
    private IEnumerable<List<PreparedRequest>> Stack(List<PreparedRequest> prepared)
    {
        var buckets = new List<List<PreparedRequest>>();
        foreach (var request in prepared)
        {
            var bucket = buckets.Find(b => SameNonBatchDims(b[0], request));
            if (bucket is null)
            {
                buckets.Add([request]);
            }
            else
            {
                bucket.Add(request);
            }
        }

        foreach (var bucket in buckets)
        {
            var group = new List<PreparedRequest>();
            long rows = 0;
            foreach (var request in bucket)
            {
                if (group.Count > 0 && rows + request.Rows > Manifest.MaxBatchSize)
                {
                    yield return group;
                    group = [];
                    rows = 0;
                }

                group.Add(request);
                rows += request.Rows;
            }

            yield return group;
        }
    }

    private static bool SameNonBatchDims(PreparedRequest a, PreparedRequest b)
    {
        for (var i = 0; i < a.Inputs.Length; i++)
        {
            if (!a.Inputs[i].Shape.AsSpan(1).SequenceEqual(b.Inputs[i].Shape.AsSpan(1)))
            {
                return false;
            }
        }

        return true;
    }

    private void RunGroup(List<PreparedRequest> group, RunOptions runOptions, BatchItemResult[] results, CancellationToken cancellationToken)
    {
        try
        {
            Run(group, runOptions, results);
        }
        catch (Exception ex) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("the batch was cancelled", ex, cancellationToken);
        }
        catch (Exception ex) when (group.Count > 1)
        {
            // One bad request must not fail the others: isolate it by running the stack's requests alone.
            Log.StackedRunFailed(_logger, Manifest.Key, group.Count, ex);
            foreach (var request in group)
            {
                RunGroup([request], runOptions, results, cancellationToken);
            }
        }
        catch (Exception ex)
        {
            results[group[0].Index] = BatchItemResult.Failure(Describe(ex));
        }
    }

    private void Run(List<PreparedRequest> group, RunOptions runOptions, BatchItemResult[] results)
    {
        var inputCount = _signature.Inputs.Length;
        long totalRows = 0;
        foreach (var request in group)
        {
            totalRows += request.Rows;
        }

        var wanted = WantedOutputs(group);
        var outputNames = new string[wanted.Length];
        for (var k = 0; k < wanted.Length; k++)
        {
            outputNames[k] = _signature.Outputs[wanted[k]].Name;
        }

        var inputValues = new OrtValue[inputCount];
        var pins = new MemoryHandle[inputCount + wanted.Length];
        var rented = new byte[]?[inputCount];
        try
        {
            for (var i = 0; i < inputCount; i++)
            {
                inputValues[i] = CreateInput(group, i, totalRows, ref pins[i], ref rented[i]);
            }

            var outputs = new OutputBuffer[wanted.Length];
            if (TryPreallocatedShapes(wanted, totalRows) is { } shapes)
            {
                var outputValues = new OrtValue[wanted.Length];
                try
                {
                    for (var k = 0; k < wanted.Length; k++)
                    {
                        var binding = _signature.Outputs[wanted[k]];
                        var data = GC.AllocateUninitializedArray<byte>(checked((int)(ShapeMath.ElementCount(shapes[k]) * binding.Datatype.ElementSize())));
                        outputValues[k] = CreateTensor(binding.ElementType, shapes[k], data, ref pins[inputCount + k]);
                        outputs[k] = new OutputBuffer(shapes[k], data, null);
                    }

                    _session.Run(runOptions, _signature.InputNames, inputValues, outputNames, outputValues);
                }
                finally
                {
                    DisposeAll(outputValues);
                }
            }
            else
            {
                using var values = _session.Run(runOptions, _signature.InputNames, inputValues, outputNames);
                for (var k = 0; k < wanted.Length; k++)
                {
                    outputs[k] = ReadOutput(values[k]);
                }
            }

            Split(group, wanted, outputs, totalRows, results);
        }
        finally
        {
            DisposeAll(inputValues);
            foreach (var pin in pins)
            {
                pin.Dispose();
            }

            foreach (var buffer in rented)
            {
                if (buffer is not null)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }
        }
    }

    private OrtValue CreateInput(List<PreparedRequest> group, int input, long totalRows, ref MemoryHandle pin, ref byte[]? rented)
    {
        var binding = _signature.Inputs[input];
        var first = group[0].Inputs[input];
        var shape = group.Count == 1 ? first.Shape : WithDim0(first.Shape, totalRows);
        if (binding.Datatype == TensorDatatype.Bytes)
        {
            var value = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, shape);
            try
            {
                var e = 0;
                foreach (var request in group)
                {
                    foreach (var element in request.Inputs[input].BytesData!)
                    {
                        value.StringTensorSetElementAt(element.AsSpan(), e++);
                    }
                }

                return value;
            }
            catch
            {
                value.Dispose();
                throw;
            }
        }

        if (group.Count == 1)
        {
            return CreateTensor(binding.ElementType, shape, first.Data, ref pin);
        }

        var total = 0;
        foreach (var request in group)
        {
            total = checked(total + request.Inputs[input].Data.Length);
        }

        rented = ArrayPool<byte>.Shared.Rent(total);
        var offset = 0;
        foreach (var request in group)
        {
            var data = request.Inputs[input].Data.Span;
            data.CopyTo(rented.AsSpan(offset));
            offset += data.Length;
        }

        return CreateTensor(binding.ElementType, shape, rented.AsMemory(0, total), ref pin);
    }

    private static unsafe OrtValue CreateTensor(TensorElementType elementType, long[] shape, ReadOnlyMemory<byte> data, ref MemoryHandle pin)
    {
        if (data.IsEmpty)
        {
            return OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, elementType, shape);
        }

        pin = data.Pin();
        return OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, elementType, shape, (IntPtr)pin.Pointer, data.Length);
    }

    /// <summary>Output shapes known before the run, or null when any output's size depends on the data.</summary>
    private long[][]? TryPreallocatedShapes(int[] wanted, long totalRows)
    {
        var shapes = new long[wanted.Length][];
        for (var k = 0; k < wanted.Length; k++)
        {
            var binding = _signature.Outputs[wanted[k]];
            if (!binding.FixedAfterBatchDim(Manifest.DynamicBatch))
            {
                return null;
            }

            var shape = Manifest.DynamicBatch ? WithDim0(binding.Dims, totalRows) : binding.Dims;
            if (ShapeMath.ElementCount(shape) == 0)
            {
                return null;
            }

            shapes[k] = shape;
        }

        return shapes;
    }

    private static OutputBuffer ReadOutput(OrtValue value)
    {
        var info = value.GetTensorTypeAndShape();
        var shape = info.Shape;
        if (info.IsString)
        {
            var strings = new byte[checked((int)info.ElementCount)][];
            for (var e = 0; e < strings.Length; e++)
            {
                strings[e] = value.GetStringElementAsSpan(e).ToArray();
            }

            return new OutputBuffer(shape, null, strings);
        }

        return new OutputBuffer(shape, value.GetTensorMutableRawData().ToArray(), null);
    }

    private void Split(List<PreparedRequest> group, int[] wanted, OutputBuffer[] outputs, long totalRows, BatchItemResult[] results)
    {
        if (group.Count > 1)
        {
            for (var k = 0; k < outputs.Length; k++)
            {
                var shape = outputs[k].Shape;
                if (shape.Length == 0 || shape[0] != totalRows)
                {
                    throw new InferenceException(InferenceError.ModelFailure,
                        $"output '{outputNameOf(k)}' has shape {ModelSignature.Format(shape)} for {totalRows} stacked rows");
                }
            }
        }

        long rowOffset = 0;
        foreach (var request in group)
        {
            var tensors = new InferTensor[request.Outputs.Length];
            for (var j = 0; j < tensors.Length; j++)
            {
                var k = Array.IndexOf(wanted, request.Outputs[j]);
                var binding = _signature.Outputs[wanted[k]];
                var output = outputs[k];
                if (group.Count == 1)
                {
                    tensors[j] = new InferTensor
                    {
                        Name = binding.Name,
                        Datatype = binding.Datatype,
                        Shape = output.Shape,
                        Data = output.Data,
                        BytesData = output.Strings,
                    };
                    continue;
                }

                var shape = WithDim0(output.Shape, request.Rows);
                if (output.Strings is { } strings)
                {
                    var perRow = strings.Length / (int)totalRows;
                    tensors[j] = InferTensor.CreateBytes(binding.Name, shape,
                        new ArraySegment<byte[]>(strings, checked((int)(rowOffset * perRow)), checked((int)(request.Rows * perRow))));
                }
                else
                {
                    var perRow = output.Data!.Length / (int)totalRows;
                    tensors[j] = new InferTensor
                    {
                        Name = binding.Name,
                        Datatype = binding.Datatype,
                        Shape = shape,
                        Data = output.Data.AsMemory(checked((int)(rowOffset * perRow)), checked((int)(request.Rows * perRow))),
                    };
                }
            }

            results[request.Index] = BatchItemResult.Success(new InferenceResponse
            {
                ModelName = Manifest.Name,
                ModelVersion = Manifest.Version,
                Id = request.Request.Id,
                Outputs = tensors,
            });
            rowOffset += request.Rows;
        }

        string outputNameOf(int k) => _signature.Outputs[wanted[k]].Name;
    }

    private int[] WantedOutputs(List<PreparedRequest> group)
    {
        if (group.Count == 1)
        {
            return group[0].Outputs;
        }

        var wanted = new bool[_signature.Outputs.Length];
        foreach (var request in group)
        {
            foreach (var o in request.Outputs)
            {
                wanted[o] = true;
            }
        }

        return Indices(wanted);
    }

    private static int[] Indices(bool[] flags)
    {
        var indices = new List<int>(flags.Length);
        for (var i = 0; i < flags.Length; i++)
        {
            if (flags[i])
            {
                indices.Add(i);
            }
        }

        return [.. indices];
    }

    private static long[] WithDim0(long[] shape, long dim0)
    {
        var result = (long[])shape.Clone();
        result[0] = dim0;
        return result;
    }

    private static void DisposeAll(OrtValue?[] values)
    {
        foreach (var value in values)
        {
            value?.Dispose();
        }
    }

    private string Describe(Exception ex) => ex switch
    {
        InferenceException inference => inference.Message,
        OnnxRuntimeException => $"model '{Manifest.Key}' failed: {ex.Message}",
        OverflowException => $"the request is too large for model '{Manifest.Key}'",
        _ => $"model '{Manifest.Key}' failed: {ex.GetType().Name}: {ex.Message}",
    };

    private static InferenceException BadRequest(string message) => new(InferenceError.BadRequest, message);

    private sealed record PreparedRequest(int Index, InferenceRequest Request, InferTensor[] Inputs, long Rows, int[] Outputs);

    private readonly record struct OutputBuffer(long[] Shape, byte[]? Data, byte[][]? Strings);
}
