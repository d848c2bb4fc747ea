using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;

namespace ServerlessInference.Bench;

/// <summary>One pre-built request body: the bytes, their content type, and Triton's binary header length when the
/// tensors are binary.</summary>
internal sealed record RequestBody(byte[] Bytes, string ContentType, int? InferenceHeaderLength)
{
    public static RequestBody Create(InferenceRequest request, bool binary)
    {
        var buffer = new ArrayBufferWriter<byte>(1 << 16);
        var headerLength = OipCodec.WriteRequest(buffer, request, binary);
        return new RequestBody(buffer.WrittenSpan.ToArray(), headerLength is null ? "application/json" : "application/octet-stream", headerLength);
    }

    public HttpRequestMessage ToMessage(Uri url)
    {
        var content = new ByteArrayContent(Bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue(ContentType);
        var message = new HttpRequestMessage(HttpMethod.Post, url) { Content = content };
        if (InferenceHeaderLength is int length)
        {
            message.Headers.TryAddWithoutValidation(ParameterNames.InferenceHeaderContentLength, length.ToString(CultureInfo.InvariantCulture));
        }

        return message;
    }
}

/// <summary>What one closed-loop slice measured: latencies (Stopwatch ticks) of the answers inside its window.</summary>
internal sealed record LoadSlice(long[] Latencies, long CompletedWithWarmup, double Seconds, long Errors, IReadOnlyList<string> ErrorSamples);

/// <summary>What a scenario measured over all its slices.</summary>
internal sealed record LoadResult(int Concurrency, double Seconds, long Completed, long CompletedWithWarmup, double PerSecond, double P50Ms, double P99Ms, long Errors, IReadOnlyList<string> ErrorSamples)
{
    public bool Valid => Errors == 0 && Completed > 0;

    public static LoadResult Combine(int concurrency, IReadOnlyList<LoadSlice> slices)
    {
        var sorted = slices.SelectMany(s => s.Latencies).ToArray();
        Array.Sort(sorted);
        var seconds = slices.Sum(s => s.Seconds);
        return new LoadResult(concurrency, seconds, sorted.Length, slices.Sum(s => s.CompletedWithWarmup), seconds > 0 ? sorted.Length / seconds : 0,
            LoadDriver.Percentile(sorted, 0.50), LoadDriver.Percentile(sorted, 0.99), slices.Sum(s => s.Errors), [.. slices.SelectMany(s => s.ErrorSamples).Take(5)]);
    }
}

/// <summary>A closed-loop HTTP load driver: N tasks, each sending its next request as soon as the previous answer
/// arrives. Everything is sent from the first instant; only answers that arrive inside the measurement window (after
/// the warm-up) count toward throughput and latency. Any non-200 answer or exception, warm-up included, is an error.</summary>
internal static class LoadDriver
{
    public static HttpClient CreateClient(int concurrency) => new(new SocketsHttpHandler
    {
        MaxConnectionsPerServer = Math.Max(concurrency, 1),
        UseProxy = false,
        UseCookies = false,
        AutomaticDecompression = DecompressionMethods.None,
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
        PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
    })
    {
        Timeout = TimeSpan.FromSeconds(120),
    };

