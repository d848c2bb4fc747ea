using System.Diagnostics.Metrics;

namespace ServerlessInference.Telemetry;

/// <summary>The platform's instruments (meter <c>ServerlessInference</c>), exported as Prometheus text on <c>/metrics</c>.</summary>
public sealed class InferenceMetrics : IDisposable
{
    public const string MeterName = "ServerlessInference";

    /// <summary>The <c>model</c> label of a request for a model the catalog does not know: names from URLs never become
    /// labels of their own, so made-up names cannot grow the series without bound.</summary>
    public const string UnknownModel = "_unknown";

    private readonly Meter _meter;
    private readonly Counter<long> _requests;
    private readonly Histogram<int> _batchSize;
    private readonly Histogram<double> _queueTime;
    private readonly Histogram<double> _computeTime;
    private readonly Histogram<double> _timeToFirstToken;
    private readonly Histogram<double> _interTokenLatency;
    private readonly Counter<long> _generatedTokens;
    private readonly Histogram<double> _coldStart;
    private readonly Histogram<double> _coldStartStage;
    private readonly Counter<long> _variantRequests;
    private readonly Counter<long> _variantSwitches;
    private readonly Counter<long> _modelLoads;
    private readonly Counter<long> _modelEvictions;
    private volatile Func<IReadOnlyList<(string Model, Generation.GenerationCounters Counters)>>? _generation;
    private long _queued;
    private long _inFlight;

