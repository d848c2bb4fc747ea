using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;

namespace ServerlessInference.Cli.Bench;

/// <summary>What one bench run measured.</summary>
public sealed record LoadResult(int Concurrency, int Requests, int Succeeded, double Seconds, LatencySummary Latency, IReadOnlyDictionary<int, int> StatusCodes, string? FirstError)
{
    public int Failed => Requests - Succeeded;

    public double RequestsPerSecond => Seconds > 0 ? Requests / Seconds : 0;
}

/// <summary>A closed loop: <c>concurrency</c> callers, each sending its next request as soon as its last one is
/// answered, until a number of requests has been sent or a time is up. Latency is measured per request, from send to
/// the whole body read.</summary>
public sealed class LoadRun(HttpClient http, HttpMethod method, Uri target, byte[]? body, IReadOnlyList<KeyValuePair<string, IEnumerable<string>>> contentHeaders)
{
    /// <summary>Runs the loop. Exactly one of <paramref name="requests"/> and <paramref name="duration"/> bounds it.</summary>
    /// <param name="progress">Called after every answer with the number answered so far.</param>
    public async Task<LoadResult> RunAsync(int concurrency, int? requests, TimeSpan? duration, Action<int> progress, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(concurrency, 1);
        if (requests is null == duration is null)
        {
            throw new ArgumentException("bound the run by requests or by duration, not both or neither");
        }

        var latencies = new ConcurrentBag<double>();
        var codes = new ConcurrentDictionary<int, int>();
        string? firstError = null;
        var issued = 0;
        var answered = 0;
        var succeeded = 0;
        var clock = Stopwatch.StartNew();
        var end = duration is { } d ? d : TimeSpan.MaxValue;

        async Task CallerAsync()
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                if (requests is int limit ? Interlocked.Increment(ref issued) > limit : clock.Elapsed >= end)
                {
                    return;
                }

                var started = Stopwatch.GetTimestamp();
                int code;
                string? error = null;
                try
                {
                    using var request = new HttpRequestMessage(method, target);
                    if (body is not null)
                    {
                        request.Content = new ByteArrayContent(body);
                        foreach (var header in contentHeaders)
                        {
                            request.Content.Headers.TryAddWithoutValidation(header.Key, header.Value);
                        }
                    }

                    using var response = await http.SendAsync(request, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
                    var text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
                    code = (int)response.StatusCode;
                    if (response.IsSuccessStatusCode && code != 202)
                    {
                        Interlocked.Increment(ref succeeded);
                    }
                    else
                    {
                        error = $"{code}: {GatewayClient.ErrorText(text)}";
                    }
                }
                catch (HttpRequestException ex)
                {
                    code = 0;
                    error = ex.Message;
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return;
                }

                latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                codes.AddOrUpdate(code, 1, (_, n) => n + 1);
                if (error is not null)
                {
                    Interlocked.CompareExchange(ref firstError, error, null);
                }

                progress(Interlocked.Increment(ref answered));
            }
        }

        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(CallerAsync, CancellationToken.None))).ConfigureAwait(false);
        var seconds = clock.Elapsed.TotalSeconds;
        return new LoadResult(concurrency, answered, succeeded, seconds, LatencySummary.From(latencies), new Dictionary<int, int>(codes), firstError);
    }

    /// <summary>The content headers to send with every request (content type, Triton's header length).</summary>
    public static IReadOnlyList<KeyValuePair<string, IEnumerable<string>>> HeadersOf(HttpContentHeaders headers) =>
        [.. headers.Where(h => !string.Equals(h.Key, "Content-Length", StringComparison.OrdinalIgnoreCase))];
}
