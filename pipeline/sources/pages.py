"""Pages: fetch an article page and name it by its canonical URL.

The canonical URL is the page's ``<link rel="canonical">`` when it names a
well-formed http(s) URL on the page's own site (``sites.same_site``: the same
registrable domain as the final URL), else the final URL after redirects,
normalised by courlan (host lower-cased, fragment and tracking parameters such
as ``utm_*`` and ``fbclid`` dropped), so the same story reached through two
feeds is one article. A page cannot take another site's article's name: a
canonical on another site is kept as the ``declared_canonical`` metadata only.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import courlan

from pipeline.models import RawDocument
from pipeline.sources.http import HTML_TYPES, Fetcher, Page
from pipeline.sources.sites import same_site

CANONICAL_LINK = re.compile(rb"""<link\b[^>]*\brel\s*=\s*["']?canonical["']?[^>]*>""", re.IGNORECASE)
HREF = re.compile(rb"""\bhref\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
HEAD_BYTES = 256 * 1024


def canonical_url(page_url: str, body: bytes) -> str:
    """The page's canonical URL, normalised; the page URL when it declares none, one that is malformed, or one
    on another site."""
    declared = declared_canonical(page_url, body)
    return declared if declared is not None and same_site(page_url, declared) else normalise_url(page_url)


def declared_canonical(page_url: str, body: bytes) -> str | None:
    """The well-formed http(s) canonical URL the page declares, absolute and normalised, wherever it points."""
    link = CANONICAL_LINK.search(body[:HEAD_BYTES])
    href = HREF.search(link.group(0)) if link else None
    declared = _absolute(page_url, href.group(1).decode("utf-8", "ignore").strip()) if href else None
    return normalise_url(declared) if declared and is_well_formed_url(declared) else None


def _absolute(page_url: str, href: str) -> str | None:
    try:
        return urljoin(page_url, href)
    except ValueError:  # "http://[::1", a port out of range, …
        return None


def is_well_formed_url(url: str) -> bool:
    """An http(s) URL with a host, a valid port if any, no user name or password (``https://a.com@b.com/`` is
    b.com to a parser and a.com to a reader), no backslash (a slash to browsers), and no whitespace or control
    characters."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    clean = not any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 or ch == "\\" for ch in url)
    plain_host = "@" not in parts.netloc
    return parts.scheme in {"http", "https"} and bool(parts.hostname) and clean and plain_host


def normalise_url(url: str) -> str:
    """Host lower-cased, fragment and tracking parameters dropped (courlan); the URL as given when courlan
    cannot parse it."""
    try:
        return str(courlan.normalize_url(url, strict=True))
    except Exception:  # noqa: BLE001 - courlan raises whatever urllib and its own checks raise
        return url


def fetch_page(fetcher: Fetcher, url: str) -> RawDocument:
    """A page as a RawDocument named by its canonical URL; the raw bytes are kept as fetched."""
    page = fetcher.get(url, accept=HTML_TYPES)
    return page_document(page)


def page_document(page: Page) -> RawDocument:
    """The page named by its canonical URL; a canonical on another site is kept as ``declared_canonical``."""
    canonical = canonical_url(page.final_url, page.body)
    metadata = {"url": canonical}
    declared = declared_canonical(page.final_url, page.body)
    if declared is not None and declared != canonical:
        metadata["declared_canonical"] = declared
    if page.charset:
        metadata["charset"] = page.charset
    return RawDocument(source=canonical, body=page.body, media_type="text/html", metadata=metadata)
