namespace ServerlessInference.Deploy.Tests;

/// <summary>Files of the repository under test, found by walking up from the test binaries.</summary>
public static class RepositoryPaths
{
    public static string Root { get; } = FindRoot();

    public static string BicepFolder => System.IO.Path.Combine(Root, "bicep");

    public static string MainBicep => System.IO.Path.Combine(BicepFolder, "main.bicep");

    public static string Of(string relativePath) => System.IO.Path.GetFullPath(System.IO.Path.Combine(Root, relativePath));

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(dir.FullName, "ServerlessInference.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no ServerlessInference.sln above {AppContext.BaseDirectory}");
    }
}
