using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;

namespace ServerlessInference.Models;

/// <summary>What the file system says about a file without reading it: device, inode, size, modification time and
/// status-change time (ctime), read in one <c>statx(2)</c> call.</summary>
/// <remarks>ctime is the part that makes this worth keeping: the kernel sets it to the current time on every write,
/// truncate, rename, chmod and <c>utimes</c>, and no user-space call can set it back. So an in-place rewrite that
/// keeps the length and restores the mtime still moves ctime. It does not catch a change made within the same
/// timestamp tick as the read (the kernel's coarse clock, a few milliseconds), a change of the system clock, writes to
/// the block device under the file system, or media corruption. Linux only (glibc's <c>statx</c>); elsewhere
/// <see cref="TryRead"/> returns null.</remarks>
internal readonly partial record struct FileIdentity(ulong Device, ulong Inode, long Length, long MtimeSeconds, uint MtimeNanoseconds, long CtimeSeconds, uint CtimeNanoseconds)
{
    private const int AtFdCwd = -100;
    private const uint StatxBasicStats = 0x7ff;
    private const uint Needed = 0x40 /* MTIME */ | 0x80 /* CTIME */ | 0x100 /* INO */ | 0x200 /* SIZE */;
    private static int s_unavailable;

    /// <summary>Reads the identity of <paramref name="path"/>; null where <c>statx</c> is not available or fails.</summary>
    public static FileIdentity? TryRead(string path)
    {
        if (!OperatingSystem.IsLinux() || Volatile.Read(ref s_unavailable) != 0)
        {
            return null;
        }

        // struct statx is 256 bytes with the same layout on every Linux architecture.
        Span<byte> buffer = stackalloc byte[256];
        try
        {
            int rc;
            unsafe
            {
                fixed (byte* p = buffer)
                {
                    rc = Statx(AtFdCwd, path, 0, StatxBasicStats, p);
                }
            }

            if (rc != 0)
            {
                return null;
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            Volatile.Write(ref s_unavailable, 1);
            return null;
        }

        var mask = BinaryPrimitives.ReadUInt32LittleEndian(buffer);
        if ((mask & Needed) != Needed)
        {
            return null;
        }

        return new FileIdentity(
            Device: ((ulong)ReadU32(buffer, 136) << 32) | ReadU32(buffer, 140),
            Inode: ReadU64(buffer, 32),
            Length: (long)ReadU64(buffer, 40),
            MtimeSeconds: (long)ReadU64(buffer, 112),
            MtimeNanoseconds: ReadU32(buffer, 120),
            CtimeSeconds: (long)ReadU64(buffer, 96),
            CtimeNanoseconds: ReadU32(buffer, 104));

        static uint ReadU32(ReadOnlySpan<byte> b, int offset) => BitConverter.IsLittleEndian
            ? BinaryPrimitives.ReadUInt32LittleEndian(b[offset..]) : BinaryPrimitives.ReadUInt32BigEndian(b[offset..]);

        static ulong ReadU64(ReadOnlySpan<byte> b, int offset) => BitConverter.IsLittleEndian
            ? BinaryPrimitives.ReadUInt64LittleEndian(b[offset..]) : BinaryPrimitives.ReadUInt64BigEndian(b[offset..]);
    }

    /// <summary>One line of text: the fields separated by spaces.</summary>
    public string Format() => string.Join(' ',
        Device.ToString(CultureInfo.InvariantCulture), Inode.ToString(CultureInfo.InvariantCulture), Length.ToString(CultureInfo.InvariantCulture),
        MtimeSeconds.ToString(CultureInfo.InvariantCulture), MtimeNanoseconds.ToString(CultureInfo.InvariantCulture),
        CtimeSeconds.ToString(CultureInfo.InvariantCulture), CtimeNanoseconds.ToString(CultureInfo.InvariantCulture));

    /// <summary>The inverse of <see cref="Format"/>; null for anything else.</summary>
    public static FileIdentity? TryParse(ReadOnlySpan<char> text)
    {
        Span<Range> parts = stackalloc Range[8];
        if (text.Split(parts, ' ') != 7)
        {
            return null;
        }

        var ok = ulong.TryParse(text[parts[0]], NumberStyles.None, CultureInfo.InvariantCulture, out var device)
            & ulong.TryParse(text[parts[1]], NumberStyles.None, CultureInfo.InvariantCulture, out var inode)
            & long.TryParse(text[parts[2]], NumberStyles.None, CultureInfo.InvariantCulture, out var length)
            & long.TryParse(text[parts[3]], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var mtime)
            & uint.TryParse(text[parts[4]], NumberStyles.None, CultureInfo.InvariantCulture, out var mtimeNs)
            & long.TryParse(text[parts[5]], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var ctime)
            & uint.TryParse(text[parts[6]], NumberStyles.None, CultureInfo.InvariantCulture, out var ctimeNs);
        return ok ? new FileIdentity(device, inode, length, mtime, mtimeNs, ctime, ctimeNs) : null;
    }

    [LibraryImport("libc.so.6", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int Statx(int dirfd, string path, int flags, uint mask, byte* buffer);
}