    /// <summary>Sends each body once and checks the answer parses with the expected output (name and shape).</summary>
    public static async Task VerifyAsync(HttpClient client, Uri url, IReadOnlyList<RequestBody> bodies, string outputName, long[] outputShape)
    {
        foreach (var body in bodies)
        {
            using var message = body.ToMessage(url);
            using var response = await client.SendAsync(message).ConfigureAwait(false);
            var bytes = await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                throw new InvalidOperationException($"POST {url} answered {(int)response.StatusCode}: {Truncate(bytes)}");
            }

            int? headerLength = response.Headers.TryGetValues(ParameterNames.InferenceHeaderContentLength, out var values)
                ? int.Parse(values.First(), CultureInfo.InvariantCulture)
                : null;
            var parsed = OipCodec.ParseResponse(bytes, headerLength);
            var output = parsed.Outputs.FirstOrDefault(o => o.Name == outputName)
                ?? throw new InvalidOperationException($"POST {url}: no output '{outputName}' in the answer");
            if (!output.Shape.SequenceEqual(outputShape) || output.Datatype != TensorDatatype.Fp32)
            {
                throw new InvalidOperationException($"POST {url}: output '{outputName}' is {output.Datatype} [{string.Join(",", output.Shape)}], expected FP32 [{string.Join(",", outputShape)}]");
            }

            var values32 = output.AsSpan<float>();
            foreach (var v in values32)
            {
                if (!float.IsFinite(v))
                {
                    throw new InvalidOperationException($"POST {url}: output '{outputName}' holds a non-finite value");
                }
            }
        }
    }

    public static async Task<LoadSlice> RunAsync(HttpClient client, Uri url, IReadOnlyList<RequestBody> bodies, int concurrency, TimeSpan warmup, TimeSpan duration)
    {
        var started = Stopwatch.GetTimestamp();
        var measureStart = started + ToTicks(warmup);
        var measureEnd = measureStart + ToTicks(duration);
        var errors = 0L;
        var total = 0L;
        var samples = new List<string>();

        async Task<List<long>> LoopAsync(int index)
        {
            var latencies = new List<long>(4096);
            var next = index;
            while (true)
            {
                var sent = Stopwatch.GetTimestamp();
                if (sent >= measureEnd)
                {
                    return latencies;
                }

                var body = bodies[next++ % bodies.Count];
                try
                {
                    using var message = body.ToMessage(url);
                    using var response = await client.SendAsync(message, HttpCompletionOption.ResponseContentRead).ConfigureAwait(false);
                    var received = Stopwatch.GetTimestamp();
                    if (response.StatusCode != HttpStatusCode.OK)
                    {
                        var text = await response.Content.ReadAsByteArrayAsync().ConfigureAwait(false);
                        Fail($"{(int)response.StatusCode} {Truncate(text)}");
                    }
                    else
                    {
                        Interlocked.Increment(ref total);
                        if (received >= measureStart && received <= measureEnd)
                        {
                            latencies.Add(received - sent);
                        }
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
                {
                    Fail($"{ex.GetType().Name}: {ex.Message}");
                }
            }
        }

        void Fail(string what)
        {
            Interlocked.Increment(ref errors);
            lock (samples)
            {
                if (samples.Count < 5)
                {
                    samples.Add(what);
                }
            }
        }

        var loops = new Task<List<long>>[concurrency];
        for (var i = 0; i < concurrency; i++)
        {
            var index = i;
            loops[i] = Task.Run(() => LoopAsync(index));
        }

        var all = await Task.WhenAll(loops).ConfigureAwait(false);
        return new LoadSlice([.. all.SelectMany(l => l)], Interlocked.Read(ref total), duration.TotalSeconds, Interlocked.Read(ref errors), samples);
    }

    /// <summary>Nearest-rank percentile of sorted Stopwatch ticks, in milliseconds.</summary>
    public static double Percentile(long[] sortedTicks, double p)
    {
        if (sortedTicks.Length == 0)
        {
            return double.NaN;
        }

        var rank = (int)Math.Ceiling(p * sortedTicks.Length) - 1;
        return sortedTicks[Math.Clamp(rank, 0, sortedTicks.Length - 1)] * 1000.0 / Stopwatch.Frequency;
    }

    private static long ToTicks(TimeSpan span) => (long)(span.TotalSeconds * Stopwatch.Frequency);

    private static string Truncate(byte[] bytes)
    {
        var text = System.Text.Encoding.UTF8.GetString(bytes, 0, Math.Min(bytes.Length, 200));
        return bytes.Length > 200 ? text + "…" : text;
    }
}
