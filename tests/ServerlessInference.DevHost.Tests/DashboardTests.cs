using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using ServerlessInference.Dashboard;

namespace ServerlessInference.DevHost.Tests;

/// <summary><c>GET /dashboard</c> over HTTP: the page and its files, anonymous even where keys guard its data.</summary>
[Collection(DevHostCollection.Name)]
public sealed class DashboardTests(DevHostFixture fixture)
{
    [Theory]
    [InlineData("/dashboard", "text/html")]
    [InlineData("/dashboard/dashboard.js", "text/javascript")]
    [InlineData("/dashboard/dashboard.css", "text/css")]
    public async Task Dashboard_WithKeys_ServesItsFilesWithoutAKeyUnderAStrictPolicy(string path, string mediaType)
    {
        using var client = fixture.Keyed.CreateClient();

        using var response = await client.GetAsync(new Uri(path, UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(mediaType, response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("utf-8", response.Content.Headers.ContentType?.CharSet);
        Assert.Equal(DashboardHttp.ContentSecurityPolicy, response.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Equal("nosniff", response.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.True((await response.Content.ReadAsByteArrayAsync()).Length > 100);

        // The data the page reads is not anonymous.
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync(new Uri("/status", UriKind.Relative))).StatusCode);
    }

    [Fact]
    public async Task Dashboard_Page_LoadsItsOwnFilesOnlyAndReadsStatusAndMetricsBesideIt()
    {
        using var client = fixture.Host.CreateClient();

        var html = await client.GetStringAsync(new Uri("/dashboard", UriKind.Relative));
        var js = await client.GetStringAsync(new Uri("/dashboard/dashboard.js", UriKind.Relative));

        Assert.Contains("src=\"dashboard/dashboard.js\"", html, StringComparison.Ordinal);
        Assert.Contains("href=\"dashboard/dashboard.css\"", html, StringComparison.Ordinal);
        Assert.DoesNotContain("http://", html, StringComparison.Ordinal);
        Assert.DoesNotContain("https://", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script>", html, StringComparison.Ordinal); // nothing inline: the policy would block it
        Assert.Contains("fetchData('status')", js, StringComparison.Ordinal);
        Assert.Contains("fetchData('metrics')", js, StringComparison.Ordinal);
        Assert.DoesNotContain("https://", js, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dashboard_UnknownFile_Is404WithAnOipError()
    {
        using var client = fixture.Host.CreateClient();

        using var response = await client.GetAsync(new Uri("/dashboard/secrets.json", UriKind.Relative));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains("unknown dashboard file 'secrets.json'", body.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync(new Uri("/dashboard/dashboard.html", UriKind.Relative))).StatusCode);
    }

    [Fact]
    public async Task Dashboard_TrailingSlash_RedirectsToThePageSoRelativeAddressesResolve()
    {
        using var client = fixture.Host.CreateClient(new Microsoft.AspNetCore.Mvc.Testing.WebApplicationFactoryClientOptions { AllowAutoRedirect = false });

        using var response = await client.GetAsync(new Uri("/dashboard/?interval=1", UriKind.Relative));

        Assert.Equal(HttpStatusCode.MovedPermanently, response.StatusCode);
        Assert.Equal("/dashboard?interval=1", response.Headers.Location?.OriginalString);
    }

    [Fact]
    public async Task Dashboard_WithAManagementPort_IsServedThereBesideStatusAndNotOnThePublicPort()
    {
        var root = Path.Combine(Path.GetTempPath(), "si-dashboard-tests", Guid.NewGuid().ToString("N"));
        var (publicPort, managementPort) = (FreePort(), FreePort());
        try
        {
            using var host = new DevHostFactory(root, new Dictionary<string, string?>
            {
                ["urls"] = $"http://127.0.0.1:{publicPort}",
                ["Inference:Auth:ManagementUrl"] = $"http://127.0.0.1:{managementPort}",
                ["Inference:DemoModels:Seed"] = "false",
            });
            host.UseKestrel();
            host.StartServer();
            Assert.Contains($"http://127.0.0.1:{managementPort}", host.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses);
            using var client = new HttpClient();

            async Task<HttpStatusCode> Get(int port, string path) => (await client.GetAsync(new Uri($"http://127.0.0.1:{port}{path}"))).StatusCode;

            Assert.Equal(HttpStatusCode.OK, await Get(managementPort, "/dashboard"));
            Assert.Equal(HttpStatusCode.OK, await Get(managementPort, "/dashboard/dashboard.js"));
            Assert.Equal(HttpStatusCode.NotFound, await Get(publicPort, "/dashboard"));
            Assert.Equal(HttpStatusCode.NotFound, await Get(publicPort, "/dashboard/dashboard.js"));
        }
        finally
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
