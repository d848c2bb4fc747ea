using ServerlessInference.Testing.Services;

namespace ServerlessInference.Azure.Tests;

/// <summary>One Azurite for every test class that needs Blob storage; each test uses its own container.</summary>
[CollectionDefinition(Name)]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteServer>
{
    public const string Name = "Azurite";

    /// <summary>A container name no other test uses.</summary>
    public static string NewContainerName() => "t" + Guid.NewGuid().ToString("N")[..24];
}
