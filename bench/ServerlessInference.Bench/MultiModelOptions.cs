using System.Globalization;

namespace ServerlessInference.Bench;

/// <summary>Command-line settings of the <c>multi-model</c> scenario (issue 13's bench).</summary>
internal sealed class MultiModelOptions
{
    /// <summary>Measured seconds per side (affinity on, affinity off), summed over the rounds.</summary>
    public TimeSpan Duration { get; private set; } = TimeSpan.FromSeconds(60);

    /// <summary>Interleaved rounds: each side gets <see cref="Duration"/> / rounds per round, the order alternating.</summary>
    public int Rounds { get; private set; } = 3;

    /// <summary>Load per side before the first round (every worker's first loads, JIT), not measured.</summary>
    public TimeSpan Warmup { get; private set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long one popularity order lasts before the ranks are permuted again.</summary>
    public TimeSpan Period { get; private set; } = TimeSpan.FromSeconds(20);

    public int Models { get; private set; } = 12;

    public int Workers { get; private set; } = 3;

    /// <summary>How many models one worker's warm-pool budget holds (the budget is this many model sizes and a half).</summary>
    public int PoolModels { get; private set; } = 3;

    public int Concurrency { get; private set; } = 32;

    public double Exponent { get; private set; } = 1.1;

    public ulong Seed { get; private set; } = 20261204;

    /// <summary>ONNX Runtime intra-op threads per worker process (default 1: three workers already share the cores).</summary>
    public int IntraOpThreads { get; private set; } = 1;

    /// <summary>Leave the side not being measured running instead of stopping it (SIGSTOP).</summary>
    public bool NoFreeze { get; private set; }

    public static MultiModelOptions Parse(string[] args)
    {
        var options = new MultiModelOptions();
        var quick = false;
        double? seconds = null, warmup = null, period = null;
        int? rounds = null;
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--seconds": seconds = Number(args[i], Next()); break;
                case "--rounds": rounds = Integer(args[i], Next()); break;
                case "--warmup": warmup = Number(args[i], Next()); break;
                case "--period": period = Number(args[i], Next()); break;
                case "--models": options.Models = Integer(args[i], Next()); break;
                case "--workers": options.Workers = Integer(args[i], Next()); break;
                case "--pool-models": options.PoolModels = Integer(args[i], Next()); break;
                case "--concurrency": options.Concurrency = Integer(args[i], Next()); break;
                case "--exponent": options.Exponent = Number(args[i], Next()); break;
                case "--seed": options.Seed = ulong.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--intra-op-threads": options.IntraOpThreads = Integer(args[i], Next()); break;
                case "--no-freeze": options.NoFreeze = true; break;
                case "--quick": quick = true; break;
                case "-h" or "--help": throw new ArgumentException(Usage);
                default: throw new ArgumentException($"unknown argument '{args[i]}'{Environment.NewLine}{Usage}");
            }
        }

        options.Duration = TimeSpan.FromSeconds(seconds ?? (quick ? 20 : 60));
        options.Rounds = rounds ?? (quick ? 2 : 3);
        options.Warmup = TimeSpan.FromSeconds(warmup ?? (quick ? 3 : 5));
        options.Period = TimeSpan.FromSeconds(period ?? (quick ? 5 : 20));
        if (options.Duration <= TimeSpan.Zero || options.Warmup < TimeSpan.Zero || options.Period <= TimeSpan.Zero)
        {
            throw new ArgumentException("--seconds and --period must be positive, --warmup at least 0");
        }

        if (options.Rounds < 1 || options.Models < 2 || options.Workers < 1 || options.PoolModels < 1 || options.Concurrency < 1 || options.IntraOpThreads < 1)
        {
            throw new ArgumentException("--rounds, --workers, --pool-models, --concurrency and --intra-op-threads must be at least 1, --models at least 2");
        }

        if (options.Exponent < 0 || !double.IsFinite(options.Exponent))
        {
            throw new ArgumentException("--exponent must be a finite number at least 0");
        }

        return options;
    }

    private static double Number(string name, string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) ? value : throw new ArgumentException($"{name} takes a number, got '{text}'");

    private static int Integer(string name, string text) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : throw new ArgumentException($"{name} takes an integer, got '{text}'");

    public const string Usage = """
        usage: dotnet run -c Release --project bench/ServerlessInference.Bench -- multi-model [options]
          --seconds S             measured seconds per side (affinity on, off), over all rounds (default 60)
          --rounds N              interleaved rounds, the order alternating (default 3)
          --warmup S              unmeasured load per side before round 1 (default 5)
          --period S              seconds before the popularity ranks are permuted again (default 20)
          --models N              models, built in code, about 38 MB each (default 12)
          --workers N             worker processes per side (default 3)
          --pool-models N         models one worker's warm-pool budget holds (default 3)
          --concurrency N         closed-loop clients (default 32)
          --exponent X            Zipf exponent (default 1.1)
          --seed N                seed of the traffic and of the rank permutations (default 20261204)
          --intra-op-threads N    ONNX Runtime intra-op threads per worker (default 1)
          --no-freeze             leave the side not being measured running (default: SIGSTOP it)
          --quick                 --seconds 20 --rounds 2 --warmup 3 --period 5 (a smoke run, not the issue's figures)
        """;
}
