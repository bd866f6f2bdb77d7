"""Feeds: the feed list, and one conditional poll of an RSS/Atom feed through feedparser.

The feed list is ``seeds/feeds.yaml`` or the file in ``NEWSFLOW_FEEDS``: YAML (a
list of URLs, or of mappings with ``url``, or ``feeds:`` holding either) or
plain text with one URL per line (``#`` comments allowed).

An entry with an http(s) link is fetched from it. An entry without one (none, or ``javascript:``, ``data:``,
``mailto:``, …) that carries its content (Atom ``<content>`` or ``<summary>``, RSS ``content:encoded`` or
``description``) is ingested from that content, named ``feed-entry:<feed url>#<entry id>``: the id is
percent-encoded, and replaced by ``sha256:<hex>`` of itself when over 200 characters, or of the title (of the
content, when there is no title either) when the entry has none. The name is scoped to the feed as listed, so
it is the same at every poll, an edit keeps it, and no other feed can replace the entry by claiming its id.
Any other entry is skipped with its reason, and so is an entry with the same link (or name) as an earlier
one of the feed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from pipeline.metadata import BoundedLoader, MetadataError
from pipeline.models import FeedEntry, FeedPoll, RawDocument, SkippedEntry
from pipeline.sources.feed_parsing import ParseLimits, parse_feed
from pipeline.sources.http import FEED_TYPES, HTML_TYPES, Fetcher
from pipeline.sources.pages import is_well_formed_url, normalise_url

MAX_LINK_BYTES = 2000  # longer links (UTF-8, once normalised) are skipped: no index, page or browser takes them
MAX_ID_CHARS = 200  # longer entry ids are named by their digest
ENTRY_PREFIX = "feed-entry:"


class FeedListError(ValueError):
    """The feed list cannot be read; the message says where and why."""


def read_feed_list(path: Path) -> list[str]:
    """Feed URLs from a YAML or one-URL-per-line file, in order, without repeats."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FeedListError(f"cannot read the feed list {path}: {error.strerror}") from error
    urls = _yaml_urls(text) if path.suffix in {".yaml", ".yml"} else _line_urls(text)
    bad = [url for url in urls if not url.startswith(("http://", "https://"))]
    if bad:
        raise FeedListError(f"{path}: not http(s) URLs: {', '.join(bad[:3])}")
    return list(dict.fromkeys(urls))


def _line_urls(text: str) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def _yaml_urls(text: str) -> list[str]:
    try:
        loaded: Any = yaml.load(text, Loader=BoundedLoader)  # aliases and depth bounded, scalars kept as strings
    except MetadataError as error:
        raise FeedListError(f"the feed list is refused: {error}") from error
    except yaml.YAMLError as error:
        raise FeedListError(f"the feed list is not valid YAML: {error}") from error
    if isinstance(loaded, dict):
        loaded = loaded.get("feeds", [])
    if not isinstance(loaded, list):
        raise FeedListError("the feed list must be a list of URLs, or of mappings with a url")
    nameless = [item for item in loaded if isinstance(item, dict) and "url" not in item]
    if nameless:
        raise FeedListError(f"the feed list has an entry without a url: {_shown(str(nameless[0]))}")
    return [str(item["url"] if isinstance(item, dict) else item).strip() for item in loaded if item]


def poll_feed(
    fetcher: Fetcher, url: str, *, etag: str | None = None, last_modified: str | None = None, limits: ParseLimits
) -> FeedPoll:
    """One conditional GET of a feed, parsed within ``limits``; a malformed feed still yields the entries
    feedparser recovered."""
    page = fetcher.get(url, accept=FEED_TYPES | HTML_TYPES | {"text/plain"}, etag=etag, last_modified=last_modified)
    if page.not_modified:
        return FeedPoll(url, True, etag=page.etag or etag, last_modified=page.last_modified or last_modified)
    headers = {"content-location": page.final_url}
    if page.media_type:
        headers["content-type"] = page.media_type + (f"; charset={page.charset}" if page.charset else "")
    parsed = parse_feed(page.body, headers, limits)
    entries, skipped = _first_of_each(feed_entry(url, entry) for entry in parsed.entries)
    problem = f"{parsed.problem} (no entries recovered)" if parsed.problem and not entries else parsed.problem
    return FeedPoll(url, False, entries, page.etag, page.last_modified, _text(parsed.title), problem, skipped)


def _first_of_each(read: Iterable[FeedEntry | SkippedEntry]) -> tuple[tuple[FeedEntry, ...], tuple[SkippedEntry, ...]]:
    """The usable entries, the first of each link (or name) only, and the skipped ones: those that cannot be
    used, and the repeats, with their reasons."""
    entries: dict[str, FeedEntry] = {}
    skipped: list[SkippedEntry] = []
    for entry in read:
        if isinstance(entry, SkippedEntry):
            skipped.append(entry)
        elif entry.link in entries:
            skipped.append(SkippedEntry(_shown(entry.entry_id), "the same link as an earlier entry of the feed"))
        else:
            entries[entry.link] = entry
    return tuple(entries.values()), tuple(skipped)


