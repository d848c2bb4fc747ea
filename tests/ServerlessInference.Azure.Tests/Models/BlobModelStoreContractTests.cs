using ServerlessInference.Azure.Models;
using ServerlessInference.Models;
using ServerlessInference.Testing.Contracts;
using ServerlessInference.Testing.Services;

namespace ServerlessInference.Azure.Tests.Models;

[Collection(AzuriteCollection.Name)]
[Trait("Category", "Integration")]
public sealed class BlobModelStoreContractTests(AzuriteServer azurite) : ModelStoreContract
{
    protected override Task<IModelStore> CreateStoreAsync() =>
        Task.FromResult<IModelStore>(new BlobModelStore(new BlobModelStoreOptions
        {
            ConnectionString = azurite.ConnectionString,
            Container = AzuriteCollection.NewContainerName(),
        }));
}
