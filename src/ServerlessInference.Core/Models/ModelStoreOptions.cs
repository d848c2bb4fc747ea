using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Models;

/// <summary>Settings of the folder model store (section <c>Inference:ModelStore</c>); the provider is chosen by
/// <c>Inference:ModelStore:Provider</c>, which the host's composition reads.</summary>
public sealed class ModelStoreOptions
{
    public const string Section = "Inference:ModelStore";

    /// <summary>The folder store's root: <c>{Root}/{name}/{version}/model.onnx</c> + <c>manifest.json</c>.</summary>
    [Required(AllowEmptyStrings = false, ErrorMessage = Section + ":Root must name a folder")]
    public string Root { get; set; } = Path.Combine(DataRoot, "models");

    /// <summary>Where local state lives by default: <c>~/.local/share/serverless-inference</c> on Linux.</summary>
    public static string DataRoot => Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "serverless-inference");
}

[OptionsValidator]
public sealed partial class ModelStoreOptionsValidator : IValidateOptions<ModelStoreOptions>;
