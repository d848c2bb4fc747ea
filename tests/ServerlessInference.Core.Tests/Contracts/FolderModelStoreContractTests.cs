using ServerlessInference.Embedded;
using ServerlessInference.Models;
using ServerlessInference.Testing.Contracts;

namespace ServerlessInference.Tests.Contracts;

public sealed class FolderModelStoreContractTests : ModelStoreContract, IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("si-folder-store-").FullName;

    protected override Task<IModelStore> CreateStoreAsync() =>
        Task.FromResult<IModelStore>(new FolderModelStore(Path.Combine(_root, "models")));

    public void Dispose() => Directory.Delete(_root, recursive: true);
}
