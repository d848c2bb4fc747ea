namespace ServerlessInference.Worker.Tests;

/// <summary>Files of the repository this test run was built from.</summary>
internal static class RepositoryFiles
{
    private static readonly Lazy<string> s_root = new(FindRoot);

    public static string Root => s_root.Value;

    public static string Path(string relative) => System.IO.Path.Combine(Root, relative.Replace('/', System.IO.Path.DirectorySeparatorChar));

    public static string Read(string relative) => File.ReadAllText(Path(relative));

    private static string FindRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(folder.FullName, "ServerlessInference.sln")))
            {
                return folder.FullName;
            }
        }

        throw new InvalidOperationException($"no ServerlessInference.sln above {AppContext.BaseDirectory}");
    }
}
