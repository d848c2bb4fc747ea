using Microsoft.Extensions.Logging.Abstractions;
using ServerlessInference.Embedded;
using ServerlessInference.Scaling;
using ServerlessInference.Testing.Contracts;
using ServerlessInference.Tests.TestDoubles;
using ServerlessInference.Workers;

namespace ServerlessInference.Tests.Contracts;

/// <summary>The orchestrator contract over worker loops on the embedded providers and a fake clock.</summary>
public sealed class InProcessWorkerOrchestratorContractTests : WorkerOrchestratorContract
{
    private readonly WorkerRig _rig = new();
    private readonly Lock _lock = new();
    private readonly List<InferenceWorker> _created = [];

    protected override TimeProvider Time => _rig.Time;

    protected override int WorkersStarted
    {
        get
        {
            lock (_lock)
            {
                return _created.Count;
            }
        }
    }

    protected override ValueTask AdvanceAsync(TimeSpan duration)
    {
        _rig.Time.Advance(duration);
        return ValueTask.CompletedTask;
    }

    protected override ValueTask<IWorkerOrchestrator> CreateOrchestratorAsync() =>
        ValueTask.FromResult<IWorkerOrchestrator>(Track(new InProcessWorkerOrchestrator(CreateWorker, NullLogger<InProcessWorkerOrchestrator>.Instance)));

    /// <summary>Worker loops created and not told to stop.</summary>
    protected override ValueTask<int> PlatformReplicasAsync()
    {
        lock (_lock)
        {
            return ValueTask.FromResult(_created.Count(w => w.State != WorkerState.Draining));
        }
    }

    public override async Task DisposeAsync()
    {
        // The orchestrators drain their workers first; the rig's pool and model folder go after.
        await base.DisposeAsync();
        _rig.Dispose();
    }

    private InferenceWorker CreateWorker(string id)
    {
        lock (_lock)
        {
            if (PlatformBroken)
            {
                throw new InvalidOperationException("the worker cannot be built (a broken model store, say)");
            }

            var worker = _rig.Worker(id);
            _created.Add(worker);
            return worker;
        }
    }
}
