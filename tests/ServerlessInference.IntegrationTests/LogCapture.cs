using System.Globalization;
using Microsoft.Extensions.Logging;

namespace ServerlessInference.IntegrationTests;

/// <summary>Keeps the host's recent log lines (the worker processes' output included: the orchestrator forwards it) so
/// a failing assertion can show what the platform was doing.</summary>
public sealed class LogCapture : ILoggerProvider
{
    private const int Capacity = 20_000;
    private readonly Queue<string> _lines = new();
    private readonly Lock _lock = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    /// <summary>The last <paramref name="count"/> lines.</summary>
    public string Tail(int count = 80)
    {
        lock (_lock)
        {
            return string.Join('\n', _lines.Skip(Math.Max(0, _lines.Count - count)));
        }
    }

    /// <summary>Lines that contain <paramref name="text"/>.</summary>
    public IReadOnlyList<string> Matching(string text)
    {
        lock (_lock)
        {
            return _lines.Where(l => l.Contains(text, StringComparison.Ordinal)).ToList();
        }
    }

    /// <summary>The first line containing <paramref name="text"/> and up to <paramref name="count"/> lines after it from the
    /// same worker process (lines forwarded from a worker start with its <c>[worker-id]</c>).</summary>
    public IReadOnlyList<string> Following(string text, int count)
    {
        lock (_lock)
        {
            var lines = _lines.ToList();
            var at = lines.FindIndex(l => l.Contains(text, StringComparison.Ordinal));
            if (at < 0)
            {
                return [];
            }

            var open = lines[at].IndexOf("[worker-", StringComparison.Ordinal);
            var tag = open < 0 ? null : lines[at][open..(lines[at].IndexOf(']', open) + 1)];
            return lines.Skip(at).Where(l => tag is null || l.Contains(tag, StringComparison.Ordinal)).Take(count + 1).ToList();
        }
    }

    public void Dispose()
    {
    }

    private void Add(string line)
    {
        lock (_lock)
        {
            _lines.Enqueue(line);
            while (_lines.Count > Capacity)
            {
                _lines.Dequeue();
            }
        }
    }

    private sealed class Logger(LogCapture capture, string category) : ILogger
    {
        private readonly string _category = category[(category.LastIndexOf('.') + 1)..];

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            var line = string.Create(CultureInfo.InvariantCulture, $"{DateTime.UtcNow:HH:mm:ss.fff} {logLevel.ToString()[..4]} {_category}: {formatter(state, exception)}");
            if (exception is not null)
            {
                line += " | " + exception.GetType().Name + ": " + exception.Message.Split('\n')[0];
            }

            capture.Add(line);
        }
    }
}
