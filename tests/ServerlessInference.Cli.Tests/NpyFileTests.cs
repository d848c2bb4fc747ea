using System.Text;
using ServerlessInference.Cli.Protocol;

namespace ServerlessInference.Cli.Tests;

public sealed class NpyFileTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Parse_Float32Matrix_EveryVersion_ReadsShapeTypeAndData(int major)
    {
        var data = NpyWriter.Floats(1, 2, 3, 4, 5, 6);
        var file = NpyWriter.Write("<f4", [2, 3], data, major);

        var array = NpyFile.Parse(file);

        Assert.Equal(TensorDatatype.Fp32, array.Datatype);
        Assert.Equal([2L, 3L], array.Shape);
        Assert.Equal(6, array.ElementCount);
        Assert.Equal(data, array.Data.ToArray());
    }

    [Fact]
    public void Parse_NumpySaveOutput_Int64Vector()
    {
        // The bytes numpy.save writes for np.array([1, 2, 3], dtype='<i8'): a 118-byte header so the data starts at 128.
        var header = "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }";
        var padded = header + new string(' ', 128 - 10 - header.Length - 1) + "\n";
        var file = new byte[128 + 24];
        new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, 118, 0 }.CopyTo(file, 0);
        Encoding.Latin1.GetBytes(padded).CopyTo(file, 10);
        for (var i = 0; i < 3; i++)
        {
            file[128 + (i * 8)] = (byte)(i + 1);
        }

        var array = NpyFile.Parse(file);

        Assert.Equal(TensorDatatype.Int64, array.Datatype);
        Assert.Equal([3L], array.Shape);
        Assert.Equal([1L, 2L, 3L], System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(array.Data.Span).ToArray());
    }

    [Theory]
    [InlineData("|b1", TensorDatatype.Bool, 1)]
    [InlineData("|u1", TensorDatatype.Uint8, 1)]
    [InlineData("|i1", TensorDatatype.Int8, 1)]
    [InlineData("<u2", TensorDatatype.Uint16, 2)]
    [InlineData("<i2", TensorDatatype.Int16, 2)]
    [InlineData("<u4", TensorDatatype.Uint32, 4)]
    [InlineData("<i4", TensorDatatype.Int32, 4)]
    [InlineData("<u8", TensorDatatype.Uint64, 8)]
    [InlineData("<i8", TensorDatatype.Int64, 8)]
    [InlineData("<f2", TensorDatatype.Fp16, 2)]
    [InlineData("<f8", TensorDatatype.Fp64, 8)]
    [InlineData("=f4", TensorDatatype.Fp32, 4)]
    [InlineData(">u1", TensorDatatype.Uint8, 1)]
    public void Dtype_LittleEndianOrByteSized_MapsToTheProtocol(string descr, TensorDatatype datatype, int size)
    {
        var array = NpyFile.Parse(NpyWriter.Write(descr, [2], new byte[2 * size]));

        Assert.Equal(datatype, array.Datatype);
        Assert.Equal(2 * size, array.Data.Length);
    }

    [Fact]
    public void Parse_Scalar_OneElement()
    {
        var array = NpyFile.Parse(NpyWriter.Write("<f4", [], NpyWriter.Floats(7)));

        Assert.Empty(array.Shape);
        Assert.Equal(1, array.ElementCount);
    }

    [Fact]
    public void Parse_FortranOrderVector_IsTheSameAsC()
    {
        var array = NpyFile.Parse(NpyWriter.Write("<f4", [3], NpyWriter.Floats(1, 2, 3), fortran: true));

        Assert.Equal([3L], array.Shape);
    }

    [Theory]
    [InlineData(">f4", "big-endian")]
    [InlineData("<c8", "no protocol datatype")]
    [InlineData("|O", "not supported")]
    [InlineData("<U5", "no protocol datatype")]
    public void Parse_UnsupportedDtype_SaysWhy(string descr, string reason)
    {
        var ex = Assert.Throws<FormatException>(() => NpyFile.Parse(NpyWriter.Write(descr, [1], new byte[8])));

        Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_FortranOrderMatrix_Refused()
    {
        var ex = Assert.Throws<FormatException>(() => NpyFile.Parse(NpyWriter.Write("<f4", [2, 2], NpyWriter.Floats(1, 2, 3, 4), fortran: true)));

        Assert.Contains("Fortran", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_DataShorterThanShape_Refused()
    {
        var ex = Assert.Throws<FormatException>(() => NpyFile.Parse(NpyWriter.Write("<f4", [2, 3], NpyWriter.Floats(1, 2, 3))));

        Assert.Contains("needs 24 data bytes, the file has 12", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_NotNpy_Refused()
    {
        var ex = Assert.Throws<FormatException>(() => NpyFile.Parse(Encoding.ASCII.GetBytes("{\"inputs\": []}")));

        Assert.Contains("magic", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_HeaderLongerThanFile_Refused()
    {
        var file = NpyWriter.Write("<f4", [1], NpyWriter.Floats(1));
        file[8] = 0xff;
        file[9] = 0xff;

        Assert.Throws<FormatException>(() => NpyFile.Parse(file));
    }

    [Fact]
    public void Parse_StructuredDtype_Refused()
    {
        var header = "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }";
        var file = new byte[10 + header.Length + 1 + 4];
        new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, (byte)(header.Length + 1), 0 }.CopyTo(file, 0);
        Encoding.Latin1.GetBytes(header + "\n").CopyTo(file, 10);

        var ex = Assert.Throws<FormatException>(() => NpyFile.Parse(file));

        Assert.Contains("structured", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_Version4_Refused()
    {
        var file = NpyWriter.Write("<f4", [1], NpyWriter.Floats(1));
        file[6] = 4;

        var ex = Assert.Throws<FormatException>(() => NpyFile.Parse(file));

        Assert.Contains("version 4.0", ex.Message, StringComparison.Ordinal);
    }
}
