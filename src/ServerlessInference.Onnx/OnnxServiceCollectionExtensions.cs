using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using ServerlessInference.Models;

namespace ServerlessInference.Onnx;

public static class OnnxServiceCollectionExtensions
{
    /// <summary>Registers <see cref="OnnxInferenceEngine"/> as the singleton <see cref="IInferenceEngine"/>, with
    /// options bound from the <c>Inference:Onnx</c> section of <paramref name="configuration"/> (the host's root
    /// configuration), then <paramref name="configure"/>, validated at start-up.</summary>
    public static IServiceCollection AddOnnxEngine(this IServiceCollection services, IConfiguration configuration, Action<OnnxEngineOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        var builder = services.AddOptions<OnnxEngineOptions>().Bind(configuration.GetSection(OnnxEngineOptions.SectionName));
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        return services.AddOnnxEngineCore();
    }

    /// <summary>Registers <see cref="OnnxInferenceEngine"/> as the singleton <see cref="IInferenceEngine"/>, with
    /// options set in code only (tests, benchmarks), validated at start-up.</summary>
    public static IServiceCollection AddOnnxEngine(this IServiceCollection services, Action<OnnxEngineOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<OnnxEngineOptions>().Configure(configure);
        return services.AddOnnxEngineCore();
    }

    private static IServiceCollection AddOnnxEngineCore(this IServiceCollection services)
    {
        services.AddOptions<OnnxEngineOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OnnxEngineOptions>, OnnxEngineOptionsValidator>());
        services.TryAddSingleton<OnnxInferenceEngine>();
        services.TryAddSingleton<IInferenceEngine>(sp => sp.GetRequiredService<OnnxInferenceEngine>());
        return services;
    }
}
