using System.Text;
using System.Text.RegularExpressions;

namespace ServerlessInference.Worker.Tests.Deployment;

/// <summary>Just enough of a Dockerfile parser to check one: global <c>ARG</c> defaults, stages, instructions
/// (continuation lines joined, comments dropped).</summary>
internal sealed partial class Dockerfile
{
    private Dockerfile(IReadOnlyList<DockerStage> stages)
    {
        Stages = stages;
    }

    public IReadOnlyList<DockerStage> Stages { get; }

    public DockerStage Final => Stages[^1];

    public DockerStage Stage(string name) => Stages.Single(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase));

    public static Dockerfile Parse(string text)
    {
        var arguments = new Dictionary<string, string>(StringComparer.Ordinal);
        var stages = new List<DockerStage>();
        foreach (var (keyword, rest) in Instructions(text))
        {
            if (keyword == "ARG" && stages.Count == 0)
            {
                var parts = rest.Split('=', 2);
                arguments[parts[0].Trim()] = parts.Length == 2 ? parts[1].Trim() : "";
            }
            else if (keyword == "FROM")
            {
                var words = rest.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var image = Variable().Replace(words[0], m => arguments.GetValueOrDefault(m.Groups[1].Value, m.Value));
                var name = words.Length == 3 && words[1].Equals("AS", StringComparison.OrdinalIgnoreCase) ? words[2] : null;
                stages.Add(new DockerStage(image, name, new List<DockerInstruction>()));
            }
            else if (stages.Count > 0)
            {
                ((List<DockerInstruction>)stages[^1].Instructions).Add(new DockerInstruction(keyword, rest));
            }
        }

        return new Dockerfile(stages);
    }

    private static IEnumerable<(string Keyword, string Arguments)> Instructions(string text)
    {
        var current = new StringBuilder();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.TrimStart().StartsWith('#'))
            {
                continue;
            }

            if (line.EndsWith('\\'))
            {
                current.Append(line[..^1]).Append(' ');
                continue;
            }

            current.Append(line);
            var instruction = Whitespace().Replace(current.ToString(), " ").Trim();
            current.Clear();
            if (instruction.Length > 0)
            {
                var space = instruction.IndexOf(' ', StringComparison.Ordinal);
                yield return space < 0 ? (instruction.ToUpperInvariant(), "") : (instruction[..space].ToUpperInvariant(), instruction[(space + 1)..]);
            }
        }
    }

    [GeneratedRegex(@"\$\{(\w+)\}")]
    private static partial Regex Variable();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}

internal sealed record DockerStage(string Image, string? Name, IReadOnlyList<DockerInstruction> Instructions)
{
    public IEnumerable<string> All(string keyword) => Instructions.Where(i => i.Keyword == keyword).Select(i => i.Arguments);
}

internal sealed record DockerInstruction(string Keyword, string Arguments);
