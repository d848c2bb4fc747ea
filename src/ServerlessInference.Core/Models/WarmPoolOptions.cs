using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace ServerlessInference.Models;

/// <summary>Settings of the <see cref="WarmPool"/> (section <c>Inference:WarmPool</c>).</summary>
public sealed class WarmPoolOptions : IValidatableObject
{
    public const string Section = "Inference:WarmPool";

    /// <summary>Bytes of loaded models the pool may hold (default 4 GiB).</summary>
    public long BudgetBytes { get; set; } = 4L << 30;

    /// <summary>Folder of the local weights cache (keyed by sha256).</summary>
    [Required(AllowEmptyStrings = false, ErrorMessage = Section + ":CacheDirectory must name a folder")]
    public string CacheDirectory { get; set; } = Path.Combine(Path.GetTempPath(), "serverless-inference", "weights");

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (BudgetBytes < 1)
        {
            yield return new ValidationResult($"{Section}:BudgetBytes must be positive", [nameof(BudgetBytes)]);
        }
    }
}

[OptionsValidator]
public sealed partial class WarmPoolOptionsValidator : IValidateOptions<WarmPoolOptions>;
