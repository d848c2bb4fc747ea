using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace ServerlessInference.Worker.Tests.Deployment;

/// <summary>The worker image's Dockerfile, checked without a Docker engine: its stages and base images, the user it
/// runs as, and that what it copies and runs still matches the projects.</summary>
public sealed partial class WorkerDockerfileTests
{
    private const string DockerfilePath = "src/ServerlessInference.Worker/Dockerfile";
    private const string WorkerProject = "src/ServerlessInference.Worker/ServerlessInference.Worker.csproj";
    private static readonly Dockerfile s_dockerfile = Dockerfile.Parse(RepositoryFiles.Read(DockerfilePath));

    [Fact]
    public void Dockerfile_BuildStage_PublishesTheWorkerWithTheDotnet10Sdk()
    {
        var build = s_dockerfile.Stages[0];

        Assert.Equal("mcr.microsoft.com/dotnet/sdk:10.0", build.Image);
        Assert.Contains(build.All("RUN"), run => run.StartsWith($"dotnet publish {WorkerProject} -c Release", StringComparison.Ordinal));
    }

    [Fact]
    public void Dockerfile_RuntimeStage_IsCudaWithCudnnAndTheAspNetCoreRuntime()
    {
        var runtime = s_dockerfile.Final;

        Assert.Matches(CudaImage(), runtime.Image);
        var copy = Assert.Single(runtime.All("COPY"), c => c.EndsWith("/usr/share/dotnet /usr/share/dotnet", StringComparison.Ordinal));
        var from = Regex.Match(copy, "--from=(\\S+)").Groups[1].Value;
        Assert.StartsWith("mcr.microsoft.com/dotnet/aspnet:10.0", s_dockerfile.Stage(from).Image);
    }

    [Fact]
    public void Dockerfile_CudaBase_HasTheCudaMajorOnnxRuntimeLinks()
    {
        var provider = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", "libonnxruntime_providers_cuda.so");
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux))
        {
            // Elsewhere the build takes the CPU package (ServerlessInference.Onnx.csproj), which has no CUDA provider.
            return;
        }

        var cudart = Assert.Single(ElfNeeded.Read(provider), l => l.StartsWith("libcudart.so.", StringComparison.Ordinal));

        Assert.Equal(cudart["libcudart.so.".Length..], CudaImage().Match(s_dockerfile.Final.Image).Groups["major"].Value);
    }

    [Fact]
    public void Dockerfile_RuntimeStage_RunsAsNonRootOnPort8080()
    {
        var runtime = s_dockerfile.Final;

        var user = runtime.All("USER").Last().Split(':')[0];
        Assert.DoesNotContain(user, new[] { "root", "0" });
        Assert.Contains(runtime.All("ENV"), env => env.Split(' ').Contains("ASPNETCORE_URLS=http://0.0.0.0:8080"));
        Assert.Contains("8080", runtime.All("EXPOSE"));
    }

    [Fact]
    public void Dockerfile_Entrypoint_RunsTheWorkerAssembly()
    {
        var entrypoint = JsonSerializer.Deserialize<string[]>(Assert.Single(s_dockerfile.Final.All("ENTRYPOINT")))!;

        Assert.Equal(["dotnet", $"/app/{typeof(WorkerHostSetup).Assembly.GetName().Name}.dll"], entrypoint);
    }

    [Fact]
    public void Dockerfile_Restore_CopiesEveryProjectTheWorkerBuildsFrom()
    {
        var build = s_dockerfile.Stages[0];
        var restoreAt = build.Instructions.ToList().FindIndex(i => i.Keyword == "RUN" && i.Arguments.StartsWith("dotnet restore", StringComparison.Ordinal));
        Assert.True(restoreAt > 0, "the build stage restores before it copies the sources");
        var copied = build.Instructions.Take(restoreAt).Where(i => i.Keyword == "COPY").SelectMany(i => i.Arguments.Split(' ')[..^1]).ToHashSet(StringComparer.Ordinal);

        string[] needed = ["global.json", "Directory.Build.props", "Directory.Packages.props", .. ProjectClosure(WorkerProject)];
        foreach (var file in needed)
        {
            Assert.True(copied.Contains(file), $"{DockerfilePath} does not copy {file} before the restore");
            Assert.True(File.Exists(RepositoryFiles.Path(file)), $"{DockerfilePath} copies {file}, which does not exist");
        }
    }

    [Fact]
    public void DockerIgnore_ExcludesBuildOutputsAndLocalState()
    {
        var ignored = RepositoryFiles.Read(".dockerignore").Split('\n').Select(l => l.Trim()).ToHashSet(StringComparer.Ordinal);

        Assert.Superset(new HashSet<string> { "**/bin/", "**/obj/", ".state/", "**/node_modules/" }, ignored);
    }

    /// <summary>The project and every project it references, transitively, as repository-relative paths.</summary>
    private static IEnumerable<string> ProjectClosure(string project)
    {
        var seen = new SortedSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>([project]);
        while (pending.TryPop(out var current))
        {
            if (!seen.Add(current))
            {
                continue;
            }

            var folder = Path.GetDirectoryName(RepositoryFiles.Path(current))!;
            var document = XDocument.Load(RepositoryFiles.Path(current));
            // Referenced projects, and files a project imports (restore reads those too).
            var references = document.Descendants("ProjectReference").Select(r => r.Attribute("Include")!.Value)
                .Concat(document.Descendants("Import").Select(i => i.Attribute("Project")!.Value));
            foreach (var reference in references)
            {
                var full = Path.GetFullPath(Path.Combine(folder, reference.Replace('\\', '/')));
                pending.Push(Path.GetRelativePath(RepositoryFiles.Root, full).Replace('\\', '/'));
            }
        }

        return seen;
    }

    [GeneratedRegex(@"^nvidia/cuda:(?<major>\d+)\.\d+\.\d+-cudnn-runtime-ubuntu24\.04$")]
    private static partial Regex CudaImage();
}
