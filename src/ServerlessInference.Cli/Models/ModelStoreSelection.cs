using System.CommandLine;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessInference.Azure.Models;
using ServerlessInference.Embedded;

namespace ServerlessInference.Cli.Models;

/// <summary>Which model store <c>si models</c> works on: <c>--store PATH</c> (a folder), <c>--blob-connection-string</c>
/// (Blob Storage or Azurite), or else the settings the DevHost reads from the environment
/// (<c>Inference__ModelStore__Provider</c>, <c>__Root</c>, <c>__Blob__ConnectionString</c>, <c>__Blob__ServiceUri</c>,
/// <c>__Blob__Container</c>), whose defaults are the DevHost's own folder.</summary>
public static class ModelStoreSelection
{
    public static readonly Option<string?> StoreOption = new("--store")
    {
        Description = "A folder model store (default: Inference__ModelStore__Root, else the DevHost's ~/.local/share/serverless-inference/models)",
    };

    public static readonly Option<string?> BlobConnectionStringOption = new("--blob-connection-string")
    {
        Description = "A Blob Storage (or Azurite) connection string: the Blob model store instead of a folder",
    };

    public static readonly Option<string?> ContainerOption = new("--container")
    {
        Description = "The Blob container (default: Inference__ModelStore__Blob__Container, else models)",
    };

    public static void AddTo(Command command)
    {
        command.Options.Add(StoreOption);
        command.Options.Add(BlobConnectionStringOption);
        command.Options.Add(ContainerOption);
    }

    /// <summary>The store, and a short description of where it is (never a secret).</summary>
    public static (IModelStore Store, string Where) Select(CliContext context)
    {
        string? Env(string key) => context.Console.Environment("Inference__ModelStore__" + key) is { Length: > 0 } v ? v : null;

        var folder = context.Get(StoreOption);
        var connectionString = context.Get(BlobConnectionStringOption);
        if (folder is not null && connectionString is not null)
        {
            throw CliException.Usage("give --store (a folder) or --blob-connection-string, not both");
        }

        var provider = folder is not null ? "Folder" : connectionString is not null ? "Blob" : Env("Provider") ?? "Folder";
        if (string.Equals(provider, "Folder", StringComparison.OrdinalIgnoreCase))
        {
            if (context.Get(ContainerOption) is not null)
            {
                throw CliException.Usage("--container applies to the Blob model store; give --blob-connection-string too");
            }

            var root = folder ?? Env("Root") ?? new ModelStoreOptions().Root;
            var store = new FolderModelStore(root);
            return (store, $"folder {store.Root}");
        }

        if (!string.Equals(provider, "Blob", StringComparison.OrdinalIgnoreCase))
        {
            throw CliException.Usage($"Inference__ModelStore__Provider is '{provider}'; si knows Folder and Blob");
        }

        var options = new BlobModelStoreOptions
        {
            ConnectionString = connectionString ?? Env("Blob__ConnectionString"),
            ServiceUri = connectionString is null ? Env("Blob__ServiceUri") : null,
            ManagedIdentityClientId = Env("Blob__ManagedIdentityClientId"),
            Container = context.Get(ContainerOption) ?? Env("Blob__Container") ?? "models",
        };
        var failures = BlobModelStoreOptionsValidator.Failures(options);
        if (failures.Count > 0)
        {
            throw CliException.Usage(failures[0].Replace("Inference:ModelStore:Blob:ConnectionString", "--blob-connection-string (Inference__ModelStore__Blob__ConnectionString)", StringComparison.Ordinal));
        }

        var blob = new BlobModelStore(options, NullLogger<BlobModelStore>.Instance);
        return (blob, $"blob container '{blob.Container.Name}' at {blob.Container.Uri.GetLeftPart(UriPartial.Authority)}");
    }
}
