using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Threading.Channels;
using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Bench.Baseline;
using ServerlessInference.Onnx.Demo;

// The smallest server a user would write instead of adopting the platform: one model, one channel, one batching loop.
var builder = WebApplication.CreateBuilder(args);
builder.Services.AddSingleton<MlpBatcher>();
builder.Services.AddHostedService(sp => sp.GetRequiredService<MlpBatcher>());

var app = builder.Build();
app.MapGet("/v2/health/ready", () => Results.Ok());
app.MapGet("/stats", (MlpBatcher batcher) => Results.Ok(new { batches = batcher.Batches, rows = batcher.Rows })); // for the bench's mean batch size
app.MapPost($"/v2/models/{MlpBenchModel.Name}/infer", async (HttpContext context, MlpBatcher batcher) =>
{
    var request = context.Request;
    byte[] body;
    if (request.ContentLength is long length)
    {
        body = new byte[length];
        await request.Body.ReadExactlyAsync(body, context.RequestAborted);
    }
    else
    {
        using var copy = new MemoryStream();
        await request.Body.CopyToAsync(copy, context.RequestAborted);
        body = copy.ToArray();
    }

    int? headerLength = int.TryParse(request.Headers[ParameterNames.InferenceHeaderContentLength], NumberStyles.None, CultureInfo.InvariantCulture, out var h) ? h : null;
    InferenceRequest parsed;
    try
    {
        parsed = OipCodec.ParseRequest(body, headerLength);
    }
    catch (InferenceException ex)
    {
        return Results.BadRequest(new { error = ex.Message });
    }

    var input = parsed.Inputs[0];
    if (parsed.Inputs.Count != 1 || input.Name != MlpBenchModel.InputName || input.Datatype != TensorDatatype.Fp32
        || input.Shape is not [var rows and >= 1 and <= MlpBatcher.MaxBatch, MlpBatcher.InputWidth])
    {
        return Results.BadRequest(new { error = $"expected one FP32 input '{MlpBenchModel.InputName}' of shape [1..{MlpBatcher.MaxBatch}, {MlpBatcher.InputWidth}]" });
    }

    var output = await batcher.InferAsync(input.Data, (int)rows);
    var response = new InferenceResponse
    {
        ModelName = MlpBenchModel.Name,
        ModelVersion = MlpBenchModel.Version,
        Id = parsed.Id,
        Outputs = [InferTensor.Create(MlpBenchModel.OutputName, [rows, MlpBatcher.OutputWidth], output)],
    };
    var buffer = new ArrayBufferWriter<byte>(1024);
    var binaryHeader = OipCodec.WriteResponse(buffer, response, parsed.WantsBinaryOutput);
    if (binaryHeader is int json)
    {
        context.Response.Headers[ParameterNames.InferenceHeaderContentLength] = json.ToString(CultureInfo.InvariantCulture);
    }

    return Results.Bytes(buffer.WrittenMemory, binaryHeader is null ? "application/json" : "application/octet-stream");
});
app.Run();

namespace ServerlessInference.Bench.Baseline
{
    /// <summary>Collects requests in a channel; one loop drains up to <see cref="MaxBatch"/> rows at once (no added
    /// wait), runs them as one ONNX Runtime call and completes each request with its slice of the output.</summary>
    internal sealed class MlpBatcher : BackgroundService
    {
        public const int MaxBatch = 32;
        public const int InputWidth = 512;
        public const int OutputWidth = 16;

        private readonly Channel<Pending> _channel = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });
        private readonly InferenceSession _session;
        private long _batches;
        private long _rows;

        public MlpBatcher()
        {
            // Same thread settings as the platform: one shared intra-op pool (a thread per core), spinning off.
            using var threading = new OrtThreadingOptions
            {
                GlobalIntraOpNumThreads = Environment.ProcessorCount,
                GlobalInterOpNumThreads = 1,
                GlobalSpinControl = false,
            };
            var envOptions = new EnvironmentCreationOptions { logId = "baseline", logLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_WARNING, threadOptions = threading };
            OrtEnv.CreateInstanceWithOptions(ref envOptions);
            using var sessionOptions = new Microsoft.ML.OnnxRuntime.SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
            sessionOptions.DisablePerSessionThreads();
            _session = new InferenceSession(MlpBenchModel.Build(), sessionOptions);
        }

        public long Batches => Interlocked.Read(ref _batches);

        public long Rows => Interlocked.Read(ref _rows);

        public Task<float[]> InferAsync(ReadOnlyMemory<byte> input, int rows)
        {
            var pending = new Pending(input, rows, new TaskCompletionSource<float[]>(TaskCreationOptions.RunContinuationsAsynchronously));
            _channel.Writer.TryWrite(pending);
            return pending.Done.Task;
        }

        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            await Task.Yield();
            var reader = _channel.Reader;
            var batch = new List<Pending>(MaxBatch);
            using var runOptions = new RunOptions();
            while (await reader.WaitToReadAsync(stoppingToken))
            {
                var rows = 0;
                while (reader.TryPeek(out var next) && rows + next.Rows <= MaxBatch && reader.TryRead(out next))
                {
                    batch.Add(next);
                    rows += next.Rows;
                }

                try
                {
                    var input = new float[rows * InputWidth];
                    var offset = 0;
                    foreach (var item in batch)
                    {
                        MemoryMarshal.Cast<byte, float>(item.Input.Span).CopyTo(input.AsSpan(offset));
                        offset += item.Rows * InputWidth;
                    }

                    var output = new float[rows * OutputWidth];
                    using (var inputValue = OrtValue.CreateTensorValueFromMemory(input, [rows, InputWidth]))
                    using (var outputValue = OrtValue.CreateTensorValueFromMemory(output, [rows, OutputWidth]))
                    {
                        _session.Run(runOptions, [MlpBenchModel.InputName], [inputValue], [MlpBenchModel.OutputName], [outputValue]);
                    }

                    Interlocked.Increment(ref _batches);
                    Interlocked.Add(ref _rows, rows);
                    offset = 0;
                    foreach (var item in batch)
                    {
                        item.Done.TrySetResult(output.AsSpan(offset, item.Rows * OutputWidth).ToArray());
                        offset += item.Rows * OutputWidth;
                    }
                }
                catch (Exception ex)
                {
                    foreach (var item in batch)
                    {
                        item.Done.TrySetException(ex);
                    }
                }

                batch.Clear();
            }
        }

        public override void Dispose()
        {
            _session.Dispose();
            base.Dispose();
        }

        private sealed record Pending(ReadOnlyMemory<byte> Input, int Rows, TaskCompletionSource<float[]> Done);
    }
}
