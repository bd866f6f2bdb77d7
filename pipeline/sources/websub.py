"""WebSub (W3C Recommendation, 2018) for a subscriber: finding a feed's hub, asking it for a subscription, and
checking the signature of what it delivers. No database and no server here (``pipeline/ingest/websub.py``).

- Discovery: the HTTP ``Link`` headers of the feed's response first (``rel="hub"``, ``rel="self"``), then the
  feed's own ``<link rel="hub">`` and ``<link rel="self">`` (Atom, or ``atom:link`` in RSS). The topic is the
  self URL, else the URL the feed was fetched from.
- A subscription request is a form POST to the hub (``hub.mode=subscribe``, ``hub.topic``, ``hub.callback``,
  ``hub.secret``, ``hub.lease_seconds``) through the SSRF guard, without redirects; any 2xx is accepted (the
  hub then verifies the intent at the callback).
- Signatures: ``X-Hub-Signature: METHOD=HEX``, an HMAC of the body's bytes under the subscription's secret,
  METHOD one of sha1, sha256, sha384, sha512; compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx

from pipeline.errors import FeedError, SignatureError, WebSubError
from pipeline.models import FeedEntry, SkippedEntry
from pipeline.sources.feed_parsing import ParseLimits, parse_feed
from pipeline.sources.feeds import feed_entry
from pipeline.sources.guard import UnsafeURLError, check_url
from pipeline.sources.http import FEED_TYPES, HTML_TYPES, Fetcher

METHODS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
MAX_SIGNATURE_CHARS = 200  # "sha512=" and 128 hex digits is 135
MAX_LINK_HEADER_CHARS = 16_384
MAX_SECRET_BYTES = 199  # the spec: hub.secret MUST be less than 200 bytes
LINK_TARGET = re.compile(r"\s*<([^<>]*)>")
LINK_PARAM = re.compile(r'\s*;\s*([A-Za-z0-9!#$&+.^_`|~*\'-]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"?|[^;,<\s]*))?')
LINK_SKIP = re.compile(r'[^;,<"]*')  # anything else up to the next parameter, link or quote


@dataclass(frozen=True)
class Signature:
    """A parsed ``X-Hub-Signature``: the hash's name and the digest's bytes."""

    method: str
    digest: bytes


def parse_signature(header: str | None) -> Signature:
    """``METHOD=HEX`` as a ``Signature``; ``SignatureError`` saying why when absent, malformed or of an unknown
    method, or when the digest is not as long as the method's."""
    if header is None or not header.strip():
        raise SignatureError("unsigned delivery: no X-Hub-Signature")
    if len(header) > MAX_SIGNATURE_CHARS:
        raise SignatureError(f"malformed X-Hub-Signature: over {MAX_SIGNATURE_CHARS} characters")
    method, equals, digits = header.strip().partition("=")
    method = method.strip().lower()
    if not equals or method not in METHODS:
        raise SignatureError(f"unsupported X-Hub-Signature method {method[:20]!r} (sha1, sha256, sha384, sha512)")
    digits = digits.strip()
    if not re.fullmatch(r"[0-9A-Fa-f]*", digits, flags=re.ASCII) or len(digits) != 2 * METHODS[method]().digest_size:
        raise SignatureError(f"malformed X-Hub-Signature: not a {method} digest in hex")
    return Signature(method, bytes.fromhex(digits))


def sign(body: bytes, secret: str, method: str = "sha256") -> str:
    """The ``X-Hub-Signature`` a hub sends with ``body`` (for the hub stand-in and the bench)."""
    return f"{method}={hmac.new(secret.encode('utf-8'), body, METHODS[method]).hexdigest()}"


def check_signature(header: str | None, body: bytes, secret: str) -> None:
    """``SignatureError`` unless ``header`` is the HMAC of ``body`` under ``secret`` (constant-time compare)."""
    signature = parse_signature(header)
    expected = hmac.new(secret.encode("utf-8"), body, METHODS[signature.method]).digest()
    if not hmac.compare_digest(expected, signature.digest):
        raise SignatureError(f"forged delivery: the {signature.method} signature does not match")


def link_header(value: str | None) -> list[tuple[str, frozenset[str]]]:
    """Each link of a ``Link`` header (RFC 8288) as its URI reference and its ``rel`` values, lower-cased."""
    text, links, at = (value or "")[:MAX_LINK_HEADER_CHARS], [], 0
    while (start := text.find("<", at)) >= 0:
        if (target := LINK_TARGET.match(text, start)) is None:
            at = start + 1  # a "<" that opens no link: look from the next character
            continue
        params, at = _link_params(text, target.end())
        rel = params.get("rel", "").strip('"')
        links.append((target.group(1).strip(), frozenset(rel.lower().split())))
    return links


