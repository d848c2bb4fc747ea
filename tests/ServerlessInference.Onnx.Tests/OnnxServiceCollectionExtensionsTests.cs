using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ServerlessInference.Models;

namespace ServerlessInference.Onnx.Tests;

public sealed class OnnxServiceCollectionExtensionsTests
{
    [Fact]
    public void AddOnnxEngine_Configuration_BindsInferenceOnnxSection()
    {
        using var provider = Build(new()
        {
            ["Inference:Onnx:IntraOpThreads"] = "3",
            ["Inference:Onnx:AllowSpinning"] = "true",
            ["Inference:Onnx:ExecutionProvider"] = "Cpu",
        });

        provider.GetRequiredService<IStartupValidator>().Validate();
        var options = provider.GetRequiredService<IOptions<OnnxEngineOptions>>().Value;
        Assert.Equal((3, true, OnnxExecutionProvider.Cpu), (options.IntraOpThreads, options.AllowSpinning, options.ExecutionProvider));
        Assert.Equal("CPU", provider.GetRequiredService<IInferenceEngine>().ExecutionProvider);
        Assert.Same(provider.GetRequiredService<OnnxInferenceEngine>(), provider.GetRequiredService<IInferenceEngine>());
    }

    [Fact]
    public void AddOnnxEngine_ZeroThreads_FailsStartupValidation()
    {
        using var provider = Build(new() { ["Inference:Onnx:IntraOpThreads"] = "0" });

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());

        Assert.Contains("IntraOpThreads", error.Message);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("1025")]
    public void AddOnnxEngine_PrefixCacheBlockTokensOutOfRange_FailsStartupValidationNamingIt(string tokens)
    {
        using var provider = Build(new() { ["Inference:Generation:PrefixCacheBlockTokens"] = tokens });

        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());

        Assert.Contains("Inference:Generation:PrefixCacheBlockTokens must be between 1 and 1024", error.Message);
    }

    [Fact]
    public void AddOnnxEngine_PrefixCacheSettings_Bind()
    {
        using var provider = Build(new() { ["Inference:Generation:PrefixCaching"] = "false", ["Inference:Generation:PrefixCacheBlockTokens"] = "32" });

        provider.GetRequiredService<IStartupValidator>().Validate();
        var options = provider.GetRequiredService<IOptions<ServerlessInference.Onnx.Generation.TextGenerationOptions>>().Value;
        Assert.Equal((false, 32), (options.PrefixCaching, options.PrefixCacheBlockTokens));
    }

    [Fact]
    public void AddOnnxEngine_Action_AppliesWithoutConfiguration()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddOnnxEngine(o => o.ExecutionProvider = OnnxExecutionProvider.Cpu);
        using var provider = services.BuildServiceProvider();

        provider.GetRequiredService<IStartupValidator>().Validate();
        Assert.Equal("CPU", provider.GetRequiredService<IInferenceEngine>().ExecutionProvider);
    }

    private static ServiceProvider Build(Dictionary<string, string?> settings)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection().AddLogging().AddSingleton<IConfiguration>(configuration);
        services.AddOnnxEngine();
        return services.BuildServiceProvider();
    }
}
