using System.Net;
using ServerlessInference.Webhooks;

namespace ServerlessInference.Tests.Webhooks;

public sealed class WebhookTargetPolicyTests
{
    [Theory]
    [InlineData("0.0.0.0", "unspecified")]
    [InlineData("10.20.30.40", "private")]
    [InlineData("100.64.0.1", "carrier-grade NAT")]
    [InlineData("100.127.255.254", "carrier-grade NAT")]
    [InlineData("127.0.0.1", "loopback")]
    [InlineData("127.255.0.9", "loopback")]
    [InlineData("169.254.169.254", "link-local")]
    [InlineData("172.16.0.1", "private")]
    [InlineData("172.31.255.255", "private")]
    [InlineData("192.168.1.1", "private")]
    [InlineData("224.0.0.251", "multicast")]
    [InlineData("239.255.255.250", "multicast")]
    [InlineData("255.255.255.255", "broadcast")]
    [InlineData("::", "unspecified")]
    [InlineData("::1", "loopback")]
    [InlineData("fe80::1", "link-local")]
    [InlineData("fc00::1", "unique-local")]
    [InlineData("fd12:3456::1", "unique-local")]
    [InlineData("ff02::1", "multicast")]
    [InlineData("::ffff:127.0.0.1", "loopback")]
    [InlineData("::ffff:10.0.0.1", "private")]
    [InlineData("::ffff:169.254.169.254", "link-local")]
    [InlineData("64:ff9b::7f00:1", "NAT64")]
    public void RefusalOf_RefusedRange_NamesIt(string address, string range)
    {
        var policy = new WebhookTargetPolicy(new WebhookOptions());

        Assert.Equal(range, policy.RefusalOf(IPAddress.Parse(address)));
    }

    [Theory]
    [InlineData("8.8.8.8")]
    [InlineData("100.63.255.255")]
    [InlineData("100.128.0.0")]
    [InlineData("172.32.0.1")]
    [InlineData("2606:4700:4700::1111")]
    [InlineData("::ffff:1.1.1.1")]
    public void RefusalOf_PublicAddress_IsNull(string address) =>
        Assert.Null(new WebhookTargetPolicy(new WebhookOptions()).RefusalOf(IPAddress.Parse(address)));

    [Fact]
    public void RefusalOf_AllowedNetwork_IsNullForItAlone()
    {
        var policy = new WebhookTargetPolicy(new WebhookOptions { AllowedNetworks = ["127.0.0.0/8", "fd00::/8"] });

        Assert.Null(policy.RefusalOf(IPAddress.Parse("127.0.0.1")));
        Assert.Null(policy.RefusalOf(IPAddress.Parse("::ffff:127.0.0.1")));
        Assert.Null(policy.RefusalOf(IPAddress.Parse("fd00::5")));
        Assert.Equal("loopback", policy.RefusalOf(IPAddress.Parse("::1")));
        Assert.Equal("private", policy.RefusalOf(IPAddress.Parse("10.0.0.1")));
    }

    [Fact]
    public void IsAllowedHost_ListedName_IgnoresCase()
    {
        var policy = new WebhookTargetPolicy(new WebhookOptions { AllowedHosts = ["hooks.internal"] });

        Assert.True(policy.IsAllowedHost("HOOKS.internal"));
        Assert.False(policy.IsAllowedHost("other.internal"));
    }
}
