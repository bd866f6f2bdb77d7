"""Properties at the edges a page controls: any charset label (in a <meta>, a Content-Type header or a sidecar)
and any canonical link either works or is one document's clear error, never an exception of another kind."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_httpserver import HTTPServer

from pipeline.errors import ExtractError, FetchError
from pipeline.extract import extract
from pipeline.models import RawDocument
from pipeline.sources.http import Fetcher, FetchPolicy, Page
from pipeline.sources.pages import canonical_url, page_document

FAST = settings(max_examples=300, deadline=None)
# Labels: known ones, Python-only codec names, and arbitrary text.
LABELS = st.one_of(
    st.sampled_from(["utf-8", "latin1", "undefined", "rot13", "unicode_escape", "utf-16", "x-user-defined",
                     "iso-2022-kr", "base64", "idna", "punycode", "utf\x00", "hz-gb-2312", "mbcs", " UTF8 "]),
    st.text(max_size=40),
)  # fmt: skip
BODIES = st.sampled_from([b"caf\xe9 au lait, na\xefve", "café, naïve, Zürich".encode(), "Дума".encode("cp1251")])
HREFS = st.one_of(
    st.sampled_from(["http://[::1", "http://x.org:99999/", "https://", "//", "javascript:alert(1)", "http://a b/",
                     "http://ex ample.com/\x00", "http://[zz]/", "mailto:x@y", "http://x.org/%zz", ""]),
    st.text(max_size=60),
)  # fmt: skip


def page(label: str, body: bytes, href: str = "/same") -> bytes:
    head = f'<meta charset="{label}"><link rel="canonical" href="{href}"><title>A story</title>'
    text = b"<p>" + body + b" " + b"The minister said the talks would resume next week in the capital. " * 3 + b"</p>"
    return f"<html><head>{head}</head><body><article><h1>A story</h1>".encode("utf-8", "replace") + text + \
        b"</article></body></html>"  # fmt: skip


@FAST
@given(meta=LABELS, header=st.one_of(st.none(), LABELS), body=BODIES)
def test_any_charset_label_decodes_or_is_an_extract_error(meta: str, header: str | None, body: bytes) -> None:
    metadata = {"charset": header} if header is not None else {}
    for media_type in ("text/html", "text/plain", "text/markdown"):
        raw = RawDocument("https://example.com/a", page(meta, body), media_type, metadata)
        try:
            extracted = extract(raw)
        except ExtractError:
            continue
        assert extracted.blocks


@FAST
@given(href=HREFS)
def test_any_canonical_link_names_the_page_by_an_http_url(href: str) -> None:
    name = canonical_url("https://example.com/story?id=1", page("utf-8", b"x", href))
    assert name.startswith(("http://", "https://"))
    raw = page_document(Page("https://example.com/story", "https://example.com/story", 200, page("utf-8", b"x", href)))
    assert raw.source.startswith(("http://", "https://"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40), body=BODIES)
def test_any_content_type_charset_from_a_server_is_read_or_refused_cleanly(
    httpserver: HTTPServer, header: str, body: bytes
) -> None:
    httpserver.clear()
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    content_type = {"Content-Type": f"text/html; charset={header}"}
    httpserver.expect_request("/p").respond_with_data(page("utf-8", body), headers=content_type)
    policy = FetchPolicy(allow_private_hosts=True, host_interval=0.0, attempts=1)
    with Fetcher(policy) as fetcher:
        try:
            raw = page_document(fetcher.get(httpserver.url_for("/p")))
            extract(raw)
        except (FetchError, ExtractError):
            pass
