using System.Globalization;

namespace ServerlessInference.Bench;

/// <summary>Command-line settings of a bench run.</summary>
internal sealed class BenchOptions
{
    /// <summary>Measured seconds per HTTP scenario, summed over the rounds.</summary>
    public TimeSpan Duration { get; private set; } = TimeSpan.FromSeconds(10);

    /// <summary>Load before the first round, per scenario (model loads, JIT, connection set-up).</summary>
    public TimeSpan Warmup { get; private set; } = TimeSpan.FromSeconds(3);

    /// <summary>Load before each slice, not measured (refills the pipeline after another scenario ran).</summary>
    public TimeSpan SliceWarmup { get; private set; } = TimeSpan.FromSeconds(1);

    /// <summary>Interleaved rounds; each scenario gets <see cref="Duration"/> / rounds per round.</summary>
    public int Rounds { get; private set; } = 5;

    /// <summary>Measured seconds per generation scenario, summed over <see cref="GenerationRounds"/>. Longer slices than
    /// the HTTP scenarios': each starts with an empty batch (every client at once), and under 32 clients one generation
    /// lasts seconds.</summary>
    public TimeSpan GenerationDuration { get; private set; } = TimeSpan.FromSeconds(60);

    /// <summary>Generation load before each slice, not measured: about one generation's length, so the clients'
    /// requests no longer start and end together.</summary>
    public TimeSpan GenerationSliceWarmup { get; private set; } = TimeSpan.FromSeconds(5);

    /// <summary>Rounds with a generation slice: the first ones of the interleaved rounds.</summary>
    public int GenerationRounds { get; private set; } = 3;

    /// <summary>Raw loops are cheap to measure precisely: half the duration each.</summary>
    public TimeSpan RawDuration => TimeSpan.FromSeconds(Math.Max(1, Duration.TotalSeconds / 2));

    /// <summary>The worker count whose figures go into the ratios.</summary>
    public int Workers { get; private set; } = 1;

    /// <summary>Worker counts measured on the DevHost at MaxBatchSize 32.</summary>
    public IReadOnlyList<int> CompareWorkers { get; private set; } = [1, 2];

    public int IntraOpThreads { get; private set; } = Environment.ProcessorCount;

    public bool SkipSpinning { get; private set; }

    /// <summary>HTTP and generation scenario ids to run (null: all): 2,3,4,4c1,5j,5b,6,s2,s6,s5b,g1,g2,g3,g4,gs1.</summary>
    public HashSet<string>? Scenarios { get; private set; }

    public bool SkipRaw { get; private set; }

    /// <summary>No services-profile DevHost (Redis + Azurite) and no cold-start figures.</summary>
    public bool SkipServices { get; private set; }

    /// <summary>Leave idle children running instead of stopping them while another scenario is measured.</summary>
    public bool NoFreeze { get; private set; }

    /// <summary>Start servers without the probe startup hook (GC and thread-pool counters).</summary>
    public bool NoProbe { get; private set; }

    /// <summary>Extra environment for every DevHost (KEY=VALUE).</summary>
    public Dictionary<string, string> DevHostEnvironment { get; } = [];

    /// <summary>Extra DevHosts (MaxBatchSize 32, <see cref="Workers"/> workers) with their own environment, measured in
    /// the same rounds: name → KEY=VALUE pairs.</summary>
    public List<(string Name, Dictionary<string, string> Environment)> Variants { get; } = [];

    public bool Runs(string scenarioId) => Scenarios is null || Scenarios.Contains(scenarioId);

