using System.Globalization;

namespace ServerlessInference.Bench;

/// <summary>Prints the table of one run and the ratios against their bars.</summary>
internal sealed class Report(IReadOnlyList<(RawResult Result, RawScenario Scenario)> raw, IReadOnlyList<HttpScenario> http, IReadOnlyList<ColdStartResult> coldStarts)
{
    /// <summary>Cold start and warm restart of each model beside a raw session creation (milliseconds).</summary>
    public void PrintColdStarts(int repetitions = 3)
    {
        if (coldStarts.Count == 0)
        {
            return;
        }

        Console.WriteLine($"model start-up in the bench process, children stopped; medians of {repetitions}. cold = blob download + sha256 + session (optimized graph saved);");
        Console.WriteLine("warm before = cached file re-hashed + graph optimized again; warm = proof of verification + session from the cached optimized graph; raw = new InferenceSession(path):");
        Console.WriteLine("| model      |     MB | cold ms | of which fetch | warm before ms | warm ms | re-hash ms | proof ms | session ms | cached-graph session ms | raw ms | warm before/raw | warm/raw |");
        Console.WriteLine("|------------|-------:|--------:|---------------:|---------------:|--------:|-----------:|---------:|-----------:|------------------------:|-------:|----------------:|---------:|");
        foreach (var c in coldStarts)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {c.Model,-10} | {c.Bytes / 1048576.0,6:0.0} | {c.ColdMs,7:0.0} | {c.ColdFetchMs,14:0.0} | {c.WarmBeforeMs,14:0.0} | {c.WarmMs,7:0.0} | {c.HashMs,10:0.0} | {c.ProofMs,8:0.00} | {c.SessionMs,10:0.0} | {c.CachedSessionMs,23:0.0} | {c.RawMs,6:0.0} | {c.WarmBeforeMs / c.RawMs,15:0.00} | {c.WarmMs / c.RawMs,8:0.00} |"));
        }
    }

    public void PrintTable()
    {
        Console.WriteLine("| #   | scenario                                                  |  throughput | unit   |   p50 ms |   p99 ms | notes |");
        Console.WriteLine("|-----|-----------------------------------------------------------|------------:|--------|---------:|---------:|-------|");
        foreach (var (r, scenario) in raw)
        {
            var (unit, value) = r.Key == RawChild.ResNet ? ("runs/s", r.RunsPerSecond) : ("rows/s", r.RowsPerSecond);
            Row("1", scenario.Label, value, unit, r.P50Ms, r.P99Ms, $"n={r.Runs}{Other(scenario)}");
        }

        foreach (var scenario in http)
        {
            var result = scenario.Result;
            var notes = new List<string> { result.Valid ? $"n={result.Completed}" : $"INVALID: {result.Errors} errors" };
            if (scenario.MeanBatch is double batch)
            {
                notes.Add(string.Create(CultureInfo.InvariantCulture, $"mean batch {batch:0.0}"));
            }

            if (scenario.ServerCpuMs is double server && scenario.ClientCpuMs is double client)
            {
                notes.Add(string.Create(CultureInfo.InvariantCulture, $"CPU ms/req server {server:0.00} client {client:0.00}"));
                if (scenario.SplitCpuMs is { } split)
                {
                    notes.Add(string.Create(CultureInfo.InvariantCulture, $"server = DevHost {split[0]:0.00} + worker {split[1]:0.00} + redis {split[2]:0.00}"));
                }
            }

            Row(scenario.Id.Split('@')[0], scenario.Label, result.PerSecond, "req/s", result.P50Ms, result.P99Ms, string.Join(", ", notes) + Other(scenario));
        }
    }

    /// <summary>Per-request internals of each server (from the probe startup hook): where the CPU goes besides the model.</summary>
    public void PrintInternals()
    {
        var rows = http.Where(h => h.Probe is not null && h.Requests > 0).ToList();
        if (rows.Count == 0)
        {
            return;
        }

        Console.WriteLine("server internals per request (slice warm-ups included; from the probe startup hook):");
        Console.WriteLine("| #   | scenario                                                  | KB alloc/req | gen0/1k req | gen1/1k req | gen2/1k req | GC pause % | work items/req | lock contentions/1k req | GC heap MB | RSS MB |");
        Console.WriteLine("|-----|-----------------------------------------------------------|-------------:|------------:|------------:|------------:|-----------:|---------------:|------------------------:|-----------:|-------:|");
        foreach (var h in rows)
        {
            var p = h.Probe!;
            double n = h.Requests;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {h.Id.Split('@')[0],-3} | {h.Label,-57} | {p.AllocatedBytes / 1024.0 / n,12:0.0} | {p.Gen0 * 1000 / n,11:0.00} | {p.Gen1 * 1000 / n,11:0.00} | {p.Gen2 * 1000 / n,11:0.000} | "
                + $"{(h.ProbeSeconds > 0 ? p.PauseMs / 10 / h.ProbeSeconds : 0),10:0.0} | {p.WorkItems / n,14:0.0} | {p.LockContentions * 1000 / n,23:0.0} | {p.HeapBytes / 1048576.0,10:0} | {h.PeakRssBytes / 1048576.0,6:0} |"));
        }
    }

    /// <summary>Prints the ratios; true when every bar that could be computed passed.</summary>
    public bool PrintRatios(int workers, IReadOnlyList<int> compared)
    {
        var ok = true;
        var rawB1 = Raw(RawChild.MlpBatch1);
        var rawB32 = Raw(RawChild.MlpBatch32);
        var rawResNet = Raw(RawChild.ResNet);
        var s2 = Http("2", workers);
        var s3 = Http("3", workers);
        var s4 = Http("4", null);
        var s5b = Http("5b", workers);
        var s5j = Http("5j", workers);
        var s6 = Http("6", workers);
        var baseC1 = Http("4c1", null);

        Console.WriteLine($"ratios ({workers} worker(s); raw figures with spinning off, as the platform runs):");
        Console.WriteLine("| ratio                                              |    value | bar       | verdict | from |");
        Console.WriteLine("|----------------------------------------------------|---------:|-----------|---------|------|");
        ok &= Ratio("(2)/(3) batching gain", Div(s2, s3), ">= 4", v => v >= 4, $"{Format.Num(s2?.PerSecond)} / {Format.Num(s3?.PerSecond)} req/s", s2, s3);
        ok &= Ratio("(2)/(4) platform / hand-written baseline", Div(s2, s4), ">= 0.8", v => v >= 0.8, $"{Format.Num(s2?.PerSecond)} / {Format.Num(s4?.PerSecond)} req/s", s2, s4);
        ok &= Ratio("(5 binary)/(1 resnet18)", PerRaw(s5b, rawResNet?.RunsPerSecond), ">= 0.75", v => v >= 0.75,
            $"{Format.Num(s5b?.PerSecond)} / {Format.Num(rawResNet?.RunsPerSecond)} runs/s", s5b);
        ok &= Ratio("(6) added latency ms: p50 HTTP c=1 - raw p50", Minus(s6, rawB1), "<= 1.5 ms", v => v <= 1.5,
            $"{Format.Num(s6?.P50Ms, "0.000")} - {Format.Num(rawB1?.P50Ms, "0.000")} ms", s6);
        Ratio("(2)/(1 mlp batch 32), info", PerRaw(s2, rawB32?.RowsPerSecond), "info", null, $"{Format.Num(s2?.PerSecond)} / {Format.Num(rawB32?.RowsPerSecond)} rows/s", s2);
        Ratio("(5 JSON)/(1 resnet18), info", PerRaw(s5j, rawResNet?.RunsPerSecond), "info", null, $"{Format.Num(s5j?.PerSecond)} / {Format.Num(rawResNet?.RunsPerSecond)} runs/s", s5j);
        Ratio("baseline added latency ms (4 c=1), info", Minus(baseC1, rawB1), "info", null, $"{Format.Num(baseC1?.P50Ms, "0.000")} - {Format.Num(rawB1?.P50Ms, "0.000")} ms", baseC1);
        var sv2 = Http("s2", null);
        var sv5b = Http("s5b", null);
        var sv6 = Http("s6", null);
        if (sv2 is not null || sv5b is not null || sv6 is not null)
        {
            ok &= Ratio("(s2)/(2) services / embedded, mlp c=64", Div(sv2, s2), ">= 0.85", v => v >= 0.85, $"{Format.Num(sv2?.PerSecond)} / {Format.Num(s2?.PerSecond)} req/s", sv2, s2);
            ok &= Ratio("(s5b)/(5b) services / embedded, resnet18 binary", Div(sv5b, s5b), ">= 0.85", v => v >= 0.85, $"{Format.Num(sv5b?.PerSecond)} / {Format.Num(s5b?.PerSecond)} req/s", sv5b, s5b);
            ok &= Ratio("(s6)-(6) services added p50 ms, mlp c=1", sv6 is null || s6 is null ? null : sv6.P50Ms - s6.P50Ms, "<= 3 ms", v => v <= 3,
                $"{Format.Num(sv6?.P50Ms, "0.000")} - {Format.Num(s6?.P50Ms, "0.000")} ms", sv6, s6);
        }

        foreach (var c in coldStarts)
        {
            Ratio($"cold start / raw session, {c.Model}, info", c.ColdMs / c.RawMs, "info", null, string.Create(CultureInfo.InvariantCulture, $"{c.ColdMs:0.0} / {c.RawMs:0.0} ms"));
            Ratio($"warm restart / raw session, {c.Model}, info", c.WarmMs / c.RawMs, "info", null, string.Create(CultureInfo.InvariantCulture, $"{c.WarmMs:0.0} / {c.RawMs:0.0} ms"));
        }

        foreach (var other in compared.Where(c => c != workers))
        {
            var o2 = Http("2", other);
            Ratio($"(2)/(4) with {other} worker(s), info", Div(o2, s4), "info", null, $"{Format.Num(o2?.PerSecond)} / {Format.Num(s4?.PerSecond)} req/s", o2, s4);
            var o5 = Http("5b", other);
            Ratio($"(5 binary)/(1) with {other} worker(s), info", PerRaw(o5, rawResNet?.RunsPerSecond), "info", null,
                $"{Format.Num(o5?.PerSecond)} / {Format.Num(rawResNet?.RunsPerSecond)} runs/s", o5);
            var o6 = Http("6", other);
            Ratio($"(6) with {other} worker(s), ms, info", Minus(o6, rawB1), "info", null, $"{Format.Num(o6?.P50Ms, "0.000")} - {Format.Num(rawB1?.P50Ms, "0.000")} ms", o6);
        }

        foreach (var variant in http.Select(h => h.Id).Where(id => id.Contains('@', StringComparison.Ordinal)).Select(id => id[(id.IndexOf('@', StringComparison.Ordinal) + 1)..]).Distinct())
        {
            var v2 = Http($"2@{variant}", workers);
            Ratio($"(2@{variant})/(4), info", Div(v2, s4), "info", null, $"{Format.Num(v2?.PerSecond)} / {Format.Num(s4?.PerSecond)} req/s", v2, s4);
            var v5 = Http($"5b@{variant}", workers);
            Ratio($"(5b@{variant})/(1), info", PerRaw(v5, rawResNet?.RunsPerSecond), "info", null, $"{Format.Num(v5?.PerSecond)} / {Format.Num(rawResNet?.RunsPerSecond)} runs/s", v5);
            var v6 = Http($"6@{variant}", workers);
            Ratio($"(6@{variant}) ms, info", Minus(v6, rawB1), "info", null, $"{Format.Num(v6?.P50Ms, "0.000")} - {Format.Num(rawB1?.P50Ms, "0.000")} ms", v6);
        }

        return ok;
    }

    public void PrintErrors()
    {
        foreach (var scenario in http.Where(h => h.Result.Errors > 0))
        {
            Console.WriteLine($"errors in ({scenario.Id}) {scenario.Label}: {scenario.Result.Errors}");
            foreach (var sample in scenario.Result.ErrorSamples)
            {
                Console.WriteLine($"    {sample}");
            }
        }
    }

    private static string Other(Scenario scenario) => scenario.OtherCores is double c
        ? string.Create(CultureInfo.InvariantCulture, $", idle siblings {scenario.SiblingCores ?? 0:0.00} + other programs {c:0.00} cores")
        : "";

    private RawResult? Raw(string key) => raw.Where(r => !r.Scenario.Child.Spinning && r.Result.Key == key).Select(r => r.Result).FirstOrDefault();

    private LoadResult? Http(string id, int? workers) =>
        http.Where(h => h.Id == id && (workers is null || h.Workers == workers)).Select(h => h.Result).FirstOrDefault();

    private static double? Div(LoadResult? a, LoadResult? b) => a is null || b is null || b.PerSecond == 0 ? null : a.PerSecond / b.PerSecond;

    private static double? PerRaw(LoadResult? a, double? raw) => a is null || raw is not double r || r == 0 ? null : a.PerSecond / r;

    private static double? Minus(LoadResult? a, RawResult? raw) => a is null || raw is null ? null : a.P50Ms - raw.P50Ms;

    /// <summary>Prints one ratio; returns false only for a bar that was computed and failed, or rests on a run with errors.</summary>
    private static bool Ratio(string name, double? value, string bar, Func<double, bool>? pass, string from, params LoadResult?[] inputs) =>
        PrintRatio(name, value, bar, pass, from, inputs.Any(r => r is { Valid: false }));

    /// <summary>Prints one ratio row; returns false only for a bar that was computed and failed, or rests on an
    /// <paramref name="invalidInput"/> (a run with errors).</summary>
    internal static bool PrintRatio(string name, double? value, string bar, Func<double, bool>? pass, string from, bool invalidInput)
    {
        string verdict;
        var ok = true;
        if (value is null)
        {
            verdict = "n/a";
        }
        else if (invalidInput)
        {
            verdict = "INVALID";
            ok = pass is null;
        }
        else if (pass is null)
        {
            verdict = "";
        }
        else
        {
            ok = pass(value.Value);
            verdict = ok ? "PASS" : "FAIL";
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name,-50} | {Format.Num(value, "0.00"),8} | {bar,-9} | {verdict,-7} | {from} |"));
        return ok;
    }

    private static void Row(string id, string label, double value, string unit, double p50, double p99, string notes) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {id,-3} | {label,-57} | {value,11:0.0} | {unit,-6} | {p50,8:0.000} | {p99,8:0.000} | {notes} |"));
}