    public InferenceMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        _requests = _meter.CreateCounter<long>("inference_requests", "{request}", "Inference requests by model and outcome");
        _batchSize = _meter.CreateHistogram<int>(
            "inference_batch_size", "{request}", "Requests per engine call",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128] });
        _queueTime = _meter.CreateHistogram<double>(
            "inference_queue_time", "s", "Time from submission to the start of the engine call",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
        _computeTime = _meter.CreateHistogram<double>(
            "inference_compute_time", "s", "Engine time of a batch",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        _timeToFirstToken = _meter.CreateHistogram<double>(
            "inference_time_to_first_token", "s", "Time from a generation's submission to its first token (queue and prefill included)",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] });
        _interTokenLatency = _meter.CreateHistogram<double>(
            "inference_inter_token_latency", "s", "Time between two tokens of one generation",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] });
        _coldStart = _meter.CreateHistogram<double>(
            "inference_cold_start", "s", "Time from the submission of a job that waited for a model load (or a worker) to its answer",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30] });
        _coldStartStage = _meter.CreateHistogram<double>(
            "inference_cold_start_stage", "s", "One stage of a cold start (label stage: scaler_noticed, process_started, runtime_ready, registered, received, model_fetched_verified, session_created, first_batch_run, answered)",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        _variantRequests = _meter.CreateCounter<long>("inference_variant_requests", "{request}",
            "Requests the gateway sent to a quantized variant (label variant), asked for or switched to by queue depth");
        _variantSwitches = _meter.CreateCounter<long>("inference_variant_switches", "{switch}",
            "Times a model's queue-depth rule switched its requests to a variant (to=variant) or back (to=original)");
        _generatedTokens = _meter.CreateCounter<long>("inference_generated_tokens", "{token}", "Tokens generated (tokens/s is its rate)");
        _modelLoads = _meter.CreateCounter<long>("inference_model_loads", "{load}", "Model loads a worker's warm pool started (a failed load counts too)");
        _modelEvictions = _meter.CreateCounter<long>("inference_model_evictions", "{eviction}", "Models a worker's warm pool evicted to make room");
        _meter.CreateObservableGauge("inference_running_sequences", () => Generation(c => c.RunningSequences), "{sequence}",
            "Sequences in a text-generation model's running batch");
        _meter.CreateObservableGauge("inference_waiting_sequences", () => Generation(c => c.WaitingSequences), "{sequence}",
            "Sequences waiting for room in a text-generation model's batch (KV budget or max sequences)");
        _meter.CreateObservableGauge("inference_kv_cache_bytes", () => Generation(c => c.KvBytesInUse), "By",
            "KV-cache bytes a text-generation model holds now");
        _meter.CreateObservableCounter("inference_prefix_cache_hit_tokens", () => Generation(c => c.PrefixCacheHitTokens), "{token}",
            "Prompt tokens whose KV came from the prefix cache (hit rate: its rate over that of inference_prefix_cache_prompt_tokens)");
        _meter.CreateObservableCounter("inference_prefix_cache_prompt_tokens", () => Generation(c => c.PrefixCacheLookupTokens), "{token}",
            "Prompt tokens looked up in the prefix cache");
        _meter.CreateObservableGauge("inference_prefix_cache_blocks", () => Generation(c => c.PrefixCacheBlocks), "{block}",
            "Blocks in a text-generation model's prefix cache now");
        _meter.CreateObservableCounter("inference_prefix_cache_evictions", () => Generation(c => c.PrefixCacheEvictions), "{block}",
            "Prefix-cache blocks evicted for room");
        _meter.CreateObservableCounter("inference_speculative_proposed_tokens", () => Generation(c => c.SpeculativeProposedTokens), "{token}",
            "Tokens a speculative proposer (draft model or prompt lookup) put before a text-generation model for verification");
        _meter.CreateObservableCounter("inference_speculative_accepted_tokens", () => Generation(c => c.SpeculativeAcceptedTokens), "{token}",
            "Proposed tokens the model's verification kept (accepted / proposed is the acceptance rate)");
        _meter.CreateObservableGauge("inference_queue_depth", () => new[]
        {
            new Measurement<long>(Interlocked.Read(ref _queued), new KeyValuePair<string, object?>("state", "queued")),
            new Measurement<long>(Interlocked.Read(ref _inFlight), new KeyValuePair<string, object?>("state", "in_flight")),
        }, "{job}", "Jobs waiting and jobs held by workers, as last read by the scaler");
    }

    public void Request(string model, string outcome) =>
        _requests.Add(1, new KeyValuePair<string, object?>("model", model), new KeyValuePair<string, object?>("outcome", outcome));

    public void Batch(string model, int size, TimeSpan compute)
    {
        var tag = new KeyValuePair<string, object?>("model", model);
        _batchSize.Record(size, tag);
        _computeTime.Record(compute.TotalSeconds, tag);
    }

    /// <summary>A cold start: its total and each of its stages.</summary>
    public void ColdStart(Workers.ColdStart coldStart)
    {
        var model = new KeyValuePair<string, object?>("model", coldStart.Model);
        _coldStart.Record(coldStart.TotalMilliseconds / 1000, model);
        foreach (var stage in coldStart.Stages)
        {
            _coldStartStage.Record(stage.Milliseconds / 1000, model, new KeyValuePair<string, object?>("stage", stage.Stage));
        }
    }

    public void VariantRequest(string model, string variant) =>
        _variantRequests.Add(1, new KeyValuePair<string, object?>("model", model), new KeyValuePair<string, object?>("variant", variant));

    public void VariantSwitch(string model, string variant, bool toVariant) =>
        _variantSwitches.Add(1, new KeyValuePair<string, object?>("model", model), new KeyValuePair<string, object?>("variant", variant),
            new KeyValuePair<string, object?>("to", toVariant ? "variant" : "original"));

    /// <summary>A warm pool started loading <paramref name="model"/> (a name from a manifest, never from a URL).</summary>
    public void ModelLoaded(string model) => _modelLoads.Add(1, new KeyValuePair<string, object?>("model", model));

    /// <summary>A warm pool evicted <paramref name="model"/> to make room.</summary>
    public void ModelEvicted(string model) => _modelEvictions.Add(1, new KeyValuePair<string, object?>("model", model));

    public void QueueTime(string model, TimeSpan waited) =>
        _queueTime.Record(waited.TotalSeconds, new KeyValuePair<string, object?>("model", model));

    /// <summary>Where the generation gauges read the loaded text-generation models from (the worker's warm pool).</summary>
    public void ObserveGeneration(Func<IReadOnlyList<(string Model, Generation.GenerationCounters Counters)>> models) => _generation = models;

    public void FirstToken(string model, TimeSpan sinceSubmission) =>
        _timeToFirstToken.Record(sinceSubmission.TotalSeconds, new KeyValuePair<string, object?>("model", model));

    /// <summary>One token of a generation; <paramref name="sincePrevious"/> is null for its first.</summary>
    public void Token(string model, TimeSpan? sincePrevious)
    {
        var tag = new KeyValuePair<string, object?>("model", model);
        _generatedTokens.Add(1, tag);
        if (sincePrevious is { } gap)
        {
            _interTokenLatency.Record(gap.TotalSeconds, tag);
        }
    }

    private IEnumerable<Measurement<long>> Generation(Func<Generation.GenerationCounters, long> read) =>
        _generation?.Invoke().Select(m => new Measurement<long>(read(m.Counters), new KeyValuePair<string, object?>("model", m.Model))) ?? [];

    public void Depth(long queued, long inFlight)
    {
        Interlocked.Exchange(ref _queued, queued);
        Interlocked.Exchange(ref _inFlight, inFlight);
    }

    public void Dispose() => _meter.Dispose();
}
