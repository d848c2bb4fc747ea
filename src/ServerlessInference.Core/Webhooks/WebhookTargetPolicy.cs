using System.Net;
using System.Net.Sockets;

namespace ServerlessInference.Webhooks;

/// <summary>Which addresses a webhook delivery may connect to: public ones, plus what <see cref="WebhookOptions"/> allows.
/// Private, loopback, link-local, unique-local, CGNAT, multicast, reserved and unspecified ranges are refused (IPv4 and
/// IPv6, an IPv4-mapped IPv6 address judged as its IPv4 address), so a client cannot aim the platform at its own network.</summary>
/// <remarks>Checked on the address actually connected to, after DNS resolution (<see cref="WebhookSender"/>). Thread-safe.</remarks>
public sealed class WebhookTargetPolicy
{
    private static readonly (IPNetwork Network, string Name)[] s_refused =
    [
        (IPNetwork.Parse("0.0.0.0/8"), "unspecified"),
        (IPNetwork.Parse("10.0.0.0/8"), "private"),
        (IPNetwork.Parse("100.64.0.0/10"), "carrier-grade NAT"),
        (IPNetwork.Parse("127.0.0.0/8"), "loopback"),
        (IPNetwork.Parse("169.254.0.0/16"), "link-local"),
        (IPNetwork.Parse("172.16.0.0/12"), "private"),
        (IPNetwork.Parse("192.0.0.0/24"), "IETF protocol assignments"),
        (IPNetwork.Parse("192.168.0.0/16"), "private"),
        (IPNetwork.Parse("198.18.0.0/15"), "benchmarking"),
        (IPNetwork.Parse("224.0.0.0/4"), "multicast"),
        (IPNetwork.Parse("240.0.0.0/4"), "reserved"),
        (IPNetwork.Parse("::/128"), "unspecified"),
        (IPNetwork.Parse("::1/128"), "loopback"),
        (IPNetwork.Parse("64:ff9b::/96"), "NAT64"),
        (IPNetwork.Parse("fc00::/7"), "unique-local"),
        (IPNetwork.Parse("fe80::/10"), "link-local"),
        (IPNetwork.Parse("fec0::/10"), "site-local"),
        (IPNetwork.Parse("ff00::/8"), "multicast"),
    ];

    private readonly HashSet<string> _hosts;
    private readonly IPNetwork[] _networks;

    public WebhookTargetPolicy(WebhookOptions options)
    {
        _hosts = new HashSet<string>(options.AllowedHosts, StringComparer.OrdinalIgnoreCase);
        _networks = [.. options.AllowedNetworks.Select(IPNetwork.Parse)];
    }

    /// <summary>True when <paramref name="host"/> is allowed by name (<see cref="WebhookOptions.AllowedHosts"/>).</summary>
    public bool IsAllowedHost(string host) => _hosts.Contains(host);

    /// <summary>Null when a delivery may connect to <paramref name="address"/>; else the range it falls in.</summary>
    public string? RefusalOf(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        foreach (var network in _networks)
        {
            if (network.Contains(address))
            {
                return null;
            }
        }

        return RangeOf(address);
    }

    /// <summary>The refused range <paramref name="address"/> is in, or null for a public address.</summary>
    public static string? RangeOf(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            return "not an IP address";
        }

        if (address.Equals(IPAddress.Broadcast))
        {
            return "broadcast";
        }

        foreach (var (network, name) in s_refused)
        {
            if (network.BaseAddress.AddressFamily == address.AddressFamily && network.Contains(address))
            {
                return name;
            }
        }

        return null;
    }
}

/// <summary>A delivery the <see cref="WebhookTargetPolicy"/> refused: nothing was sent, and it is not retried.</summary>
public sealed class WebhookRefusedException(string message) : Exception(message);
