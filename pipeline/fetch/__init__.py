"""Fetching from the web: polite, bounded HTTP (``http``), the SSRF guard (``guard``), feeds (``feeds``)."""

from pipeline.fetch.http import Fetcher, FetchError, FetchPolicy, Page

__all__ = ["FetchError", "FetchPolicy", "Fetcher", "Page"]
