using System.Buffers.Binary;
using System.Globalization;
using System.Text;

namespace ServerlessInference.Cli.Tests;

/// <summary>Writes .npy files as <c>numpy.save</c> does: magic, version, header length, the header dict padded with
/// spaces and a newline so data starts at a multiple of 64 bytes.</summary>
public static class NpyWriter
{
    public static byte[] Write(string descr, long[] shape, ReadOnlySpan<byte> data, int major = 1, bool fortran = false)
    {
        var dims = shape.Length == 1 ? $"({shape[0]},)" : $"({string.Join(", ", shape.Select(d => d.ToString(CultureInfo.InvariantCulture)))})";
        var dict = $"{{'descr': '{descr}', 'fortran_order': {(fortran ? "True" : "False")}, 'shape': {dims}, }}";
        var preamble = major == 1 ? 10 : 12;
        var total = preamble + dict.Length + 1;
        var padded = dict + new string(' ', (64 - (total % 64)) % 64) + "\n";
        var header = (major == 3 ? Encoding.UTF8 : Encoding.Latin1).GetBytes(padded);
        var file = new byte[preamble + header.Length + data.Length];
        new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', (byte)major, 0 }.CopyTo(file, 0);
        if (major == 1)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(8), (ushort)header.Length);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(8), (uint)header.Length);
        }

        header.CopyTo(file, preamble);
        data.CopyTo(file.AsSpan(preamble + header.Length));
        return file;
    }

    public static byte[] Floats(params float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        }

        return bytes;
    }
}
