"""The scheduled path: fetch into the raw store, process later, re-derive facts without fetching."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer

from pipeline.ingest import ingest
from pipeline.ingest.feeds import stage_feeds
from pipeline.ingest.staged import process_pending, reprocess
from pipeline.settings import Settings

from .conftest import SEED
from .test_feeds import rss
from .test_fetch import article

pytestmark = pytest.mark.postgres


def count(engine: sa.Engine, query: str) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text(query)) or 0)


def test_staged_pages_wait_then_become_articles(
    httpserver: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/talks").respond_with_data(article(), content_type="text/html")
    httpserver.expect_request("/empty").respond_with_data("<html><body></body></html>", content_type="text/html")
    feed = rss(httpserver.url_for("/talks"), httpserver.url_for("/empty"))
    httpserver.expect_request("/feed.xml").respond_with_data(feed, content_type="application/rss+xml")

    fetched = stage_feeds(fetch_settings, engine, [httpserver.url_for("/feed.xml")])
    assert (fetched.staged, fetched.loaded) == (2, 0)
    assert count(engine, "SELECT count(*) FROM raw_documents WHERE processed_at IS NULL") == 2
    assert count(engine, "SELECT count(*) FROM articles") == 0

    processed = process_pending(fetch_settings, engine)
    assert (processed.seen, processed.loaded, processed.failed) == (2, 1, 1)
    assert count(engine, "SELECT count(*) FROM raw_documents WHERE processed_at IS NULL") == 0
    assert count(engine, "SELECT count(*) FROM raw_documents WHERE process_error LIKE 'extract:%'") == 1
    assert count(engine, "SELECT count(*) FROM feed_entries WHERE article_id IS NOT NULL") == 1
    assert count(engine, "SELECT count(*) FROM sections WHERE heading = 'What comes next'") == 1
    assert process_pending(fetch_settings, engine).seen == 0


def test_reprocess_rederives_facts_without_fetching(fetch_settings: Settings, engine: sa.Engine) -> None:
    ingest(fetch_settings, engine, [str(SEED)])
    quotes = count(engine, "SELECT count(*) FROM quotes")
    summary = reprocess(fetch_settings, engine)
    assert (summary.seen, summary.replaced, summary.failed) == (1, 1, 0)
    assert count(engine, "SELECT version FROM articles") == 2
    assert count(engine, "SELECT count(*) FROM quotes") == quotes
