using Microsoft.Playwright;

namespace ServerlessInference.DevHost.Tests;

/// <summary>Debian's <c>chromium</c> (installed by <c>infra/local/services.sh install</c>) driven by Playwright's .NET
/// driver, headless; Playwright's own browser download is never used. An xunit class fixture: the browser starts once.</summary>
/// <remarks>Where chromium is missing or cannot start, <see cref="Skip"/> says why: tests then skip with that reason,
/// except under <c>CI=true</c>, where they fail (as the service fixtures do). <c>SI_CHROMIUM</c> names another binary.</remarks>
public sealed class ChromiumBrowser : IAsyncLifetime
{
    private IPlaywright? _playwright;

    public IBrowser? Browser { get; private set; }

    /// <summary>Why there is no browser, or null.</summary>
    public string? Skip { get; private set; }

    public static bool IsCi => string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    public async Task InitializeAsync()
    {
        var executable = Find();
        if (executable is null)
        {
            Skip = "chromium is not installed (infra/local/services.sh install installs it; SI_CHROMIUM names another binary)";
            return;
        }

        try
        {
            _playwright = await Playwright.CreateAsync();
            Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = executable,
                Headless = true,
                // Root (CI, containers) cannot use chromium's sandbox; /dev/shm is small in containers.
                Args = ["--no-sandbox", "--disable-dev-shm-usage"],
                Timeout = 60_000,
            });
        }
        catch (Exception ex) when (ex is PlaywrightException or TimeoutException or IOException or InvalidOperationException)
        {
            Skip = $"chromium ({executable}) did not start under Playwright: {ex.Message.Split('\n')[0]}";
        }
    }

    /// <summary>Skips the calling test (outside CI) or fails it (under <c>CI=true</c>) when there is no browser.</summary>
    public IBrowser Require()
    {
        if (Browser is not null)
        {
            return Browser;
        }

        if (IsCi)
        {
            Assert.Fail($"{Skip}. CI=true: a browser test must run, not skip.");
        }

        Console.WriteLine($"skipping a browser test: {Skip}");
        Xunit.Skip.If(true, Skip);
        throw new InvalidOperationException("unreachable");
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
        {
            await Browser.DisposeAsync();
        }

        _playwright?.Dispose();
    }

    private static string? Find()
    {
        if (Environment.GetEnvironmentVariable("SI_CHROMIUM") is { Length: > 0 } configured)
        {
            return File.Exists(configured) ? configured : null;
        }

        return (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .SelectMany(folder => new[] { Path.Combine(folder, "chromium"), Path.Combine(folder, "chromium-browser") })
            .FirstOrDefault(File.Exists);
    }
}