def _link_params(text: str, at: int) -> tuple[dict[str, str], int]:
    """The parameters of one link from ``at`` (quoted values may hold ``,``, ``;`` and ``<``), and where the
    next link may start. Linear: each step consumes at least one character."""
    params: dict[str, str] = {}
    while at < len(text) and text[at] not in ",<":
        if param := LINK_PARAM.match(text, at):
            params.setdefault(param.group(1).lower(), param.group(2) or "")  # the first of a repeat counts
            at = param.end()
        else:
            skipped = LINK_SKIP.match(text, at)
            at = max(at + 1, skipped.end() if skipped else at + 1)
    return params, at


@dataclass(frozen=True)
class Discovery:
    """Where a feed is pushed from: its topic URL and its hubs (none: the feed is polled only)."""

    topic: str
    hubs: tuple[str, ...]


def discover(page_url: str, links: str | None, feed_links: Iterable[Mapping[str, Any]]) -> Discovery:
    """The topic and hubs of a feed fetched from ``page_url``: its ``Link`` headers first, then its own links."""
    headers = link_header(links)
    hubs = [url for url, rels in headers if "hub" in rels]
    selves = [url for url, rels in headers if "self" in rels]
    if not hubs:
        hubs = [str(link.get("href")) for link in feed_links if link.get("rel") == "hub" and link.get("href")]
        selves = selves or [str(link["href"]) for link in feed_links if link.get("rel") == "self" and link.get("href")]
    topic = urljoin(page_url, selves[0]) if selves else page_url
    resolved = (urljoin(page_url, hub) for hub in hubs)
    return Discovery(topic, tuple(dict.fromkeys(hub for hub in resolved if hub.startswith(("http://", "https://")))))


def discover_feed(fetcher: Fetcher, url: str, limits: ParseLimits) -> Discovery:
    """Fetch the feed at ``url`` and find its hubs; ``FetchError`` or ``FeedError`` when it cannot be read."""
    page = fetcher.get(url, accept=FEED_TYPES | HTML_TYPES | {"text/plain"})
    parsed = parse_feed(page.body, _parse_headers(page.final_url, page.media_type), limits)
    return discover(page.final_url, page.links, parsed.links)


def _parse_headers(location: str, content_type: str | None) -> dict[str, str]:
    headers = {"content-location": location}
    if content_type:
        headers["content-type"] = content_type
    return headers


@dataclass(frozen=True)
class SubscribeRequest:
    """One ``hub.mode=subscribe`` request; ``secret`` never shows in a repr."""

    hub: str
    topic: str
    callback: str
    secret: str = field(repr=False)
    lease_seconds: int


def request_subscription(client: httpx.Client, request: SubscribeRequest, *, allow_private: bool) -> int:
    """POST the request to its hub (checked by the SSRF guard, no redirects followed) and return the status;
    ``WebSubError`` with the reason when the hub cannot be reached or answers other than 2xx."""
    form = {"hub.mode": "subscribe", "hub.topic": request.topic, "hub.callback": request.callback}
    form |= {"hub.secret": request.secret, "hub.lease_seconds": str(request.lease_seconds)}
    try:
        check_url(request.hub, allow_private=allow_private)
        response = client.post(request.hub, data=form, follow_redirects=False)
    except UnsafeURLError as error:
        raise WebSubError(f"hub {request.hub}: {error}") from error
    except httpx.HTTPError as error:
        raise WebSubError(f"hub {request.hub}: {type(error).__name__}: {error}") from error
    if not 200 <= response.status_code < 300:
        said = " ".join(response.text[:200].split())
        raise WebSubError(f"hub {request.hub} refused the subscription: HTTP {response.status_code} {said}".strip())
    return response.status_code


def delivered_entries(
    feed_url: str, body: bytes, content_type: str | None, limits: ParseLimits
) -> tuple[list[FeedEntry], list[SkippedEntry]]:
    """The entries of a delivered feed body, parsed in the bounded child, named as a poll of ``feed_url`` names
    them (the first of each link), and those skipped with their reasons; ``FeedError`` when it cannot be
    parsed at all."""
    parsed = parse_feed(body, _parse_headers(feed_url, content_type), limits)
    if parsed.problem and not parsed.entries:
        raise FeedError(f"the delivered feed cannot be used: {parsed.problem}")
    entries: dict[str, FeedEntry] = {}
    skipped: list[SkippedEntry] = []
    for read in (feed_entry(feed_url, entry) for entry in parsed.entries):
        if isinstance(read, SkippedEntry):
            skipped.append(read)
        else:
            entries.setdefault(read.link, read)
    return list(entries.values()), skipped
