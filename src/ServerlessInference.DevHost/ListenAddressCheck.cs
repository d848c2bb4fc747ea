using Microsoft.Extensions.Options;
using ServerlessInference.Protocol;
using ServerlessInference.Security;

namespace ServerlessInference.DevHost;

/// <summary>The loopback rule, checked before the server listens: a DevHost without API keys runs open only when every
/// address it listens on is loopback (and says so), or when <c>Inference:Auth:AllowAnonymous=true</c> (a warning at
/// every start); otherwise it refuses to start, naming the setting. With keys, every caller needs one.</summary>
/// <remarks>Addresses are read from the configuration Kestrel binds from (<see cref="ListenAddresses.Configured"/>): the
/// DevHost never binds in code. A host with no address configured (an in-memory test server) listens nowhere.</remarks>
internal sealed partial class ListenAddressCheck(
    IConfiguration configuration,
    IOptions<AuthOptions> options,
    IApiKeyStore keys,
    AnonymousAccess anonymous,
    ILogger<ListenAddressCheck> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var addresses = ListenAddresses.Configured(configuration);
        var exposed = addresses.Where(a => !ListenAddresses.IsLoopback(a)).ToList();
        if (exposed.Count == 0)
        {
            // Open or not is decided per request (keys may be made later); a key store that is down must not stop a
            // loopback host from starting (it answers 503 until the store is back).
            anonymous.Set(true);
            try
            {
                if (!await keys.AnyAsync(cancellationToken).ConfigureAwait(false))
                {
                    Log.OpenOnLoopback(logger, string.Join(", ", addresses));
                }
            }
            catch (InferenceException ex)
            {
                Log.KeysUnreadable(logger, ex.Message);
            }

            return;
        }

        anonymous.Set(options.Value.AllowAnonymous);
        if (await AnyKeyAsync(cancellationToken).ConfigureAwait(false))
        {
            return;
        }

        if (!options.Value.AllowAnonymous)
        {
            throw new InvalidOperationException(
                $"the gateway listens on {string.Join(", ", exposed)}, beyond loopback, and no API key exists: create one " +
                $"(dotnet ServerlessInference.DevHost.dll keys create --tenant NAME) or set {AuthOptions.AllowAnonymousKey}=true " +
                "to let anyone who reaches it call it");
        }

        Log.OpenBeyondLoopback(logger, string.Join(", ", exposed), AuthOptions.AllowAnonymousKey);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task<bool> AnyKeyAsync(CancellationToken cancellationToken)
    {
        try
        {
            return await keys.AnyAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (InferenceException ex)
        {
            throw new InvalidOperationException($"cannot read the API keys to decide whether this gateway may run open: {ex.Message}", ex);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "No API keys: the gateway runs open, listening on loopback only ({Addresses}). Any other address needs keys.")]
        public static partial void OpenOnLoopback(ILogger logger, string addresses);

        [LoggerMessage(2, LogLevel.Warning, "No API keys and {Setting}=true: anyone who reaches {Addresses} may call this gateway")]
        public static partial void OpenBeyondLoopback(ILogger logger, string addresses, string setting);

        [LoggerMessage(3, LogLevel.Warning, "Cannot read the API keys at start ({Reason}); on loopback the gateway starts anyway and decides per request")]
        public static partial void KeysUnreadable(ILogger logger, string reason);
    }
}
