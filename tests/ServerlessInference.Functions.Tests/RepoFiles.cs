namespace ServerlessInference.Functions.Tests;

/// <summary>Files of the repository these tests check (host.json, local.settings.sample.json), found from the test's
/// output folder upwards.</summary>
internal static class RepoFiles
{
    public static string Root { get; } = FindRoot();

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root, .. parts]);

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
