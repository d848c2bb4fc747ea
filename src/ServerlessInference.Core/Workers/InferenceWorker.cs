using System.Diagnostics;
using Microsoft.Extensions.Logging;
using ServerlessInference.Jobs;
using ServerlessInference.Models;
using ServerlessInference.Streaming;
using ServerlessInference.Telemetry;

namespace ServerlessInference.Workers;

/// <summary>One worker loop: receive a micro-batch, group it by model, run it warm, publish results, complete leases.</summary>
/// <remarks>
/// <para>Nothing is lost: a lease is completed only after its result is stored. A failure that may pass (the engine
/// threw, a service blipped) abandons the leases so the jobs come back; a job delivered more than the queue's max
/// delivery count is dead-lettered with the last error and its status says Failed. A bad request fails alone.</para>
/// <para><see cref="RequestStop"/> drains: stop receiving, finish the model group that is running, abandon the groups
/// not started. Cancelling the token given to <see cref="RunAsync"/> is a crash: leases are left to expire.</para>
/// </remarks>
public sealed partial class InferenceWorker
{
    private readonly IJobQueue _queue;
    private readonly IResultStore _results;
    private readonly WarmPool _pool;
    private readonly ModelCatalog _catalog;
    private readonly IWorkerRegistry _registry;
    private readonly WorkerOptions _options;
    private readonly TimeProvider _timeProvider;
    private readonly InferenceMetrics _metrics;
    private readonly ILogger _logger;
    private readonly IJobStreams? _streams;
    private readonly WorkerStartup? _startup;
    private readonly WorkerAffinity _affinity;
    private DateTimeOffset? _registeredAt;
    private readonly CancellationTokenSource _stop = new();
    private readonly DateTimeOffset _startedAt;
    private int _inFlight;
    private long _completed;
    private long _lastHeartbeat;
    private volatile bool _reportedBusy;
    private volatile WorkerState _state = WorkerState.Starting;

    public InferenceWorker(
        string id,
        IJobQueue queue,
        IResultStore results,
        WarmPool pool,
        ModelCatalog catalog,
        IWorkerRegistry registry,
        WorkerOptions options,
        TimeProvider timeProvider,
        InferenceMetrics metrics,
        ILogger logger,
        IJobStreams? streams = null,
        WorkerStartup? startup = null)
    {
        _streams = streams;
        _startup = startup;
        Id = id;
        _queue = queue;
        _results = results;
        _pool = pool;
        _catalog = catalog;
        _registry = registry;
        _options = options;
        _timeProvider = timeProvider;
        _metrics = metrics;
        _logger = logger;
        _startedAt = timeProvider.GetUtcNow();
        _affinity = new WorkerAffinity(id, pool, catalog, registry, options, timeProvider, logger);
    }

    public string Id { get; }

    /// <summary>Loads what the scaler's placement plan orders for this worker, from the heartbeat path; null: none.</summary>
    public WarmPlacement? Placement { get; init; }

    public int InFlight => Volatile.Read(ref _inFlight) + Volatile.Read(ref _generating);

    public WorkerState State => _state;

    public long JobsCompleted => Interlocked.Read(ref _completed);

    /// <summary>What this worker prefers on each receive, and its fair state across its warm models.</summary>
    public WorkerAffinity Affinity => _affinity;

    /// <summary>Stop receiving; the loop finishes what it started and returns.</summary>
    public void RequestStop()
    {
        _state = WorkerState.Draining;
        _stop.Cancel();
    }

    /// <summary>Runs until <see cref="RequestStop"/> (drain) or <paramref name="crash"/> (abrupt end).</summary>
    public async Task RunAsync(CancellationToken crash)
    {
        using var receiveCancel = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token, crash);
        if (_state == WorkerState.Starting)
        {
            _state = WorkerState.Running;
        }

        Log.Started(_logger, Id, _pool.ExecutionProvider, _options.MaxBatchSize, _options.MaxBatchDelay.TotalMilliseconds);
        await HeartbeatAsync(crash).ConfigureAwait(false);
        _registeredAt = _timeProvider.GetUtcNow();
        // The loop heartbeats between batches; this timer covers a batch or a model load that blocks the loop for
        // longer than the registry's TTL, so a busy worker never drops out of the registry (and out of the scaler's
        // busy count, which keeps it from being scaled down).
        var heartbeats = new TimedHeartbeat(this, crash);
        var period = _options.HeartbeatInterval / 2;
        try
        {
            using (_timeProvider.CreateTimer(static state => ((TimedHeartbeat)state!).Fire(), heartbeats, period, period))
            {
                await LoopAsync(receiveCancel, crash).ConfigureAwait(false);
            }
        }
        finally
        {
            // No timed heartbeat may land after the worker leaves the registry (it would list a stopped worker again).
            await heartbeats.SettledAsync().ConfigureAwait(false);
        }

