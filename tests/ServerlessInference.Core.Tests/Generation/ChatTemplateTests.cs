using ServerlessInference.Generation;

namespace ServerlessInference.Tests.Generation;

public sealed class ChatTemplateTests
{
    private static readonly ChatTemplate s_chatMl = new()
    {
        Message = "<|im_start|>{role}\n{content}<|im_end|>\n",
        GenerationPrompt = "<|im_start|>assistant\n",
    };

    [Fact]
    public void Render_ChatMl_WritesEveryMessageThenTheGenerationPrompt()
    {
        var prompt = s_chatMl.Render([new("system", "Be brief."), new("user", "Hi {there}")]);

        Assert.Equal("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi {there}<|im_end|>\n<|im_start|>assistant\n", prompt);
    }

    [Fact]
    public void Render_DoubledBraces_AreLiteral()
    {
        var template = new ChatTemplate { Prefix = "{{json}}", Message = "{{\"{role}\": \"{content}\"}}" };

        Assert.Equal("{json}{\"user\": \"x\"}", template.Render([new("user", "x")]));
    }

    [Theory]
    [InlineData("{role}: {text}", "unknown placeholder")]
    [InlineData("{role}", "must contain {content}")]
    [InlineData("{content} }", "lone '}'")]
    public void Validate_BadMessage_SaysWhy(string message, string problem)
    {
        var problems = new ChatTemplate { Message = message }.Validate();

        Assert.Contains(problems, p => p.StartsWith("generation.chat_template.message", StringComparison.Ordinal) && p.Contains(problem, StringComparison.Ordinal));
    }

    [Fact]
    public void Validate_PlaceholderInGenerationPrompt_IsRefused()
    {
        var problems = (s_chatMl with { GenerationPrompt = "{role}" }).Validate();

        Assert.Contains(problems, p => p.StartsWith("generation.chat_template.generation_prompt", StringComparison.Ordinal));
    }
}
