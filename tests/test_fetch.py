"""HTTP fetching against a local server: retries, limits, redirects, the SSRF guard, charsets, robots.txt."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import brotli
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

import pipeline.sources.guard as guard
import pipeline.sources.http as http
from pipeline.extract import extract
from pipeline.sources.guard import UnsafeURLError, check_url
from pipeline.sources.http import Fetcher, FetchError, FetchPolicy
from pipeline.sources.pages import canonical_url, fetch_page

from .conftest import BENCHMARK

ARTICLE = (
    "<html><head><title>Talks resume</title>{head}</head><body><article><h1>Talks resume</h1>"
    + "<p>Negotiators from both sides met in Istanbul on Thursday for the first direct talks in three years.</p>" * 4
    + "<h2>What comes next</h2><p>{extra}Both delegations said they would meet again within a fortnight.</p>"
    "</article></body></html>"
)
POLICY = FetchPolicy(allow_private_hosts=True, host_interval=0, backoff_seconds=0.05, attempts=3, read_timeout=2)


@pytest.fixture
def server(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    return httpserver


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher(POLICY) as client:
        yield client


def article(head: str = "", extra: str = "") -> str:
    return ARTICLE.format(head=head, extra=extra)


def test_page_is_named_by_its_canonical_url_without_tracking(server: HTTPServer, fetcher: Fetcher) -> None:
    canonical = '<link rel="canonical" href="/news/talks?utm_source=rss&id=7">'
    server.expect_request("/story").respond_with_data(article(canonical), content_type="text/html")
    raw = fetch_page(fetcher, server.url_for("/story"))
    assert raw.source == server.url_for("/news/talks?id=7")
    assert [b.text for b in extract(raw).blocks if b.kind == "heading"] == ["What comes next"]


def test_conditional_get_returns_not_modified(server: HTTPServer, fetcher: Fetcher) -> None:
    server.expect_request("/feed", headers={"If-None-Match": '"v1"'}).respond_with_data("", status=304)
    page = fetcher.get(server.url_for("/feed"), etag='"v1"')
    assert page.not_modified


def test_client_errors_are_reported_not_retried(server: HTTPServer, fetcher: Fetcher) -> None:
    server.expect_request("/gone").respond_with_data("no", status=404)
    with pytest.raises(FetchError, match="HTTP 404"):
        fetcher.get(server.url_for("/gone"))
    assert len([r for r, _ in server.log if r.path == "/gone"]) == 1


def test_server_error_then_success_is_retried(server: HTTPServer, fetcher: Fetcher) -> None:
    server.expect_oneshot_request("/flaky").respond_with_data("busy", status=500)
    server.expect_request("/flaky").respond_with_data(article(), content_type="text/html")
    assert fetcher.get(server.url_for("/flaky")).status == 200


def test_too_many_requests_honours_retry_after(server: HTTPServer, fetcher: Fetcher) -> None:
    server.expect_oneshot_request("/busy").respond_with_data("", status=429, headers={"Retry-After": "1"})
    server.expect_request("/busy").respond_with_data(article(), content_type="text/html")
    started = time.monotonic()
    assert fetcher.get(server.url_for("/busy")).status == 200
    assert time.monotonic() - started >= 1.0


def test_persistent_server_errors_end_in_a_clear_error(server: HTTPServer, fetcher: Fetcher) -> None:
    server.expect_request("/down").respond_with_data("", status=503)
    with pytest.raises(FetchError, match="HTTP 503 after 3 attempts"):
        fetcher.get(server.url_for("/down"))


def test_slow_response_times_out(server: HTTPServer) -> None:
    def slow(_request: Request) -> Response:
        time.sleep(1.0)
        return Response(article(), content_type="text/html")

    server.expect_request("/slow").respond_with_handler(slow)
    with Fetcher(replace(POLICY, read_timeout=0.3, attempts=2)) as client, pytest.raises(FetchError, match="timed out"):
        client.get(server.url_for("/slow"))


def test_oversized_body_is_refused(server: HTTPServer) -> None:
    server.expect_request("/big").respond_with_data("x" * 50_000, content_type="text/html")
    with Fetcher(replace(POLICY, max_bytes=10_000)) as client, pytest.raises(FetchError, match="limit"):
        client.get(server.url_for("/big"))


def test_oversized_body_is_refused_while_streaming(server: HTTPServer) -> None:
    def chunked(_request: Request) -> Response:
        return Response((b"x" * 4096 for _ in range(10)), content_type="text/html", direct_passthrough=True)

    server.expect_request("/stream").respond_with_handler(chunked)
    with Fetcher(replace(POLICY, max_bytes=10_000)) as client, pytest.raises(FetchError, match="limit"):
        client.get(server.url_for("/stream"))


def test_redirect_loop_stops_after_five(server: HTTPServer, fetcher: Fetcher) -> None:
    server.expect_request("/a").respond_with_data("", status=302, headers={"Location": "/b"})
    server.expect_request("/b").respond_with_data("", status=302, headers={"Location": "/a"})
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetcher.get(server.url_for("/a"))


def test_redirect_to_a_private_address_is_refused(server: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test server is on loopback, so loopback counts as public here; 10.0.0.0/8 stays private."""
    real = guard.non_public_reason
    monkeypatch.setattr(guard, "non_public_reason", lambda a: None if a.startswith("127.") else real(a))
    server.expect_request("/hop").respond_with_data("", status=302, headers={"Location": "http://10.1.2.3/admin"})
    with Fetcher(replace(POLICY, allow_private_hosts=False)) as client, pytest.raises(FetchError) as error:
        client.get(server.url_for("/hop"))
    assert "10.1.2.3 (private)" in str(error.value)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://10.0.0.5/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/", "loopback"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://100.64.0.1/", "not globally routable"),
        ("http://2130706433/", "loopback"),
        ("http://0x7f.0.0.1/", "loopback"),
        ("http://127.1/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),
        ("http://[2002:c0a8:0101::1]/", "private"),
        ("http://[fe80::1%25eth0]/", "link-local"),
        ("http://[fc00::1]/", "private"),
        ("http://[fd12:3456::1]/", "private"),
        ("http://[::]/", "unspecified"),
        ("http://[ff02::1]/", "multicast"),
        ("http://localhost/", "loopback"),
    ],
)
def test_guard_refuses_non_public_addresses(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURLError, match=reason):
        check_url(url, allow_private=False)
    check_url(url, allow_private=True)


