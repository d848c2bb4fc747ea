using System.Buffers;

namespace ServerlessInference.Jobs;

/// <summary>A job as the out-of-process queues carry it: the metadata as plain values, and the request as OIP
/// bytes with Triton's binary tensor extension (JSON header of <see cref="HeaderLength"/> bytes, then raw tensors).</summary>
/// <remarks>Times are UTC ticks, so every queue stores them the same way and no time zone travels.
/// <see cref="PrefixKey"/> is <see cref="InferenceJob.PrefixKey"/> (null when the job has none, and in entries written
/// before it existed).</remarks>
public readonly record struct EncodedJob(
    string Id,
    string Model,
    string Version,
    long SubmittedUtcTicks,
    long DeadlineUtcTicks,
    int? HeaderLength,
    ReadOnlyMemory<byte> Request,
    string? PrefixKey = null);

/// <summary>Encodes <see cref="InferenceJob"/>s for the Redis and Service Bus queues, in one place so both carry the
/// same bytes. Thread-safe.</summary>
public static class InferenceJobCodec
{
    /// <summary>Encodes <paramref name="job"/>; tensors travel as raw bytes, not JSON numbers.</summary>
    public static EncodedJob Encode(InferenceJob job)
    {
        var request = new ArrayBufferWriter<byte>(EncodedSizeHint(job.Request));
        var headerLength = OipCodec.WriteRequest(request, job.Request, binary: true);
        return new EncodedJob(job.Id, job.Model, job.Version, job.SubmittedAt.UtcTicks, job.Deadline.UtcTicks, headerLength, request.WrittenMemory, job.PrefixKey);
    }

    /// <summary>Encodes <paramref name="job"/> into a pooled buffer; the result's request is valid until
    /// <paramref name="buffer"/> is released.</summary>
    public static EncodedJob Encode(InferenceJob job, out PooledBufferWriter buffer)
    {
        buffer = new PooledBufferWriter(EncodedSizeHint(job.Request));
        var headerLength = OipCodec.WriteRequest(buffer, job.Request, binary: true);
        return new EncodedJob(job.Id, job.Model, job.Version, job.SubmittedAt.UtcTicks, job.Deadline.UtcTicks, headerLength, buffer.WrittenMemory, job.PrefixKey);
    }

    /// <summary>Decodes a job that <see cref="Encode"/> wrote.</summary>
    /// <remarks>The request's binary tensors are slices of <see cref="EncodedJob.Request"/>, which must not be reused.</remarks>
    /// <exception cref="FormatException">The metadata or the request is not a valid job (the message says which).</exception>
    public static InferenceJob Decode(in EncodedJob encoded)
    {
        Require(encoded.Id, "id");
        Require(encoded.Model, "model");
        Require(encoded.Version, "version");
        var submitted = Instant(encoded.SubmittedUtcTicks, "submitted time");
        var deadline = Instant(encoded.DeadlineUtcTicks, "deadline");
        InferenceRequest request;
        try
        {
            request = OipCodec.ParseRequest(encoded.Request, encoded.HeaderLength);
        }
        catch (InferenceException ex)
        {
            throw new FormatException($"the job's request is not a valid inference request: {ex.Message}", ex);
        }

        return new InferenceJob
        {
            Id = encoded.Id,
            Model = encoded.Model,
            Version = encoded.Version,
            SubmittedAt = submitted,
            Deadline = deadline,
            Request = request,
            PrefixKey = string.IsNullOrEmpty(encoded.PrefixKey) ? null : encoded.PrefixKey,
        };
    }

    /// <summary>Room for the encoded request: its tensors plus the JSON header, so the buffer never regrows (a 600 KB
    /// image would otherwise be copied through several large-object-heap arrays).</summary>
    private static int EncodedSizeHint(InferenceRequest request)
    {
        long size = 1024;
        foreach (var input in request.Inputs)
        {
            size += 256 + input.Data.Length + (input.BytesData?.Sum(e => (long)e.Length + 4) ?? 0);
        }

        return (int)Math.Min(size, Array.MaxLength);
    }

    private static void Require(string? value, string what)
    {
        if (string.IsNullOrEmpty(value))
        {
            throw new FormatException($"the job has no {what}");
        }
    }

    private static DateTimeOffset Instant(long utcTicks, string what) =>
        utcTicks is >= 0 and <= 3155378975999999999 // DateTimeOffset.MaxValue.UtcTicks
            ? new DateTimeOffset(utcTicks, TimeSpan.Zero)
            : throw new FormatException($"the job's {what} is out of range ({utcTicks} ticks)");
}
