"""A page's identity: a canonical link is trusted only on the page's own site (registrable domain, by the PSL)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer

from pipeline.ingest import ingest
from pipeline.settings import Settings
from pipeline.sources.http import Page
from pipeline.sources.pages import canonical_url, page_document
from pipeline.sources.sites import same_site

from .test_fetch import article


def declaring(href: str) -> bytes:
    return article(f'<link rel="canonical" href="{href}">').encode()


TAKEN = [
    ("https://a.example.co.uk/x", "https://b.example.co.uk/y"),  # sibling subdomains under a two-label suffix
    ("https://user1.github.io/a", "https://user1.github.io/b"),
    ("http://news.example.com/a", "https://news.example.com/a"),  # http → https on the same host
    ("https://news.example.com/a", "http://example.com/a"),
    ("https://WWW.Example.COM/a", "https://EXAMPLE.com/b"),  # upper case
    ("https://www.example.com./a", "https://example.com/b"),  # a trailing dot is the same host
    ("https://example.com/a", "https://www.example.com./b"),
    ("https://bücher.de/a", "https://www.xn--bcher-kva.de/b"),  # the IDN and its punycode
    ("https://xn--bcher-kva.de/a", "https://BÜCHER.de/b"),
    ("https://example.com:8443/a", "https://example.com/b"),  # ports are not part of a site
    ("http://127.0.0.1:8000/a", "http://127.0.0.1:9000/b"),  # the same IP
    ("http://[::1]:8000/a", "http://[0:0::1]/b"),  # the same IPv6 address, written differently
    ("http://a.intranet/a", "http://a.intranet/b"),  # a name under no known suffix: the same host only
    ("https://alice.wordpress.com/a", "https://www.alice.wordpress.com/b"),  # one tenant's own subdomains
]
REFUSED = [
    ("https://news.example.com/a", "https://other.com/a"),
    ("https://example.co.uk/x", "https://other.co.uk/x"),  # two sites under one multi-part suffix
    ("https://foo.co.uk/x", "https://co.uk/x"),  # a public suffix is nobody's site
    ("https://user1.github.io/a", "https://user2.github.io/a"),  # a private suffix (PSL private section)
    ("https://user1.github.io/a", "https://github.io/a"),
    ("https://bücher.de/a", "https://xn--bcher-kvb.de/a"),  # another IDN
    ("https://example.com/a", "http://localhost/a"),
    ("http://localhost:8000/a", "http://127.0.0.1:8000/a"),
    ("http://127.0.0.1/a", "http://127.0.0.2/a"),
    ("http://127.0.0.1/a", "http://127.0.0.1.nip.io/a"),
    ("http://10.0.0.1/a", "http://10.0.0.1.example.com/a"),
    ("https://example.com/a", "https://evil.com./a"),
    ("https://example.com/a", "//evil.com/a"),  # protocol-relative
    ("https://example.com/a", "https://example.com@evil.com/a"),  # userinfo naming the page's host
    ("https://example.com/a", "https://example.com\\@evil.com/a"),  # backslash trick
    ("https://example.com/a", "https://user:pw@example.com/a"),  # credentials are no identity
    ("http://a.intranet/a", "http://b.intranet/a"),
    ("https://example.com/a", "https://example.com.evil.com/a"),
    # multi-tenant hosts the bundled PSL lacks: each tenant is a site of its own (pipeline/sources/data)
    ("https://alice.wordpress.com/a", "https://bob.wordpress.com/a"),
    ("https://alice.substack.com/p/a", "https://bob.substack.com/p/a"),
    ("https://alice.medium.com/a", "https://bob.medium.com/a"),
    ("https://alice.tumblr.com/post/1", "https://bob.tumblr.com/post/1"),
    ("https://alice.tumblr.com/post/1", "https://tumblr.com/post/1"),
    ("https://news.alice.ghost.io/a", "https://bob.ghost.io/a"),
]


@pytest.mark.parametrize(("page", "declared"), TAKEN)
def test_a_canonical_on_the_same_site_names_the_page(page: str, declared: str) -> None:
    assert canonical_url(page, declaring(declared)) != canonical_url(page, b"<html></html>")
    assert same_site(page, declared)


@pytest.mark.parametrize(("page", "declared"), REFUSED)
def test_a_canonical_on_another_site_is_not_the_pages_identity(page: str, declared: str) -> None:
    assert canonical_url(page, declaring(declared)) == canonical_url(page, b"<html></html>")


def test_a_refused_canonical_is_kept_as_metadata() -> None:
    page = Page(
        url="https://news.example.com/a",
        final_url="https://news.example.com/a?utm_source=x",
        status=200,
        body=declaring("https://other.com/story"),
        media_type="text/html",
    )
    raw = page_document(page)
    assert raw.source == "https://news.example.com/a"
    assert raw.metadata["url"] == raw.source
    assert raw.metadata["declared_canonical"] == "https://other.com/story"


@pytest.mark.postgres
def test_a_page_on_another_host_cannot_replace_an_article_by_claiming_its_url(
    httpserver: HTTPServer, db_settings: Settings, engine: sa.Engine
) -> None:
    """Page B (served as localhost) names page A (served as 127.0.0.1) as its canonical: A's article stays A's."""
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/a").respond_with_data(article(extra="The original story. "), content_type="text/html")
    a_url = httpserver.url_for("/a").replace("localhost", "127.0.0.1")
    httpserver.expect_request("/b").respond_with_data(
        article(f'<link rel="canonical" href="{a_url}">', extra="An impostor's story. "), content_type="text/html"
    )
    b_url = httpserver.url_for("/b")
    assert "localhost" in b_url
    settings = replace(db_settings, allow_private_hosts=True, fetch_host_interval=0.0, fetch_attempts=1)

    first = ingest(settings, engine, [a_url])
    second = ingest(settings, engine, [b_url])
    assert (first.loaded, second.loaded, second.replaced, second.failed) == (1, 1, 0, 0)
    with engine.connect() as conn:
        articles = dict(conn.execute(sa.text("SELECT source, url FROM articles")).tuples().all())
        a_text = conn.scalar(sa.text("SELECT text FROM articles WHERE source = :s"), {"s": a_url})
    assert articles == {a_url: a_url, b_url: b_url}
    assert "original story" in a_text and "impostor" not in a_text


PAGE = "https://example.com/page"
NOT_CANONICAL = {
    "in a comment": '<!-- <link rel="canonical" href="https://example.com/other"> -->',
    "in a script string": '<script>var s = \'<link rel="canonical" href="https://example.com/other">\';</script>',
    "in a style sheet's title": '<link title="rel=canonical" rel="stylesheet" href="https://example.com/style.css">',
    "a rel that only contains the word": '<link rel="noncanonical" href="https://example.com/other">',
    "in a template": '<template><link rel="canonical" href="https://example.com/other"></template>',
}


@pytest.mark.parametrize("head", NOT_CANONICAL.values(), ids=list(NOT_CANONICAL))
def test_only_a_link_element_whose_rel_has_the_canonical_token_names_the_page(head: str) -> None:
    """Before, a regular expression took a canonical from a comment, a script string or a stylesheet link."""
    assert canonical_url(PAGE, article(head).encode()) == PAGE


@pytest.mark.parametrize(
    "head",
    [
        '<link rel="canonical" data-href="https://example.com/decoy" href="https://example.com/real">',
        '<LINK REL="Alternate Canonical" HREF="/real">',
        "<link rel=canonical href=https://example.com/real>",
        '<!-- <link rel="canonical" href="https://example.com/decoy"> --><link rel="canonical" href="/real">',
    ],
)
def test_the_canonical_is_the_href_attribute_of_the_first_canonical_link(head: str) -> None:
    assert canonical_url(PAGE, article(head).encode()) == "https://example.com/real"
