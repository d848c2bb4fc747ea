using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace ServerlessInference.Deploy.Tests;

/// <summary>The template compiles offline with no diagnostic at all, uses only local modules, keeps the linter on, and
/// never reads a key.</summary>
[Collection(BicepCollection.Name)]
public sealed class TemplateTests(BicepFixture bicep)
{
    [Fact]
    public void Build_MainTemplate_SucceedsWithoutErrorOrWarning()
    {
        Assert.True(bicep.Build.ExitCode == 0, bicep.Build.ToString());
        // Every linter rule is an error (bicepconfig.json) and any other diagnostic is printed here too.
        Assert.True(bicep.Build.StandardError.Trim().Length == 0, $"bicep build printed diagnostics:\n{bicep.Build.StandardError}");
    }

    [Fact]
    public void Snapshot_EveryWorkloadProfile_SucceedsWithoutDiagnostics()
    {
        Assert.Equal(3, bicep.SnapshotRuns.Count);
        foreach (var run in bicep.SnapshotRuns)
        {
            Assert.True(run.ExitCode == 0, run.ToString());
            Assert.True(run.StandardError.Trim().Length == 0, $"bicep snapshot printed diagnostics:\n{run.StandardError}");
        }
    }

    [Fact]
    public void Modules_EveryReference_IsALocalFileThatExists()
    {
        var references = 0;
        foreach (var file in Directory.EnumerateFiles(RepositoryPaths.BicepFolder, "*.bicep", SearchOption.AllDirectories))
        {
            foreach (Match module in Regex.Matches(File.ReadAllText(file), @"^\s*module\s+\w+\s+'([^']+)'", RegexOptions.Multiline))
            {
                references++;
                var path = module.Groups[1].Value;
                Assert.False(Regex.IsMatch(path, "^(br|ts)[:/]"), $"{file} references a registry module {path}; bicep build must work offline");
                Assert.True(File.Exists(Path.Combine(Path.GetDirectoryName(file)!, path)), $"{file} references missing module {path}");
            }
        }

        Assert.True(references >= 10, $"found only {references} module references");
    }

    [Fact]
    public void Modules_EveryFile_IsUsedByMain()
    {
        var main = File.ReadAllText(RepositoryPaths.MainBicep);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(RepositoryPaths.BicepFolder, "modules"), "*.bicep"))
        {
            Assert.Contains($"'modules/{Path.GetFileName(file)}'", main, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void BicepConfig_LinterRules_AreOnAndNoneIsSilenced()
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(RepositoryPaths.BicepFolder, "bicepconfig.json")))!;
        var core = config["analyzers"]?["core"];
        Assert.True((bool?)core?["enabled"], "analyzers.core.enabled must be true");
        var rules = core!["rules"]!.AsObject();
        Assert.Contains("no-unused-params", rules.Select(r => r.Key));
        foreach (var (name, rule) in rules)
        {
            Assert.True((string?)rule?["level"] == "error", $"linter rule {name} is '{rule?["level"]}', not error");
        }
    }

    [Theory]
    [InlineData(@"\blist[A-Za-z]*\(")] // listKeys(, listConnectionStrings(, listSecrets(, list(
    [InlineData("AccountKey=")]
    [InlineData("SharedAccessKey")]
    [InlineData("SharedAccessSignature")]
    [InlineData("password")]
    [InlineData(@"(primary|secondary)(Shared|Master)?Key")]
    [InlineData(@"""sharedKey""\s*:")] // a Log Analytics key handed to Container Apps
    public void CompiledTemplate_Text_HasNoKeyOrSecret(string pattern)
    {
        var match = Regex.Match(bicep.CompiledText, pattern, RegexOptions.IgnoreCase);
        Assert.False(match.Success, $"the compiled template contains '{match.Value}' near: {Context(bicep.CompiledText, match.Index)}");
    }

    [Fact]
    public void CompiledTemplate_WorkloadProfileParameter_AllowsT4A100AndCpuOnly()
    {
        var parameter = bicep.Compiled["parameters"]!["workerWorkloadProfile"]!;
        Assert.Equal("Consumption-GPU-NC8as-T4", (string?)parameter["defaultValue"]);
        Assert.Equal(
            ["Consumption-GPU-NC8as-T4", "Consumption-GPU-NC24-A100", "Consumption"],
            parameter["allowedValues"]!.AsArray().Select(v => (string?)v));
    }

    private static string Context(string text, int index) =>
        text.Substring(Math.Max(0, index - 120), Math.Min(240, text.Length - Math.Max(0, index - 120)));
}
