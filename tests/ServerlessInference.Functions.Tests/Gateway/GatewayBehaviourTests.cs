using ServerlessInference.Testing.Gateway;

namespace ServerlessInference.Functions.Tests.Gateway;

/// <summary>The gateway behaviour suite (the same cases the DevHost passes over HTTP) against the Functions app's
/// function classes.</summary>
[Collection(FunctionsCollection.Name)]
public sealed class GatewayBehaviourTests(FunctionsFixture fixture) : GatewayBehaviourSuite
{
    protected override IGatewayDriver Serving => fixture.Serving.Gateway;

    protected override IGatewayDriver Stalled => fixture.Stalled.Gateway;

    protected override IGatewayDriver Keyed => fixture.Keyed.Gateway;
}