    public static BenchOptions Parse(string[] args)
    {
        var options = new BenchOptions();
        var quick = false;
        var generationOnly = false;
        double? duration = null, warmup = null, sliceWarmup = null, generationDuration = null, generationSliceWarmup = null;
        int? rounds = null, generationRounds = null;
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--duration": duration = Seconds(Next()); break;
                case "--warmup": warmup = Seconds(Next()); break;
                case "--slice-warmup": sliceWarmup = Seconds(Next()); break;
                case "--gen-duration": generationDuration = Seconds(Next()); break;
                case "--gen-slice-warmup": generationSliceWarmup = Seconds(Next()); break;
                case "--gen-rounds": generationRounds = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--rounds": rounds = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--quick": quick = true; break;
                case "--workers": options.Workers = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--compare-workers": options.CompareWorkers = [.. Next().Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture))]; break;
                case "--intra-op-threads": options.IntraOpThreads = int.Parse(Next(), CultureInfo.InvariantCulture); break;
                case "--skip-spinning": options.SkipSpinning = true; break;
                case "--skip-raw": options.SkipRaw = true; break;
                case "--skip-services": options.SkipServices = true; break;
                case "--no-freeze": options.NoFreeze = true; break;
                case "--no-probe": options.NoProbe = true; break;
                case "--scenarios": options.Scenarios = [.. Next().Split(',')]; break;
                case "generation" when i == 0: generationOnly = true; break;
                case "--devhost-env":
                    var (key, value) = Pair(Next());
                    options.DevHostEnvironment[key] = value;
                    break;
                case "--variant":
                    var spec = Next();
                    var colon = spec.IndexOf(':', StringComparison.Ordinal);
                    if (colon <= 0)
                    {
                        throw new ArgumentException($"--variant takes NAME:KEY=VALUE[;KEY=VALUE], got '{spec}'");
                    }

                    options.Variants.Add((spec[..colon], spec[(colon + 1)..].Split(';', StringSplitOptions.RemoveEmptyEntries).Select(Pair).ToDictionary()));
                    break;
                case "-h" or "--help":
                    throw new ArgumentException(Usage);
                default:
                    throw new ArgumentException($"unknown argument '{args[i]}'{Environment.NewLine}{Usage}");
            }
        }

        options.Duration = TimeSpan.FromSeconds(duration ?? (quick ? 3 : 10));
        options.Warmup = TimeSpan.FromSeconds(warmup ?? (quick ? 1 : 3));
        options.SliceWarmup = TimeSpan.FromSeconds(sliceWarmup ?? (quick ? 0.5 : 1));
        options.Rounds = Math.Max(1, rounds ?? (quick ? 3 : 5));
        options.GenerationDuration = TimeSpan.FromSeconds(generationDuration ?? (quick ? 24 : 60));
        options.GenerationSliceWarmup = TimeSpan.FromSeconds(generationSliceWarmup ?? (quick ? 3 : 5));
        options.GenerationRounds = Math.Max(1, generationRounds ?? (quick ? 2 : 3));
        if (generationOnly)
        {
            // The named scenario: only the generation scenarios (the services one unless --skip-services), no raw loops.
            options.Scenarios ??= [.. GenerationReport.Ids];
            options.SkipRaw = true;
        }

        if (!options.CompareWorkers.Contains(options.Workers))
        {
            options.CompareWorkers = [options.Workers, .. options.CompareWorkers];
        }

        return options;
    }

    private static double Seconds(string text) => double.Parse(text, CultureInfo.InvariantCulture);

    private static (string Key, string Value) Pair(string pair)
    {
        var eq = pair.IndexOf('=', StringComparison.Ordinal);
        return eq > 0 ? (pair[..eq], pair[(eq + 1)..]) : throw new ArgumentException($"expected KEY=VALUE, got '{pair}'");
    }

    public const string Usage = """
        usage: dotnet run -c Release --project bench/ServerlessInference.Bench -- [generation] [options]
          generation              only the generation scenarios g1,g2,g3,g4,gs1 (same as --scenarios g1,g2,g3,g4,gs1 --skip-raw)
          --duration S            measured seconds per HTTP scenario, over all rounds (default 10; raw loops S/2)
          --rounds N              interleaved rounds (default 5)
          --warmup S              load per scenario before the first round (default 3)
          --slice-warmup S        unmeasured load before each slice (default 1)
          --gen-duration S        measured seconds per generation scenario, over its rounds (default 60)
          --gen-rounds N          rounds with a generation slice, the first ones (default 3)
          --gen-slice-warmup S    unmeasured generation load before each slice (default 5)
          --quick                 --duration 3 --rounds 3 --warmup 1 --slice-warmup 0.5
                                  --gen-duration 24 --gen-rounds 2 --gen-slice-warmup 3
          --workers N             worker count whose figures make the ratios (default 1)
          --compare-workers L     worker counts measured at MaxBatchSize 32 (default 1,2)
          --intra-op-threads N    ONNX Runtime intra-op threads, raw and DevHost (default: core count)
          --skip-spinning         do not measure raw ONNX Runtime with spinning on
          --skip-raw              no raw ONNX Runtime loops
          --skip-services         no services-profile DevHosts: no s2,s6,s5b (Redis + Azurite), no cold-start figures, no gs1 (Redis)
          --no-freeze             leave idle children running (default: SIGSTOP all but the measured one)
          --no-probe              servers without the GC/thread-pool probe startup hook
          --scenarios L           scenario ids to run: 2,3,4,4c1,5j,5b,6,s2,s6,s5b,g1,g2,g3,g4,gs1 (default all)
          --devhost-env K=V       extra environment for every DevHost (repeatable)
          --variant NAME:K=V;K=V  an extra DevHost measured on 2, 6 and 5b in the same rounds (repeatable)
        """;
}
