using Microsoft.AspNetCore.Http;
using ServerlessInference.Dashboard;
using ServerlessInference.Testing.Gateway;

namespace ServerlessInference.Functions.Tests.Gateway;

/// <summary>The Functions app's <c>/dashboard</c>: the very page the DevHost serves, anonymous where keys guard the data.</summary>
[Collection(FunctionsCollection.Name)]
public sealed class DashboardFunctionsTests(FunctionsFixture fixture)
{
    [Theory]
    [InlineData("/dashboard", "dashboard.html", "text/html")]
    [InlineData("/dashboard/dashboard.js", "dashboard.js", "text/javascript")]
    [InlineData("/dashboard/dashboard.css", "dashboard.css", "text/css")]
    public async Task Dashboard_WithKeys_ServesTheEmbeddedFilesWithoutAKey(string path, string resource, string mediaType)
    {
        var response = await fixture.Keyed.Gateway.SendAsync(GatewayRequest.Get(path));

        Assert.Equal(StatusCodes.Status200OK, response.Status);
        Assert.Equal(mediaType, response.MediaType);
        Assert.Equal(DashboardHttp.ContentSecurityPolicy, response.Header("Content-Security-Policy"));
        Assert.Equal(Embedded(resource), response.Body);
        Assert.Equal(StatusCodes.Status401Unauthorized, (await fixture.Keyed.Gateway.SendAsync(GatewayRequest.Get("/status"))).Status);
    }

    [Fact]
    public async Task Dashboard_UnknownFile_Is404WithAnOipError()
    {
        var response = await fixture.Serving.Gateway.SendAsync(GatewayRequest.Get("/dashboard/app.js"));

        Assert.Equal(StatusCodes.Status404NotFound, response.Status);
        Assert.Contains("unknown dashboard file 'app.js'", response.Error(), StringComparison.Ordinal);
    }

    private static byte[] Embedded(string name)
    {
        using var stream = typeof(DashboardHttp).Assembly.GetManifestResourceStream("ServerlessInference.Dashboard." + name)!;
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
