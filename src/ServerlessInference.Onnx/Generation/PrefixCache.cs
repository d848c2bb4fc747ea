using Microsoft.ML.OnnxRuntime;
using ServerlessInference.Generation;

namespace ServerlessInference.Onnx.Generation;

/// <summary>Automatic prefix caching, as vLLM's: the KV of prompt tokens in blocks of <see cref="BlockTokens"/> tokens,
/// each keyed by a hash of the whole prefix up to and including it, so a prompt that starts with cached blocks copies
/// their KV and prefills only the rest. One per loaded model.</summary>
/// <remarks>
/// <para>Used by the scheduler thread only, except <see cref="HeldPrefixKeys"/> (a snapshot, read from any thread).</para>
/// <para>A block found by its hash is then checked: its tokens and its parent block must be the prompt's, so a hash
/// collision is a miss, never someone else's KV.</para>
/// <para>A running sequence holds the blocks of its prompt until it ends; held blocks are never evicted. The others sit
/// on an LRU list and leave oldest first. A released chain joins the list deepest block first, so a block is never
/// older than its descendants and eviction takes leaves before the blocks they extend.</para>
/// <para>The scheduler counts <see cref="Bytes"/> against its KV budget (the blocks are a copy beside the batch's
/// cache), and asks <see cref="MakeRoom"/> to evict when an admission or an insertion needs the space.</para>
/// </remarks>
internal sealed class PrefixCache
{
    /// <summary>Distinct prompt keys remembered per first block (prompts whose first 256 bytes differ but whose first
    /// tokens agree share a block); the oldest goes first.</summary>
    private const int MaxPromptKeysPerBlock = 8;

    private readonly int _heads;
    private readonly int _headDim;
    private readonly int _kvValues;
    private readonly GenerationCounters _counters;
    private readonly Dictionary<ulong, PrefixBlock> _blocks = [];
    private readonly LinkedList<PrefixBlock> _unheld = new();
    private volatile string[] _heldKeys = [];

    public PrefixCache(int blockTokens, DecoderSession decoder, GenerationCounters counters)
    {
        BlockTokens = blockTokens;
        _heads = decoder.Heads;
        _headDim = decoder.HeadDim;
        _kvValues = 2 * decoder.Layers;
        BlockBytes = decoder.KvBytesPerToken * blockTokens;
        _counters = counters;
    }

    public int BlockTokens { get; }

    /// <summary>KV bytes of one block: key and value, every layer.</summary>
    public long BlockBytes { get; }

    public int Count => _blocks.Count;

    public long Bytes => _blocks.Count * BlockBytes;

    /// <summary>See <see cref="IPrefixCacheView.HeldPrefixKeys"/>.</summary>
    public IReadOnlyCollection<string> HeldPrefixKeys => _heldKeys;

    /// <summary>The cached blocks <paramref name="tokens"/> starts with, in order (whole blocks only).</summary>
    public List<PrefixBlock> Match(List<int> tokens)
    {
        var chain = new List<PrefixBlock>();
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(tokens);
        PrefixBlock? parent = null;
        for (var start = 0; start + BlockTokens <= span.Length; start += BlockTokens)
        {
            var block = span.Slice(start, BlockTokens);
            if (!_blocks.TryGetValue(Hash(parent, block), out var found) || found.Parent != parent || !block.SequenceEqual(found.Tokens))
            {
                break;
            }

            chain.Add(found);
            parent = found;
        }

        return chain;
    }

    /// <summary>Marks <paramref name="chain"/> as held by one more running sequence: none of it can be evicted.</summary>
    public void Hold(List<PrefixBlock> chain)
    {
        foreach (var block in chain)
        {
            if (block.Holders++ == 0 && block.Node.List is not null)
            {
                _unheld.Remove(block.Node);
            }
        }
    }

    /// <summary>Ends one sequence's hold on <paramref name="chain"/>; blocks no one holds become the most recently
    /// used of the evictable ones, the deepest first.</summary>
    public void Release(List<PrefixBlock> chain)
    {
        for (var i = chain.Count - 1; i >= 0; i--)
        {
            var block = chain[i];
            if (--block.Holders == 0 && !block.Evicted)
            {
                _unheld.AddLast(block.Node);
            }
        }
    }

    /// <summary>Evicts unheld blocks, least recently used first, until <paramref name="outsideBytes"/> plus the cache's
    /// bytes fit <paramref name="budget"/>. False when they cannot (what is left is held).</summary>
    public bool MakeRoom(long outsideBytes, long budget)
    {
        var evicted = 0;
        var firstBlockGone = false;
        while (outsideBytes + Bytes > budget && _unheld.First is { } oldest)
        {
            var block = oldest.Value;
            _unheld.RemoveFirst();
            _blocks.Remove(block.Hash);
            block.Evicted = true;
            firstBlockGone |= block.Parent is null && block.PromptKeys is { Count: > 0 };
            evicted++;
        }

        if (evicted > 0)
        {
            _counters.AddPrefixEvictions(evicted);
            if (firstBlockGone)
            {
                PublishKeys();
            }
        }

        return outsideBytes + Bytes <= budget;
    }

