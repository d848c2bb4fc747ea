using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using ServerlessInference.Models;

namespace ServerlessInference.Onnx.Demo;

/// <summary>The pretrained ResNet18 feature extractor shipped in the NuGet package
/// <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> (63.6 MB; fixed batch 1).</summary>
/// <remarks>The build copies the file to <c>DemoModels/resnet18.onnx</c> in the output folder of this project and
/// of every project that references it.</remarks>
public static class ResNet18Model
{
    public const string Name = "resnet18";
    public const string Version = "1";
    public const string InputName = "Input247";
    public const string OutputName = "Pooling395_Output_0";

    /// <summary>Where the build puts the file, relative to the application's base directory.</summary>
    public const string RelativePath = "DemoModels/resnet18.onnx";

    /// <summary>The model file: beside the application, else in the NuGet package folder the build used.</summary>
    /// <exception cref="FileNotFoundException">Neither place has it.</exception>
    public static string FindFile() => TryFindFile(out var path)
        ? path
        : throw new FileNotFoundException(
            $"ResNet18 is not at {Path.Combine(AppContext.BaseDirectory, RelativePath)}; build a project that references ServerlessInference.Onnx to copy it there",
            RelativePath);

    public static bool TryFindFile([NotNullWhen(true)] out string? path)
    {
        path = Path.Combine(AppContext.BaseDirectory, RelativePath);
        if (File.Exists(path))
        {
            return true;
        }

        var packageFolder = typeof(ResNet18Model).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "ResNet18PackageFolder")?.Value;
        if (!string.IsNullOrEmpty(packageFolder))
        {
            path = Path.Combine(packageFolder, "tools", "DnnImageModels", "ResNet18Onnx", "ResNet18.onnx");
            if (File.Exists(path))
            {
                return true;
            }
        }

        path = null;
        return false;
    }

    /// <summary>The manifest: FP32 input [1,3,224,224], FP32 output [1,512,1,1], fixed batch 1. Leave
    /// <paramref name="sha256"/> and <paramref name="sizeBytes"/> empty for <see cref="IModelStore.UploadAsync"/>.</summary>
    public static ModelManifest Manifest(string sha256 = "", long sizeBytes = 0) => new()
    {
        Name = Name,
        Version = Version,
        Sha256 = sha256,
        SizeBytes = sizeBytes,
        Inputs = [new TensorSpec(InputName, TensorDatatype.Fp32, [1, 3, 224, 224])],
        Outputs = [new TensorSpec(OutputName, TensorDatatype.Fp32, [1, 512, 1, 1])],
        MaxBatchSize = 1,
        DynamicBatch = false,
    };
}
