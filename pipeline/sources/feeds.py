"""Feeds: the feed list, and one conditional poll of an RSS/Atom feed through feedparser.

The feed list is ``seeds/feeds.yaml`` or the file in ``NEWSFLOW_FEEDS``: YAML (a
list of URLs, or of mappings with ``url``, or ``feeds:`` holding either) or
plain text with one URL per line (``#`` comments allowed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import feedparser
import yaml

from pipeline.models import FeedEntry, FeedPoll
from pipeline.sources.http import FEED_TYPES, HTML_TYPES, Fetcher
from pipeline.sources.pages import normalise_url


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
        loaded: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise FeedListError(f"the feed list is not valid YAML: {error}") from error
    if isinstance(loaded, dict):
        loaded = loaded.get("feeds", [])
    if not isinstance(loaded, list):
        raise FeedListError("the feed list must be a list of URLs, or of mappings with a url")
    return [str(item["url"] if isinstance(item, dict) else item).strip() for item in loaded if item]


def poll_feed(fetcher: Fetcher, url: str, *, etag: str | None = None, last_modified: str | None = None) -> FeedPoll:
    """One conditional GET of a feed; a malformed feed still yields the entries feedparser recovered."""
    page = fetcher.get(url, accept=FEED_TYPES | HTML_TYPES | {"text/plain"}, etag=etag, last_modified=last_modified)
    if page.not_modified:
        return FeedPoll(url, True, etag=page.etag or etag, last_modified=page.last_modified or last_modified)
    headers = {"content-location": page.final_url}
    if page.media_type:
        headers["content-type"] = page.media_type + (f"; charset={page.charset}" if page.charset else "")
    parsed = feedparser.parse(page.body, response_headers=headers)
    problem = _bozo_reason(parsed)
    entries = tuple(entry for entry in map(_entry, parsed.entries) if entry is not None)
    if problem and not entries:
        problem = f"{problem} (no entries recovered)"
    title = parsed.feed.get("title") if hasattr(parsed, "feed") else None
    return FeedPoll(url, False, entries, page.etag, page.last_modified, title, problem)


def _bozo_reason(parsed: Any) -> str | None:
    if not parsed.get("bozo"):
        return None
    error = parsed.get("bozo_exception")
    return f"malformed feed: {type(error).__name__}: {error}" if error else "malformed feed"


def _entry(entry: Any) -> FeedEntry | None:
    link = entry.get("link")
    if not link or not str(link).startswith(("http://", "https://")):
        return None
    return FeedEntry(link=normalise_url(str(link)), title=entry.get("title"), entry_id=str(entry.get("id") or link))