    /// <summary>The first <paramref name="count"/> tokens' KV of <paramref name="chain"/> as past values [1,H,count,Dh],
    /// one array per key and value of each layer, rented from <see cref="System.Buffers.ArrayPool{T}.Shared"/>.</summary>
    public float[][] CopyOut(List<PrefixBlock> chain, int count)
    {
        var arrays = new float[_kvValues][];
        for (var j = 0; j < arrays.Length; j++)
        {
            var target = arrays[j] = System.Buffers.ArrayPool<float>.Shared.Rent(Math.Max(1, _heads * count * _headDim));
            for (var h = 0; h < _heads; h++)
            {
                var copied = 0;
                foreach (var block in chain)
                {
                    if (copied == count)
                    {
                        break;
                    }

                    var take = Math.Min(BlockTokens, count - copied);
                    block.Kv.AsSpan(((j * _heads) + h) * BlockTokens * _headDim, take * _headDim)
                        .CopyTo(target.AsSpan(((h * count) + copied) * _headDim));
                    copied += take;
                }
            }
        }

        return arrays;
    }

    /// <summary>Adds the whole blocks of <paramref name="tokens"/> past <paramref name="chain"/> from a prefill's
    /// <paramref name="presents"/> (key, value per layer, each [1,H,tokens.Count,Dh]), each held by the caller and
    /// appended to <paramref name="chain"/>, while room can be made under <paramref name="budget"/> beside
    /// <paramref name="outsideBytes"/>. Then records <paramref name="promptKey"/> on the chain's first block.</summary>
    public void Insert(List<int> tokens, IReadOnlyList<OrtValue> presents, List<PrefixBlock> chain, string? promptKey,
        long outsideBytes, long budget)
    {
        var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(tokens);
        var length = tokens.Count;
        var parent = chain.Count > 0 ? chain[^1] : null;
        for (var start = chain.Count * BlockTokens; start + BlockTokens <= length; start += BlockTokens)
        {
            var blockTokens = span.Slice(start, BlockTokens);
            var hash = Hash(parent, blockTokens);
            if (_blocks.ContainsKey(hash) || !MakeRoom(outsideBytes + BlockBytes, budget))
            {
                break; // a collision with another prefix (it keeps its block), or no room
            }

            var kv = GC.AllocateUninitializedArray<float>(_kvValues * _heads * BlockTokens * _headDim);
            for (var j = 0; j < _kvValues; j++)
            {
                var source = presents[j].GetTensorDataAsSpan<float>();
                for (var h = 0; h < _heads; h++)
                {
                    source.Slice(((h * length) + start) * _headDim, BlockTokens * _headDim)
                        .CopyTo(kv.AsSpan(((j * _heads) + h) * BlockTokens * _headDim));
                }
            }

            var block = new PrefixBlock(hash, parent, blockTokens.ToArray(), kv) { Holders = 1 };
            _blocks.Add(hash, block);
            chain.Add(block);
            parent = block;
        }

        if (promptKey is not null && chain.Count > 0)
        {
            var keys = chain[0].PromptKeys ??= [];
            if (!keys.Contains(promptKey))
            {
                if (keys.Count == MaxPromptKeysPerBlock)
                {
                    keys.RemoveAt(0);
                }

                keys.Add(promptKey);
                PublishKeys();
            }
        }
    }

    private void PublishKeys() => _heldKeys = [.. _blocks.Values
        .Where(b => b.Parent is null && b.PromptKeys is not null)
        .SelectMany(b => b.PromptKeys!)
        .Distinct(StringComparer.Ordinal)];

    /// <summary>FNV-1a over the parent's hash and the block's tokens: the whole prefix through this block.</summary>
    private static ulong Hash(PrefixBlock? parent, ReadOnlySpan<int> tokens)
    {
        const ulong Prime = 0x100000001B3;
        var hash = 0xCBF29CE484222325 ^ (parent?.Hash ?? 0);
        hash *= Prime;
        foreach (var token in tokens)
        {
            hash = (hash ^ (uint)token) * Prime;
            hash ^= hash >> 29;
        }

        return hash;
    }
}

/// <summary>One cached block: its tokens, the block it extends, and its KV [2 × layers][H][tokens][Dh].</summary>
internal sealed class PrefixBlock
{
    public PrefixBlock(ulong hash, PrefixBlock? parent, int[] tokens, float[] kv)
    {
        Hash = hash;
        Parent = parent;
        Tokens = tokens;
        Kv = kv;
        Node = new LinkedListNode<PrefixBlock>(this);
    }

    public ulong Hash { get; }

    public PrefixBlock? Parent { get; }

    public int[] Tokens { get; }

    public float[] Kv { get; }

    /// <summary>Running sequences holding the block.</summary>
    public int Holders { get; set; }

    public bool Evicted { get; set; }

    /// <summary>The block's place on the LRU list while no one holds it.</summary>
    public LinkedListNode<PrefixBlock> Node { get; }

    /// <summary>On a first block: the <see cref="PromptPrefix"/> keys of the prompts that began with it.</summary>
    public List<string>? PromptKeys { get; set; }
}
