using System.Globalization;

namespace ServerlessInference.Bench;

/// <summary>The generation scenarios' table and their ratios against issue 10's bars.</summary>
internal sealed class GenerationReport(IReadOnlyList<GenerationScenario> scenarios)
{
    /// <summary>Through the platform, embedded profile, continuous batching (the engine's default limit).</summary>
    public const string Batched = "g1";

    /// <summary>The same with <c>Inference:Generation:MaxConcurrentSequences</c> 1.</summary>
    public const string OneAtATime = "g2";

    /// <summary>The same engine driven in this process, no HTTP and no queue.</summary>
    public const string InProcess = "g3";

    /// <summary>One client at a time on the <see cref="Batched"/> DevHost, <c>max_tokens</c> at most 4.</summary>
    public const string Lone = "g4";

    /// <summary>Through the platform, services profile (Redis; workers as child processes).</summary>
    public const string Services = "gs1";

    public static readonly string[] Ids = [Batched, OneAtATime, InProcess, Lone, Services];

    public void PrintTable()
    {
        Console.WriteLine("| #   | scenario                                                  |   tokens/s | TTFT p50 ms | TTFT p99 ms | notes |");
        Console.WriteLine("|-----|-----------------------------------------------------------|-----------:|------------:|------------:|-------|");
        foreach (var s in scenarios)
        {
            var notes = new List<string>
            {
                s.Valid ? string.Create(CultureInfo.InvariantCulture, $"{s.Completed} generations, {s.Tokens} tokens, {s.TimesToFirstTokenMs.Length} TTFTs") : $"INVALID: {s.Errors} errors",
            };
            if (s.InProcess && s.ServerCpuMsPerToken is double all)
            {
                notes.Add(string.Create(CultureInfo.InvariantCulture, $"CPU ms/token {all:0.00} (in process)"));
            }
            else if (s.ServerCpuMsPerToken is double server && s.ClientCpuMsPerToken is double client)
            {
                notes.Add(string.Create(CultureInfo.InvariantCulture, $"CPU ms/token server {server:0.00} client {client:0.00}"));
            }

            if (s.BusyAfterStopSeconds > 1)
            {
                notes.Add(string.Create(CultureInfo.InvariantCulture, $"server busy up to {s.BusyAfterStopSeconds:0.0} s after a slice stopped"));
            }

            if (s.OtherCores is double other)
            {
                notes.Add(string.Create(CultureInfo.InvariantCulture, $"idle siblings {s.SiblingCores ?? 0:0.00} + other programs {other:0.00} cores"));
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {s.Id,-3} | {s.Label,-57} | {s.TokensPerSecond,10:0.0} | {Ms(s.TtftP50Ms),11} | {Ms(s.TtftP99Ms),11} | {string.Join(", ", notes)} |"));
        }
    }

    /// <summary>Prints the ratios; true when every bar that could be computed passed.</summary>
    public bool PrintRatios()
    {
        var batched = Get(Batched);
        var single = Get(OneAtATime);
        var engine = Get(InProcess);
        var lone = Get(Lone);
        var services = Get(Services);
        var ok = true;
        Console.WriteLine("generation ratios (lm-bench, tokens counted as token events received by the clients):");
        Console.WriteLine("| ratio                                              |    value | bar       | verdict | from |");
        Console.WriteLine("|----------------------------------------------------|---------:|-----------|---------|------|");
        ok &= Report.PrintRatio($"({Batched})/({OneAtATime}) continuous batching / one at a time", Div(batched, single), ">= 2.0", v => v >= 2.0,
            $"{Format.Num(batched?.TokensPerSecond)} / {Format.Num(single?.TokensPerSecond)} tokens/s", Invalid(batched, single));
        ok &= Report.PrintRatio($"({Batched})/({InProcess}) platform / engine in process", Div(batched, engine), ">= 0.8", v => v >= 0.8,
            $"{Format.Num(batched?.TokensPerSecond)} / {Format.Num(engine?.TokensPerSecond)} tokens/s", Invalid(batched, engine));
        ok &= Report.PrintRatio($"({Batched}) TTFT p99 / ({Lone}) lone TTFT p50", Ttft(batched, lone), "<= 4", v => v <= 4,
            $"{Format.Num(batched?.TtftP99Ms)} / {Format.Num(lone?.TtftP50Ms)} ms", Invalid(batched, lone));
        if (services is not null)
        {
            Report.PrintRatio($"({Services})/({Batched}) services / embedded, info", Div(services, batched), "info", null,
                $"{Format.Num(services.TokensPerSecond)} / {Format.Num(batched?.TokensPerSecond)} tokens/s", Invalid(services, batched));
            Report.PrintRatio($"({Services}) TTFT p99 / ({Lone}) lone TTFT p50, info", Ttft(services, lone), "info", null,
                $"{Format.Num(services.TtftP99Ms)} / {Format.Num(lone?.TtftP50Ms)} ms", Invalid(services, lone));
        }

        if (engine is not null)
        {
            Report.PrintRatio($"({InProcess}) TTFT p99 / ({Lone}) lone TTFT p50, info", Ttft(engine, lone), "info", null,
                $"{Format.Num(engine.TtftP99Ms)} / {Format.Num(lone?.TtftP50Ms)} ms", Invalid(engine, lone));
        }

        return ok;
    }

    public void PrintErrors()
    {
        foreach (var s in scenarios.Where(s => s.Errors > 0))
        {
            Console.WriteLine($"errors in ({s.Id}) {s.Label}: {s.Errors}");
            foreach (var sample in s.ErrorSamples)
            {
                Console.WriteLine($"    {sample}");
            }
        }
    }

    /// <summary>No TTFT in the window (one sequence at a time: a request waits for every other client's) reads n/a.</summary>
    private static string Ms(double ms) => double.IsNaN(ms) ? "n/a" : ms.ToString("0.0", CultureInfo.InvariantCulture);

    private GenerationScenario? Get(string id) => scenarios.FirstOrDefault(s => s.Id == id);

    private static double? Div(GenerationScenario? a, GenerationScenario? b) =>
        a is null || b is null || b.TokensPerSecond == 0 ? null : a.TokensPerSecond / b.TokensPerSecond;

    private static double? Ttft(GenerationScenario? loaded, GenerationScenario? lone) =>
        loaded is null || lone is null || double.IsNaN(loaded.TtftP99Ms) || !(lone.TtftP50Ms > 0) ? null : loaded.TtftP99Ms / lone.TtftP50Ms;

    private static bool Invalid(params GenerationScenario?[] inputs) => inputs.Any(s => s is { Valid: false });
}
