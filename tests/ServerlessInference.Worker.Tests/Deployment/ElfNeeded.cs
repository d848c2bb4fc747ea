using System.Text;

namespace ServerlessInference.Worker.Tests.Deployment;

/// <summary>The <c>DT_NEEDED</c> entries of an ELF64 little-endian shared library (what <c>readelf -d</c> lists as
/// "Shared library"), read from its section headers and dynamic section only, not the whole file.</summary>
internal static class ElfNeeded
{
    private const uint SectionTypeDynamic = 6;
    private const long TagNeeded = 1;

    public static IReadOnlyList<string> Read(string path)
    {
        using var stream = File.OpenRead(path);
        using var reader = new BinaryReader(stream);
        var ident = reader.ReadBytes(16);
        if (ident.Length < 16 || ident[0] != 0x7f || ident[1] != (byte)'E' || ident[2] != (byte)'L' || ident[3] != (byte)'F' || ident[4] != 2 || ident[5] != 1)
        {
            throw new InvalidDataException($"{path} is not a 64-bit little-endian ELF file");
        }

        stream.Position = 0x28;
        var sectionHeaders = reader.ReadInt64();
        stream.Position = 0x3A;
        var sectionHeaderSize = reader.ReadUInt16();
        var sectionCount = reader.ReadUInt16();

        var sections = new (uint Type, long Offset, long Size, uint Link)[sectionCount];
        for (var i = 0; i < sectionCount; i++)
        {
            stream.Position = sectionHeaders + ((long)i * sectionHeaderSize);
            reader.ReadUInt32(); // name
            var type = reader.ReadUInt32();
            reader.ReadUInt64(); // flags
            reader.ReadUInt64(); // address
            var offset = reader.ReadInt64();
            var size = reader.ReadInt64();
            var link = reader.ReadUInt32();
            sections[i] = (type, offset, size, link);
        }

        var dynamic = sections.Single(s => s.Type == SectionTypeDynamic);
        var strings = sections[dynamic.Link];
        stream.Position = strings.Offset;
        var table = reader.ReadBytes(checked((int)strings.Size));

        var needed = new List<string>();
        stream.Position = dynamic.Offset;
        for (long read = 0; read < dynamic.Size; read += 16)
        {
            var tag = reader.ReadInt64();
            var value = reader.ReadInt64();
            if (tag == 0)
            {
                break;
            }

            if (tag == TagNeeded)
            {
                var end = Array.IndexOf(table, (byte)0, (int)value);
                needed.Add(Encoding.ASCII.GetString(table, (int)value, end - (int)value));
            }
        }

        return needed;
    }
}
