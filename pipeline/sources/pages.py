"""Pages: fetch an article page and name it by its canonical URL.

The canonical URL is the page's ``<link rel="canonical">`` (found by an HTML parser, so never in a comment,
a script or a template; ``rel`` must hold the token, the attribute must be ``href``) when it names a
well-formed http(s) URL on the page's own site (``sites.same_site``: the same
registrable domain as the final URL), else the final URL after redirects,
normalised by courlan (host lower-cased, fragment and tracking parameters such
as ``utm_*`` and ``fbclid`` dropped), so the same story reached through two
feeds is one article. A page cannot take another site's article's name: a
canonical on another site is kept as the ``declared_canonical`` metadata only.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

import courlan
import lxml.etree  # type: ignore[import-untyped]  # lxml ships no type hints
import lxml.html  # type: ignore[import-untyped]

from pipeline.models import RawDocument
from pipeline.sources.http import HTML_TYPES, Fetcher, Page
from pipeline.sources.sites import same_site

HEAD_BYTES = 256 * 1024


def canonical_url(page_url: str, body: bytes) -> str:
    """The page's canonical URL, normalised; the page URL when it declares none, one that is malformed, or one
    on another site."""
    declared = declared_canonical(page_url, body)
    return declared if declared is not None and same_site(page_url, declared) else normalise_url(page_url)


def declared_canonical(page_url: str, body: bytes) -> str | None:
    """The well-formed http(s) canonical URL the page declares, absolute and normalised, wherever it points."""
    href = canonical_href(body[:HEAD_BYTES])
    declared = _absolute(page_url, href.strip()) if href else None
    return normalise_url(declared) if declared and is_well_formed_url(declared) else None


def canonical_href(html: bytes) -> str | None:
    """The ``href`` attribute of the first ``<link>`` element whose ``rel`` holds the token ``canonical``, as an
    HTML parser sees the document: not in a comment, a script, a style or a template, not ``data-href``, not a
    ``title`` that spells ``rel=canonical``."""
    if b"canonical" not in html.lower():
        return None  # the usual page without one is not parsed
    try:
        root = lxml.html.document_fromstring(html, parser=lxml.html.HTMLParser(encoding="utf-8", no_network=True))
    except (lxml.etree.ParserError, lxml.etree.XMLSyntaxError, ValueError):
        return None
    for link in root.iter("link"):
        rel = str(link.get("rel") or "").lower().split()
        inert = any(ancestor.tag == "template" for ancestor in link.iterancestors())
        if "canonical" in rel and not inert and link.get("href"):
            return str(link.get("href"))
    return None


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
