"""Sources: where raw bytes come from. Local files (``files``), the polite bounded HTTP client (``http``) and
its SSRF guard (``guard``), article pages named by their canonical URL (``pages``), RSS/Atom feeds (``feeds``)."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import SourceError
from pipeline.models import RawDocument
from pipeline.sources.files import expand_inputs, is_url, read_file
from pipeline.sources.http import Fetcher, FetchPolicy
from pipeline.sources.pages import fetch_page

__all__ = ["FetchPolicy", "Fetcher", "expand_inputs", "is_url", "read_input"]


def read_input(value: str, fetcher: Fetcher) -> RawDocument:
    """One input as raw bytes: a file, or an http(s) page fetched and named by its canonical URL."""
    if is_url(value):
        return fetch_page(fetcher, value)
    path = Path(value)
    if not path.exists():
        raise SourceError(f"no such file or directory: {value}")
    return read_file(path, max_bytes=fetcher.policy.max_bytes)
