using System.Text;

namespace ServerlessInference.Generation;

/// <summary>One message of a chat (<c>system</c>, <c>user</c>, <c>assistant</c>, ...).</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>How a chat becomes a prompt: a ChatML-style format string per message, not Jinja.</summary>
/// <remarks>
/// The prompt is <see cref="Prefix"/>, then <see cref="Message"/> once per message with <c>{role}</c> and
/// <c>{content}</c> replaced, then <see cref="GenerationPrompt"/> (the cue for the assistant's turn). <c>{{</c> and
/// <c>}}</c> write literal braces; no other placeholder exists. ChatML (Qwen) is
/// <c>{"message": "&lt;|im_start|&gt;{role}\n{content}&lt;|im_end|&gt;\n", "generation_prompt": "&lt;|im_start|&gt;assistant\n"}</c>.
/// A Hugging Face Jinja template is translated into this form by hand when the model is published.
/// </remarks>
public sealed record ChatTemplate
{
    public required string Message { get; init; }

    public string? Prefix { get; init; }

    public string? GenerationPrompt { get; init; }

    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (string.IsNullOrEmpty(Message))
        {
            problems.Add("generation.chat_template.message must not be empty");
            return problems;
        }

        foreach (var (name, text) in new[] { ("message", Message), ("prefix", Prefix), ("generation_prompt", GenerationPrompt) })
        {
            if (text is not null && Scan(text, name == "message", null, null) is { } problem)
            {
                problems.Add($"generation.chat_template.{name}: {problem}");
            }
        }

        if (!Message.Contains("{content}", StringComparison.Ordinal))
        {
            problems.Add("generation.chat_template.message must contain {content}");
        }

        return problems;
    }

    /// <summary>The prompt for <paramref name="messages"/>, ending with the generation prompt.</summary>
    /// <exception cref="ArgumentException">The template is invalid (see <see cref="Validate"/>).</exception>
    public string Render(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var builder = new StringBuilder();
        Append(builder, Prefix, null);
        foreach (var message in messages)
        {
            Append(builder, Message, message);
        }

        Append(builder, GenerationPrompt, null);
        return builder.ToString();
    }

    private static void Append(StringBuilder builder, string? template, ChatMessage? message)
    {
        if (template is not null && Scan(template, message is not null, message, builder) is { } problem)
        {
            throw new ArgumentException($"invalid chat template: {problem}");
        }
    }

    /// <summary>Walks <paramref name="template"/>, writing to <paramref name="output"/> when given; returns the first
    /// problem or null.</summary>
    private static string? Scan(string template, bool placeholdersAllowed, ChatMessage? message, StringBuilder? output)
    {
        for (var i = 0; i < template.Length; i++)
        {
            var c = template[i];
            if (c == '{' && i + 1 < template.Length && template[i + 1] == '{')
            {
                output?.Append('{');
                i++;
            }
            else if (c == '}' && i + 1 < template.Length && template[i + 1] == '}')
            {
                output?.Append('}');
                i++;
            }
            else if (c == '{')
            {
                var end = template.IndexOf('}', i);
                var name = end < 0 ? null : template[(i + 1)..end];
                if (name is not ("role" or "content"))
                {
                    return $"unknown placeholder at {i} (only {{role}} and {{content}} exist; write {{{{ for a brace)";
                }

                if (!placeholdersAllowed)
                {
                    return $"{{{name}}} is only allowed in message";
                }

                output?.Append(name == "role" ? message?.Role : message?.Content);
                i = end;
            }
            else if (c == '}')
            {
                return $"lone '}}' at {i} (write }}}})";
            }
            else
            {
                output?.Append(c);
            }
        }

        return null;
    }
}
