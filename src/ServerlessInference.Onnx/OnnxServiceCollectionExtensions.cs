using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using ServerlessInference.Hosting;
using ServerlessInference.Models;
using ServerlessInference.Onnx.Generation;

namespace ServerlessInference.Onnx;

public static class OnnxServiceCollectionExtensions
{
    /// <summary><see cref="IInferenceEngine"/> → <see cref="OnnxInferenceEngine"/> (a singleton), with
    /// <see cref="OnnxEngineOptions"/> bound from <c>Inference:Onnx</c>, then <paramref name="configure"/>, and the
    /// generation scheduler's <see cref="TextGenerationOptions"/> from <c>Inference:Generation</c>, all validated at
    /// start-up. Replaces any engine registered before.</summary>
    public static IServiceCollection AddOnnxEngine(this IServiceCollection services, Action<OnnxEngineOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var builder = services.AddValidatedOptions<OnnxEngineOptions, OnnxEngineOptionsValidator>(OnnxEngineOptions.Section);
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        services.AddValidatedOptions<TextGenerationOptions, TextGenerationOptionsValidator>(TextGenerationOptions.Section);
        services.TryAddSingleton<OnnxInferenceEngine>();
        services.Replace(ServiceDescriptor.Singleton<IInferenceEngine>(sp => sp.GetRequiredService<OnnxInferenceEngine>()));
        return services;
    }
}
