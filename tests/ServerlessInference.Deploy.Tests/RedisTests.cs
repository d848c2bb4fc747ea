namespace ServerlessInference.Deploy.Tests;

/// <summary>The Redis that holds job records never drops one to make room.</summary>
[Collection(BicepCollection.Name)]
public sealed class RedisTests(BicepFixture bicep)
{
    public static TheoryData<string> Variants => ["gpu", "a100", "cpu"];

    [Theory]
    [MemberData(nameof(Variants))]
    public void Redis_EvictionPolicy_IsNoEviction(string variant)
    {
        // A job record has a TTL, so any volatile-* policy could evict the record of a job still queued.
        var database = Snapshot(variant).Single("Microsoft.Cache/redisEnterprise/databases");

        Assert.Equal("NoEviction", (string?)database["properties"]!["evictionPolicy"]);
    }

    private DeploymentSnapshot Snapshot(string variant) => variant switch
    {
        "gpu" => bicep.Gpu,
        "a100" => bicep.A100,
        _ => bicep.Cpu,
    };
}
