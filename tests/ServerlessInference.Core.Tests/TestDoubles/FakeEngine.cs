using System.Collections.Concurrent;
using ServerlessInference.Models;

namespace ServerlessInference.Tests.TestDoubles;

/// <summary>An engine whose models double every FP32 input element into output <c>y</c>; loads and runs can be held at a gate.</summary>
internal sealed class FakeEngine : IInferenceEngine
{
    private int _loads;

    public string ExecutionProvider => "FAKE";

    public int Loads => Volatile.Read(ref _loads);

    /// <summary>When set, loads wait for it.</summary>
    public TaskCompletionSource? LoadGate { get; set; }

    /// <summary>Runs wait on this before computing (null: no wait).</summary>
    public Func<IReadOnlyList<InferenceRequest>, CancellationToken, Task>? BeforeRun { get; set; }

    public ConcurrentBag<FakeModel> Models { get; } = [];

    /// <summary>When set, loads throw what it returns for the weights path (an ONNX Runtime load error, say).</summary>
    public Func<string, Exception>? LoadFailure { get; set; }

    /// <summary>Runs inside every load (a test advances its fake clock here to give the session creation a duration).</summary>
    public Action? DuringLoad { get; set; }

    public async ValueTask<ILoadedModel> LoadAsync(ModelManifest manifest, string weightsPath, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _loads);
        DuringLoad?.Invoke();
        Assert.True(File.Exists(weightsPath));
        if (LoadFailure is { } failure)
        {
            throw failure(weightsPath);
        }

        if (LoadGate is { } gate)
        {
            await gate.Task.WaitAsync(cancellationToken);
        }

        var model = new FakeModel(this, manifest);
        Models.Add(model);
        return model;
    }
}

internal sealed class FakeModel(FakeEngine engine, ModelManifest manifest) : ILoadedModel
{
    private int _batches;

    public ModelManifest Manifest => manifest;

    public long SizeBytes => manifest.SizeBytes;

    public bool Disposed { get; private set; }

    public int Batches => Volatile.Read(ref _batches);

    public async ValueTask<IReadOnlyList<BatchItemResult>> RunBatchAsync(IReadOnlyList<InferenceRequest> requests, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _batches);
        if (engine.BeforeRun is { } before)
        {
            await before(requests, cancellationToken);
        }

        return requests.Select(Run).ToList();
    }

    private BatchItemResult Run(InferenceRequest request)
    {
        var input = request.Inputs[0];
        if (input.AsSpan<float>().Length > 0 && float.IsNaN(input.AsSpan<float>()[0]))
        {
            return BatchItemResult.Failure("NaN input", InferenceError.BadRequest);
        }

        var doubled = input.AsSpan<float>().ToArray().Select(v => v * 2).ToArray();
        return BatchItemResult.Success(new InferenceResponse
        {
            ModelName = manifest.Name,
            ModelVersion = manifest.Version,
            Id = request.Id,
            Outputs = [InferTensor.Create("y", input.Shape, doubled)],
        });
    }

    public void Dispose() => Disposed = true;
}