        await DrainGenerationsAsync(crash).ConfigureAwait(false);
        await _registry.RemoveAsync(Id, CancellationToken.None).ConfigureAwait(false);
        Log.Stopped(_logger, Id, JobsCompleted);
    }

    private async Task LoopAsync(CancellationTokenSource receiveCancel, CancellationToken crash)
    {
        try
        {
            while (!receiveCancel.IsCancellationRequested)
            {
                IReadOnlyList<JobLease> leases;
                try
                {
                    await WaitForGenerationRoomAsync(receiveCancel.Token).ConfigureAwait(false);
                    leases = await ReceiveBatchAsync(receiveCancel.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (receiveCancel.IsCancellationRequested)
                {
                    break;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    Log.ReceiveFailed(_logger, ex, Id);
                    await Task.Delay(_options.RetryDelay, _timeProvider, receiveCancel.Token).ConfigureAwait(false);
                    continue;
                }

                if (leases.Count > 0)
                {
                    try
                    {
                        await ProcessAsync(leases, crash).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException || !crash.IsCancellationRequested)
                    {
                        // A backing service failed while starting or settling jobs (e.g. Redis down): the worker lives
                        // on, and leases it could not settle expire and come back.
                        Log.SettleFailed(_logger, ex, Id);
                        await Task.Delay(_options.RetryDelay, _timeProvider, crash).ConfigureAwait(false);
                    }
                }

                if (_timeProvider.GetElapsedTime(Interlocked.Read(ref _lastHeartbeat)) >= _options.HeartbeatInterval)
                {
                    await HeartbeatAsync(crash).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException) when (crash.IsCancellationRequested)
        {
            Log.Crashed(_logger, Id);
            throw;
        }
    }

    /// <summary>Heartbeats from a timer callback when the loop has not sent one for a heartbeat interval.</summary>
    private sealed class TimedHeartbeat(InferenceWorker worker, CancellationToken crash)
    {
        private readonly Lock _lock = new();
        private Task _running = Task.CompletedTask;

        public void Fire()
        {
            lock (_lock)
            {
                if (!_running.IsCompleted || crash.IsCancellationRequested
                    || worker._timeProvider.GetElapsedTime(Interlocked.Read(ref worker._lastHeartbeat)) < worker._options.HeartbeatInterval)
                {
                    return;
                }

                _running = worker.HeartbeatAsync(crash).AsTask();
            }
        }

        public async Task SettledAsync()
        {
            Task running;
            lock (_lock)
            {
                running = _running;
            }

            try
            {
                await running.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // A crash cut it short.
            }
        }
    }

    private async ValueTask<IReadOnlyList<JobLease>> ReceiveBatchAsync(CancellationToken cancellationToken)
    {
        var max = _options.MaxBatchSize;
        var first = await ReceiveFirstAsync(max, cancellationToken).ConfigureAwait(false);
        if (first.Count == 0 || first.Count >= max || _options.MaxBatchDelay <= TimeSpan.Zero)
        {
            return first;
        }

        // A positive batch window: keep collecting until the batch is full or the window closes.
        var batch = new List<JobLease>(first);
        var opened = _timeProvider.GetTimestamp();
        while (batch.Count < max)
        {
            var remaining = _options.MaxBatchDelay - _timeProvider.GetElapsedTime(opened);
            if (remaining < TimeSpan.FromMilliseconds(1))
            {
                // Timers cannot wait less than a millisecond; waiting on would spin until the window closes.
                break;
            }

            var more = await ReceiveAsync(max - batch.Count, remaining, CancellationToken.None).ConfigureAwait(false);
            batch.AddRange(more);
        }

        return batch;
    }

    private async ValueTask<IReadOnlyList<JobLease>> ReceiveFirstAsync(int max, CancellationToken cancellationToken)
    {
        if (_reportedBusy)
        {
            // A batch just ended. Under load the next one is already queued and the worker never was idle: reporting
            // busy → idle → busy on every batch cost two registry writes per batch. Report idle only when nothing waits.
            var ready = await ReceiveAsync(max, TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
            if (ready.Count > 0)
            {
                return ready;
            }

            await HeartbeatAsync(cancellationToken).ConfigureAwait(false);
        }

        return await ReceiveAsync(max, _options.PollInterval, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>One receive with this worker's preference (FIFO when affinity is off), accounted in its fair state.</summary>
    private async ValueTask<IReadOnlyList<JobLease>> ReceiveAsync(int maxCount, TimeSpan maxWait, CancellationToken cancellationToken)
    {
        var preference = await _affinity.PreferenceAsync(cancellationToken).ConfigureAwait(false);
        if (preference.IsNone)
        {
            return await _queue.ReceiveAsync(maxCount, maxWait, cancellationToken).ConfigureAwait(false);
        }

        var leases = await _queue.ReceiveAsync(maxCount, maxWait, preference, cancellationToken).ConfigureAwait(false);
        _affinity.Received(preference, leases);
        return leases;
    }

    private async Task ProcessAsync(IReadOnlyList<JobLease> leases, CancellationToken crash)
    {
        var receivedAt = _timeProvider.GetUtcNow();
        // The scaler must see a busy worker as busy before it decides anything: report the idle → busy edge at once,
        // unless the registry still shows this worker busy (a saturated worker is idle only between batches).
        if (Interlocked.Add(ref _inFlight, leases.Count) == leases.Count && !_reportedBusy)
        {
            await HeartbeatAsync(crash).ConfigureAwait(false);
        }

        try
        {
            // Admit the whole batch at once: against a remote store the calls pipeline instead of queueing one by one.
            var admitted = new Task<bool>[leases.Count];
            for (var i = 0; i < leases.Count; i++)
            {
                admitted[i] = AdmitAsync(leases[i], crash).AsTask();
            }

            await Task.WhenAll(admitted).ConfigureAwait(false);
            var runnable = new List<JobLease>(leases.Count);
            for (var i = 0; i < leases.Count; i++)
            {
                if (admitted[i].Result)
                {
                    runnable.Add(leases[i]);
                }
            }

            var startedAny = false;
            foreach (var group in runnable.GroupBy(l => (l.Job.Model, l.Job.Version)))
            {
                var jobs = group.ToList();
                if (_stop.IsCancellationRequested && startedAny)
                {
                    await SettleAllAsync(jobs, l => l.AbandonAsync("the worker stopped before starting the job", CancellationToken.None)).ConfigureAwait(false);
                    continue;
                }

                startedAny = true;
                await RunGroupAsync(group.Key.Model, group.Key.Version, jobs, receivedAt, crash).ConfigureAwait(false);
            }
        }
        finally
        {
            // The busy → idle edge is reported by the next receive, and only when no work is waiting.
            Interlocked.Add(ref _inFlight, -leases.Count);
        }
    }

    /// <summary>Decides whether a delivered job should run: dead-letters poison, expires late jobs, skips cancelled ones.</summary>
    private async ValueTask<bool> AdmitAsync(JobLease lease, CancellationToken cancellationToken)
    {
        var job = lease.Job;
        if (lease.DeliveryCount > _queue.MaxDeliveryCount)
        {
            var reason = $"dead-lettered after {lease.DeliveryCount - 1} deliveries (max {_queue.MaxDeliveryCount}); last error: {lease.LastError ?? "unknown"}";
            Log.DeadLettered(_logger, job.Id, reason);
            // Replaceable: an earlier delivery may still be running on a slow worker, and its success must not hide.
            await PublishAsync(job, JobStatus.Failed, null, reason, cancellationToken, replaceable: true).ConfigureAwait(false);
            await lease.DeadLetterAsync(reason, cancellationToken).ConfigureAwait(false);
            return false;
        }

        if (_timeProvider.GetUtcNow() > job.Deadline && !await StartedBeforeDeadlineAsync(lease, cancellationToken).ConfigureAwait(false))
        {
            await PublishAsync(job, JobStatus.Expired, null, $"the job was not started before its deadline {job.Deadline:O}", cancellationToken, replaceable: true).ConfigureAwait(false);
            await lease.CompleteAsync(cancellationToken).ConfigureAwait(false);
            return false;
        }

        if (!await _results.TryStartAsync(job.Id, cancellationToken).ConfigureAwait(false))
        {
            if (await _results.GetAsync(job.Id, cancellationToken).ConfigureAwait(false) is null)
            {
                await FailRecordMissingAsync(lease, cancellationToken).ConfigureAwait(false);
                return false;
            }

            // Cancelled (or already finished by an earlier delivery): nothing to run.
            await lease.CompleteAsync(cancellationToken).ConfigureAwait(false);
            return false;
        }

        return true;
    }

    /// <summary>A delivered job the result store has no record of: evicted, expired, or lost when the store restarted
    /// while the queue kept the job (Service Bus beside Redis). Whether it was cancelled or already ran cannot be known,
    /// so it is not run: it is failed with the reason (a record again, so a poll reads why) and dead-lettered, keeping its
    /// request for an operator to replay.</summary>
    private async ValueTask FailRecordMissingAsync(JobLease lease, CancellationToken cancellationToken)
    {
        const string reason = "the job's record was missing from the result store when a worker received it (evicted, expired, or lost in a restart of the store); it was not run: submit it again";
        Log.RecordMissing(_logger, lease.Job.Id);
        await PublishAsync(lease.Job, JobStatus.Failed, null, reason, cancellationToken).ConfigureAwait(false);
        await lease.DeadLetterAsync(reason, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The deadline is a start-by time: a redelivery whose record says Running was started in time by an
    /// earlier delivery (whose lease expired: a slow or dead worker), so it runs again rather than being mislabelled
    /// expired while that first delivery may still succeed.</summary>
    private async ValueTask<bool> StartedBeforeDeadlineAsync(JobLease lease, CancellationToken cancellationToken) =>
        lease.DeliveryCount > 1
        && await _results.GetAsync(lease.Job.Id, cancellationToken).ConfigureAwait(false) is { Status: JobStatus.Running };

    /// <summary>Runs one model's group inside its spans: the batch's (a child of its job, or linked to each job when it
    /// holds several) and one per job, a child of that job's own trace context.</summary>
    private async Task RunGroupAsync(string model, string version, List<JobLease> leases, DateTimeOffset receivedAt, CancellationToken crash)
    {
        if (!InferenceTracing.Source.HasListeners())
        {
            await RunGroupCoreAsync(model, version, leases, receivedAt, null, crash).ConfigureAwait(false);
            return;
        }

        using var batch = InferenceTracing.StartBatch(model, leases.ConvertAll(l => l.Job), Id);
        var spans = leases.ConvertAll(l => InferenceTracing.StartJob(l.Job, batch));
        try
        {
            await RunGroupCoreAsync(model, version, leases, receivedAt, spans, crash).ConfigureAwait(false);
        }
        finally
        {
            foreach (var span in spans)
            {
                span?.Dispose();
            }
        }
    }

    private async Task RunGroupCoreAsync(
        string model, string version, List<JobLease> leases, DateTimeOffset receivedAt, List<Activity?>? spans, CancellationToken crash)
    {
        // Renewed from the start, the model's load included: a cold load longer than the lease must not free the jobs
        // to another worker.
        using var renewal = LeaseRenewal.Start(this, leases);
        ModelManifest manifest;
        WarmModelLease warm;
        try
        {
            manifest = await _catalog.GetAsync(model, version, crash).ConfigureAwait(false);
            if (manifest.IsTextGeneration)
            {
                // Generations run on beside the loop, which keeps receiving: each joins the model's continuous batch
                // and renews its own lease.
                renewal.Dispose();
                foreach (var lease in leases)
                {
                    StartGeneration(lease, manifest, crash);
                }

                return;
            }

            warm = await _pool.AcquireAsync(manifest, crash).ConfigureAwait(false);
        }
        catch (InferenceException ex) when (ex.Error is InferenceError.NotFound or InferenceError.ModelFailure or InferenceError.BadRequest)
        {
            // Not transient: the model is gone or cannot load (e.g. its weights fail the sha256 check). The log keeps
            // the full text; the job's error (what the client reads) loses local paths when it is published.
            Log.ModelUnusable(_logger, ex, Id, model);
            await FailAllAsync(leases, ex.Message, ex.Error, crash).ConfigureAwait(false);
            return;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !crash.IsCancellationRequested)
        {
            Log.BatchFailed(_logger, ex, Id, model);
            await SettleAllAsync(leases, l => l.AbandonAsync(ex.Message, CancellationToken.None)).ConfigureAwait(false);
            return;
        }

        using (warm)
        {
            var requests = new InferenceRequest[leases.Count];
            var now = _timeProvider.GetUtcNow();
            for (var i = 0; i < leases.Count; i++)
            {
                requests[i] = leases[i].Job.Request;
                _metrics.QueueTime(model, now - leases[i].Job.SubmittedAt);
            }

            IReadOnlyList<BatchItemResult> outcomes;
            var started = Stopwatch.GetTimestamp();
            try
            {
                outcomes = await warm.Model.RunBatchAsync(requests, crash).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !crash.IsCancellationRequested)
            {
                Log.BatchFailed(_logger, ex, Id, model);
                await SettleAllAsync(leases, l => l.AbandonAsync(ex.Message, CancellationToken.None)).ConfigureAwait(false);
                return;
            }
            finally
            {
                renewal.Dispose();
            }

            _metrics.Batch(model, leases.Count, Stopwatch.GetElapsedTime(started));
            var ranAt = _timeProvider.GetUtcNow();
            var settle = new Task[leases.Count];
            for (var i = 0; i < leases.Count; i++)
            {
                var outcome = outcomes[i];
                var lost = renewal.IsLost(leases[i]);
                settle[i] = outcome.Response is not null
                    ? FinishAsync(leases[i], JobStatus.Succeeded, outcome.Response, null, crash, leaseLost: lost, span: spans?[i])
                    : FinishAsync(leases[i], JobStatus.Failed, null, outcome.Error ?? "the model returned no result", crash, outcome.ErrorKind, lost, spans?[i]);
            }

            await Task.WhenAll(settle).ConfigureAwait(false);
            if (warm.Loaded is { } loaded)
            {
                await RecordColdStartAsync(leases, loaded, receivedAt, ranAt, crash).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The group waited for its model to load: records the cold start of its longest-waiting job in the
    /// metrics, the log and the registry (for <c>/status</c>). The worker's own start counts only for a job that was
    /// queued before the worker existed.</summary>
    private async ValueTask RecordColdStartAsync(
        List<JobLease> leases, ModelLoadTimes loaded, DateTimeOffset receivedAt, DateTimeOffset ranAt, CancellationToken cancellationToken)
    {
        var job = leases.MinBy(l => l.Job.SubmittedAt)!.Job;
        var answeredAt = _timeProvider.GetUtcNow();
        var coldStart = new ColdStart
        {
            WorkerId = Id,
            JobId = job.Id,
            Model = job.Model,
            Version = job.Version,
            QueuedAt = job.SubmittedAt,
            AnsweredAt = answeredAt,
            Stages = ColdStart.Stage(job.SubmittedAt,
            [
                (ColdStartStage.ScalerNoticed, _startup?.ScalerNoticedAt),
                (ColdStartStage.ProcessStarted, _startup?.ProcessStartedAt),
                (ColdStartStage.RuntimeReady, _startup?.RuntimeReadyAt),
                (ColdStartStage.Registered, _registeredAt),
                (ColdStartStage.Received, receivedAt),
                (ColdStartStage.ModelFetchedVerified, loaded.WeightsReadyAt),
                (ColdStartStage.SessionCreated, loaded.SessionCreatedAt),
                (ColdStartStage.FirstBatchRun, ranAt),
                (ColdStartStage.Answered, answeredAt),
            ]),
        };
        _metrics.ColdStart(coldStart);
        Log.ColdStart(_logger, Id, coldStart.Model, coldStart.JobId, coldStart.TotalMilliseconds, coldStart.Describe());
        try
        {
            await _registry.RecordColdStartAsync(coldStart, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The record is for people; the job is answered.
            Log.ColdStartNotRecorded(_logger, ex, Id);
        }
    }

    /// <summary>Keeps the leases of a running batch alive (Service Bus lock renewal, a Redis XCLAIM touch, ...).</summary>
    /// <remarks>A lease whose renewal fails is lost: the queue may deliver its job again at any moment. The rule
    /// chosen: the worker settles it knowing it may run twice. The batch runs on (it is one engine call shared with
    /// other jobs), the result is published (the result store keeps one result per job), and the completion is
    /// tried but may fail, as the job may belong to another delivery now. A lost lease is never renewed again:
    /// renewing it could take the job back from the delivery that holds it now. A generation whose lease is lost
    /// steps aside as soon as its stream shows the other delivery writing.</remarks>
    private sealed class LeaseRenewal(InferenceWorker worker, List<JobLease> leases) : IDisposable
    {
        private readonly HashSet<JobLease> _lost = [];
        private ITimer? _timer;
        private int _running;

        /// <summary>Renews every <see cref="WorkerOptions.LeaseRenewInterval"/> until disposed. Renewals run on timer
        /// callbacks, so they keep their schedule even when the engine blocks the worker's thread: a plain timer, no
        /// per-batch task, token or exception on the hot path.</summary>
        public static LeaseRenewal Start(InferenceWorker worker, List<JobLease> leases)
        {
            var renewal = new LeaseRenewal(worker, leases);
            var every = worker._options.LeaseRenewInterval;
            renewal._timer = worker._timeProvider.CreateTimer(static state => ((LeaseRenewal)state!).Fire(), renewal, every, every);
            return renewal;
        }

        public void Dispose() => _timer?.Dispose();

        public bool IsLost(JobLease lease)
        {
            lock (_lost)
            {
                return _lost.Contains(lease);
            }
        }

        public void Fire()
        {
            // Skip a tick rather than pile up renewals behind a slow backing service.
            if (Interlocked.Exchange(ref _running, 1) == 0)
            {
                _ = RenewAsync();
            }
        }

        private async Task RenewAsync()
        {
            try
            {
                foreach (var lease in leases)
                {
                    if (IsLost(lease))
                    {
                        continue;
                    }

                    try
                    {
                        await lease.RenewAsync(CancellationToken.None).ConfigureAwait(false);
                    }
                    catch (Exception ex)
                    {
                        lock (_lost)
                        {
                            _lost.Add(lease);
                        }

                        Log.LeaseLost(worker._logger, ex, worker.Id, lease.Job.Id);
                    }
                }
            }
            finally
            {
                Volatile.Write(ref _running, 0);
            }
        }
    }

    private Task FailAllAsync(List<JobLease> leases, string error, InferenceError kind, CancellationToken cancellationToken) =>
        Task.WhenAll(leases.Select(l => FinishAsync(l, JobStatus.Failed, null, error, cancellationToken, kind)));

    private async Task FinishAsync(
        JobLease lease, JobStatus status, InferenceResponse? response, string? error, CancellationToken cancellationToken, InferenceError? errorKind = null,
        bool leaseLost = false, Activity? span = null)
    {
        if (status != JobStatus.Succeeded)
        {
            span?.SetStatus(ActivityStatusCode.Error, error);
        }

        using (InferenceTracing.StartPublish(lease.Job, span, status))
        {
            await PublishAsync(lease.Job, status, response, error, cancellationToken, errorKind).ConfigureAwait(false);
        }

        try
        {
            await lease.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (leaseLost && ex is not OperationCanceledException)
        {
            // The result is stored; the lease is another delivery's now (or gone), which settles the job itself.
            Log.LostLeaseNotCompleted(_logger, ex, Id, lease.Job.Id);
        }

        Interlocked.Increment(ref _completed);
    }

    private ValueTask PublishAsync(
        InferenceJob job, JobStatus status, InferenceResponse? response, string? error, CancellationToken cancellationToken, InferenceError? errorKind = null,
        bool replaceable = false)
    {
        _metrics.Request(job.Model, status.ToString().ToLowerInvariant());
        // The boundary where engine and store failures become what a client reads: no local file paths past here.
        error = error is null ? null : ClientErrorText.Scrub(error);
        return _results.PublishAsync(new JobRecord
        {
            Id = job.Id,
            Model = job.Model,
            Version = job.Version,
            Status = status,
            SubmittedAt = job.SubmittedAt,
            CompletedAt = _timeProvider.GetUtcNow(),
            Response = response,
            Error = error,
            ErrorKind = status == JobStatus.Failed ? errorKind : null,
            ReplaceableBySuccess = replaceable,
        }, cancellationToken);
    }

    private static async Task SettleAllAsync(List<JobLease> leases, Func<JobLease, ValueTask> settle)
    {
        foreach (var lease in leases)
        {
            await settle(lease).ConfigureAwait(false);
        }
    }

    /// <summary>Reports this worker's status to the registry.</summary>
    public async ValueTask HeartbeatAsync(CancellationToken cancellationToken)
    {
        Interlocked.Exchange(ref _lastHeartbeat, _timeProvider.GetTimestamp());
        var counters = _pool.Counters;
        try
        {
            await _registry.HeartbeatAsync(Snapshot(counters), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.HeartbeatFailed(_logger, ex, Id);
        }

        _ = Placement?.OnHeartbeat(Id);
    }

    private WorkerStatus Snapshot(WarmPoolCounters counters)
    {
        var inFlight = InFlight;
        _reportedBusy = inFlight > 0;
        return new WorkerStatus
        {
            Id = Id,
            Host = Environment.MachineName,
            ExecutionProvider = _pool.ExecutionProvider,
            State = _state,
            InFlight = inFlight,
            RunningSequences = Generating,
            WarmModels = _pool.Snapshot().Select(m => new WarmModelStatus(m.Name, m.Version, m.Bytes)).ToList(),
            RecentModelActivity = _pool.RecentActivity(),
            MemoryUsedBytes = counters.UsedBytes,
            MemoryBudgetBytes = counters.BudgetBytes,
            JobsCompleted = JobsCompleted,
            StartedAt = _startedAt,
            LastHeartbeat = _timeProvider.GetUtcNow(),
        };
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Worker {WorkerId} started on {Provider} (max batch {MaxBatch}, batch delay {DelayMs} ms)")]
        public static partial void Started(ILogger logger, string workerId, string provider, int maxBatch, double delayMs);

        [LoggerMessage(2, LogLevel.Information, "Worker {WorkerId} stopped after {Completed} jobs")]
        public static partial void Stopped(ILogger logger, string workerId, long completed);

        [LoggerMessage(3, LogLevel.Warning, "Worker {WorkerId} could not receive from the queue")]
        public static partial void ReceiveFailed(ILogger logger, Exception exception, string workerId);

        [LoggerMessage(4, LogLevel.Warning, "Worker {WorkerId}: a batch of {Model} failed; its jobs go back to the queue")]
        public static partial void BatchFailed(ILogger logger, Exception exception, string workerId, string model);

        [LoggerMessage(5, LogLevel.Warning, "Job {JobId} dead-lettered: {Reason}")]
        public static partial void DeadLettered(ILogger logger, string jobId, string reason);

        [LoggerMessage(6, LogLevel.Warning, "Worker {WorkerId} heartbeat failed")]
        public static partial void HeartbeatFailed(ILogger logger, Exception exception, string workerId);

        [LoggerMessage(9, LogLevel.Warning, "Worker {WorkerId} could not start or settle a batch; its unsettled jobs come back after the lease time")]
        public static partial void SettleFailed(ILogger logger, Exception exception, string workerId);

        [LoggerMessage(8, LogLevel.Warning, "Worker {WorkerId} could not renew the lease of job {JobId}: the lease is lost and the job may run twice")]
        public static partial void LeaseLost(ILogger logger, Exception exception, string workerId, string jobId);

        [LoggerMessage(12, LogLevel.Information, "Worker {WorkerId} stored the result of job {JobId} but could not complete its lost lease")]
        public static partial void LostLeaseNotCompleted(ILogger logger, Exception exception, string workerId, string jobId);

        [LoggerMessage(13, LogLevel.Warning, "Worker {WorkerId}: model {Model} cannot be used; its jobs fail")]
        public static partial void ModelUnusable(ILogger logger, Exception exception, string workerId, string model);

        [LoggerMessage(7, LogLevel.Warning, "Worker {WorkerId} ended abruptly; its leases will expire and the jobs come back")]
        public static partial void Crashed(ILogger logger, string workerId);

        [LoggerMessage(41, LogLevel.Information, "Worker {WorkerId} cold start of {Model} for job {JobId}: {TotalMs:F1} ms; stages (ms): {Stages}")]
        public static partial void ColdStart(ILogger logger, string workerId, string model, string jobId, double totalMs, string stages);

        [LoggerMessage(42, LogLevel.Warning, "Worker {WorkerId} could not store a cold start's stages in the registry")]
        public static partial void ColdStartNotRecorded(ILogger logger, Exception exception, string workerId);

        [LoggerMessage(40, LogLevel.Error, "Job {JobId} has no record in the result store (evicted, expired or lost); it was failed and dead-lettered instead of run")]
        public static partial void RecordMissing(ILogger logger, string jobId);
    }
}
