namespace ServerlessInference.Models;

public sealed partial class WarmPool
{
    /// <summary>Loads <paramref name="manifest"/> ahead of traffic (a placement the scaler asked for) when it fits: in
    /// free room, or after evicting idle models that <paramref name="mayEvict"/> allows (by model name), least recently
    /// used first. Never evicts a model with a lease out, and evicts nothing unless the load then fits the budget.</summary>
    /// <returns>True when this call loaded the model; false when it was there already or does not fit.</returns>
    /// <exception cref="InferenceException">The load failed (as <see cref="AcquireAsync"/>).</exception>
    public async ValueTask<bool> TryPreloadAsync(ModelManifest manifest, Func<string, bool> mayEvict, CancellationToken cancellationToken)
    {
        Entry entry;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_entries.ContainsKey(manifest.Key) || manifest.SizeBytes > _budget)
            {
                return false;
            }

            var victims = new List<Entry>();
            var free = _budget - _usedBytes;
            foreach (var candidate in _entries.Values.OrderBy(e => e.LastUsed))
            {
                if (free >= manifest.SizeBytes)
                {
                    break;
                }

                if (candidate.Leases == 0 && candidate.Load is { IsCompletedSuccessfully: true } && mayEvict(candidate.Manifest.Name))
                {
                    victims.Add(candidate);
                    free += candidate.Bytes;
                }
            }

            if (free < manifest.SizeBytes)
            {
                return false;
            }

            foreach (var victim in victims)
            {
                _entries.Remove(victim.Manifest.Key);
                _evictions++;
                Log.Evicted(_logger, victim.Manifest.Key, victim.Bytes);
                DropLocked(victim);
            }

            entry = new Entry(manifest);
            _entries.Add(manifest.Key, entry);
            _usedBytes += manifest.SizeBytes;
            _loads++;
            // Held while it loads, as a batch's lease would be; released below so the model is idle (and evictable) after.
            entry.Leases++;
            entry.LastUsed = _timeProvider.GetTimestamp();
        }

        _ = LoadIntoAsync(entry);
        try
        {
            await entry.Load.WaitAsync(cancellationToken).ConfigureAwait(false);
            return true;
        }
        finally
        {
            Release(entry);
        }
    }
}