def feed_entry(feed_url: str, entry: Any) -> FeedEntry | SkippedEntry:
    """An entry to fetch by its http(s) link, or to take from its inline content, or skipped with the reason
    (also the parser's: a field too long, content over the limit)."""
    if entry.get("skipped"):
        return SkippedEntry(_shown(_text(entry.get("id")) or "an entry"), str(entry["skipped"]))
    title, content = _text(entry.get("title")), _content(entry)
    link = _http_link(entry, pages_only=content is not None)
    if link is not None and not _too_long(normalise_url(link)):
        return FeedEntry(link=normalise_url(link), title=title, entry_id=_text(entry.get("id")) or link)
    if content is None:
        reason = str(entry.get("refused") or _no_link_reason(entry))
        return SkippedEntry(_shown(_text(entry.get("id")) or title or "an entry"), reason)
    name = entry_name(feed_url, _text(entry.get("id")), f"title\0{title}" if title else f"content\0{content[0]}")
    inline = _inline(name, entry, content)
    return FeedEntry(link=name, title=title, entry_id=_text(entry.get("id")) or name, content=inline)


def entry_name(feed_url: str, entry_id: str | None, fallback: str) -> str:
    """The stable name of an entry carried inline: ``feed-entry:<feed url>#<percent-encoded id>``, or the
    digest of a long id, or of ``fallback`` when there is no id (its title, which stays when the content is
    edited; its content when it has no title either)."""
    key = quote(entry_id, safe=":/?@!$&'()*+,;=-._~", errors="surrogatepass") if entry_id else None
    if key is None or len(key) > MAX_ID_CHARS:
        key = "sha256:" + hashlib.sha256((entry_id or fallback).encode("utf-8", "surrogatepass")).hexdigest()
    return f"{ENTRY_PREFIX}{feed_url}#{key}"


def _http_link(entry: Any, *, pages_only: bool) -> str | None:
    """The first well-formed http(s) URL among the entry's link, its alternate links and its Atom
    ``<content src>``; with ``pages_only`` (the entry carries its content), only one not declared as another
    type than HTML, so a link to a PDF does not win over the story itself."""
    alternates = [item for item in entry.get("links", []) if item.get("rel") == "alternate"]
    types = {str(item.get("href")).strip(): item.get("type") for item in alternates if item.get("href")}
    sources = [detail.get("src") for detail in entry.get("content", [])]
    links = [str(link).strip() for link in [entry.get("link"), *types, *sources] if isinstance(link, str)]
    usable = (link for link in links if is_well_formed_url(link))
    return next((link for link in usable if not pages_only or _page_type(types.get(link))), None)


def _page_type(media_type: Any) -> bool:
    """No declared type, or an HTML one."""
    return not media_type or str(media_type).split(";")[0].strip().lower() in HTML_TYPES


def _no_link_reason(entry: Any) -> str:
    link = _text(entry.get("link"))
    if not link:
        return "no link and no content"
    scheme = urlsplit(link).scheme.lower() if ":" in link else ""
    if scheme in {"http", "https"}:
        kind = "too long" if _too_long(normalise_url(link)) else "malformed"
        return f"{kind} link {_shown(link)} and no content"
    return f"{scheme + ':' if scheme else 'relative'} link {_shown(link)} is not http(s), and no content"


def _too_long(link: str) -> bool:
    """Over ``MAX_LINK_BYTES`` in UTF-8: 1,900 CJK characters are 17,100 bytes once percent-encoded."""
    return len(link.encode("utf-8", "surrogatepass")) > MAX_LINK_BYTES


def _content(entry: Any) -> tuple[str, str] | None:
    """The entry's inline content and its media type: Atom content or RSS content:encoded, else the summary
    (Atom summary, RSS description); None when there is none or it is blank."""
    details = [*entry.get("content", []), entry.get("summary_detail") or {}]
    for detail in details:
        value = detail.get("value")
        if isinstance(value, str) and value.strip():
            media_type = "text/plain" if detail.get("type") == "text/plain" else "text/html"
            return value, media_type
    return None


def _inline(name: str, entry: Any, content: tuple[str, str]) -> RawDocument:
    """The document an entry carries: its content as UTF-8, with its title, author and date as metadata."""
    metadata = {"charset": "utf-8"}
    for key, value in (("title", entry.get("title")), ("author", entry.get("author"))):
        if _text(value):
            metadata[key] = str(_text(value))
    stamp = entry.get("published_parsed") or entry.get("updated_parsed")
    if stamp:
        metadata["published"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", tuple(stamp))
    return RawDocument(source=name, body=content[0].encode("utf-8", "replace"), media_type=content[1],
                       metadata=metadata)  # fmt: skip


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _shown(text: str, limit: int = 80) -> str:
    """A value for a message: at most ``limit`` characters, control characters escaped."""
    clean = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"
