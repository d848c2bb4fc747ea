using ServerlessInference.Testing.Gateway;

namespace ServerlessInference.DevHost.Tests;

/// <summary>The gateway behaviour suite against the DevHost over HTTP.</summary>
[Collection(DevHostCollection.Name)]
public sealed class GatewayBehaviourTests(DevHostFixture fixture) : GatewayBehaviourSuite
{
    protected override IGatewayDriver Serving => fixture.ServingGateway;

    protected override IGatewayDriver Stalled => fixture.StalledGateway;

    protected override IGatewayDriver Keyed => fixture.KeyedGateway;
}