def test_the_connected_address_is_checked_against_dns_rebinding(
    server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name passes the guard (as a rebinding DNS answer would), but the socket reaches loopback."""
    for name in http.PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(guard, "resolve", lambda host, port: ["93.184.216.34"])
    server.expect_request("/page").respond_with_data(article(), content_type="text/html")
    policy = replace(POLICY, allow_private_hosts=False, respect_robots=False)
    with Fetcher(policy) as client, pytest.raises(FetchError, match=r"connected to \S+ \(loopback\)"):
        client.get(server.url_for("/page"))


@pytest.mark.parametrize("url", ["ftp://example.com/file", "file:///etc/passwd", "http:///nohost"])
def test_guard_refuses_other_schemes(url: str) -> None:
    with pytest.raises(UnsafeURLError):
        check_url(url, allow_private=True)


def test_wrong_charset_header_falls_back_to_the_page(server: HTTPServer, fetcher: Fetcher) -> None:
    body = article(extra="Le café était fermé à Genève. ").encode("cp1252")
    server.expect_request("/cp1252").respond_with_data(body, content_type="text/html; charset=utf-8")
    text = "\n".join(b.text for b in extract(fetch_page(fetcher, server.url_for("/cp1252"))).blocks)
    assert "Le café était fermé à Genève." in text


def test_legacy_charset_from_the_header(server: HTTPServer, fetcher: Fetcher) -> None:
    body = article(extra="Переговоры продолжатся в Стамбуле. ").encode("windows-1251")
    server.expect_request("/ru").respond_with_data(body, content_type="text/html; charset=windows-1251")
    text = "\n".join(b.text for b in extract(fetch_page(fetcher, server.url_for("/ru"))).blocks)
    assert "Переговоры продолжатся в Стамбуле." in text


@pytest.mark.parametrize(("encoding", "compress"), [("gzip", gzip.compress), ("br", brotli.compress)])
def test_compressed_bodies_are_decoded(server: HTTPServer, fetcher: Fetcher, encoding: str, compress: Any) -> None:
    headers = {"Content-Encoding": encoding}
    server.expect_request("/z").respond_with_data(
        compress(article().encode()), content_type="text/html", headers=headers
    )
    assert b"What comes next" in fetcher.get(server.url_for("/z")).body


def test_wrong_content_type_is_refused(server: HTTPServer, fetcher: Fetcher) -> None:
    server.expect_request("/image").respond_with_data(b"\x89PNG", content_type="image/png")
    with pytest.raises(FetchError, match="unexpected content type image/png"):
        fetcher.get(server.url_for("/image"))


def test_robots_txt_is_respected(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("User-agent: *\nDisallow: /private/\n")
    httpserver.expect_request("/private/page").respond_with_data(article(), content_type="text/html")
    with Fetcher(POLICY) as client, pytest.raises(FetchError, match=r"disallowed by robots\.txt"):
        client.get(httpserver.url_for("/private/page"))
    assert not [r for r, _ in httpserver.log if r.path == "/private/page"]


def test_requests_to_one_host_are_spaced(server: HTTPServer) -> None:
    server.expect_request("/p").respond_with_data(article(), content_type="text/html")
    with Fetcher(replace(POLICY, host_interval=0.3)) as client:
        started = time.monotonic()
        for _ in range(3):
            client.get(server.url_for("/p"))
    assert time.monotonic() - started >= 0.6


def test_user_agent_names_the_project(server: HTTPServer, fetcher: Fetcher) -> None:
    server.expect_request("/ua").respond_with_data(article(), content_type="text/html")
    fetcher.get(server.url_for("/ua"))
    [request] = [r for r, _ in server.log if r.path == "/ua"]
    assert request.headers["User-Agent"].startswith("Newsflow/")


def test_canonical_url_of_a_benchmark_page() -> None:
    page = next((BENCHMARK / "html").glob("*.html.gz"))
    url = canonical_url("https://example.com/a?utm_medium=x", gzip.decompress(page.read_bytes()))
    assert url.startswith("http") and "utm_" not in url
