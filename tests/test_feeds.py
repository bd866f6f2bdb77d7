"""Feed ingestion end to end against a local server and a real Postgres."""

from __future__ import annotations

import gzip
import re
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipeline.ingest.feeds import ingest_feeds
from pipeline.settings import Settings
from pipeline.sources.feeds import FeedListError, read_feed_list

from .test_fetch import article

GOLD_PAGE = Path(__file__).parent / "gold" / "docs" / "003_bbc-assange-sweden-investigation.html.gz"
pytestmark = pytest.mark.postgres


def rss(*links: str, broken: bool = False) -> str:
    items = "".join(
        f"<item><title>Story {i}</title><link>{link}</link><guid>{link}</guid></item>" for i, link in enumerate(links)
    )
    tail = "<item><title>Cut off" if broken else "</channel></rss>"
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Local news</title>{items}{tail}'


@pytest.fixture
def fetch_settings(db_settings: Settings) -> Settings:
    return replace(db_settings, allow_private_hosts=True, fetch_host_interval=0.0, fetch_attempts=1)


@pytest.fixture
def site(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/bbc").respond_with_data(
        gzip.decompress(GOLD_PAGE.read_bytes()), content_type="text/html"
    )
    httpserver.expect_request("/talks").respond_with_data(article(), content_type="text/html")
    return httpserver


def test_feed_pages_load_with_their_sections_and_a_second_poll_fetches_nothing(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    feed = rss(site.url_for("/bbc"), site.url_for("/talks?utm_source=rss"))
    site.expect_request("/feed.xml", headers={"If-None-Match": '"v1"'}).respond_with_data("", status=304)
    site.expect_request("/feed.xml").respond_with_data(
        feed, content_type="application/rss+xml", headers={"ETag": '"v1"'}
    )

    first = ingest_feeds(fetch_settings, engine, [site.url_for("/feed.xml")])
    assert (first.loaded, first.failed) == (2, 0), first.failures
    with engine.connect() as conn:
        headings = set(conn.scalars(sa.text("SELECT heading FROM sections WHERE heading IS NOT NULL")))
        entries = conn.scalar(sa.text("SELECT count(*) FROM feed_entries WHERE article_id IS NOT NULL"))
        status = conn.scalar(sa.text("SELECT last_status FROM feeds"))
    assert "What comes next" in headings and len(headings) >= 4
    assert (entries, status) == (2, "fetched")

    site.clear_log()
    second = ingest_feeds(fetch_settings, engine, [site.url_for("/feed.xml")])
    assert (second.seen, second.loaded, second.failed) == (0, 0, 0)
    assert [request.path for request, _ in site.log if request.path != "/robots.txt"] == ["/feed.xml"]
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT last_status FROM feeds")) == "not_modified"


def test_errors_are_recorded_and_the_run_goes_on(site: HTTPServer, fetch_settings: Settings, engine: sa.Engine) -> None:
    site.expect_request("/missing.xml").respond_with_data("gone", status=404)
    site.expect_request("/broken.xml").respond_with_data(
        rss(site.url_for("/talks"), site.url_for("/down"), broken=True), content_type="application/rss+xml"
    )
    site.expect_request("/down").respond_with_data("", status=500)
    summary = ingest_feeds(fetch_settings, engine, [site.url_for("/missing.xml"), site.url_for("/broken.xml")])
    assert summary.loaded == 1
    with engine.connect() as conn:
        errors = conn.execute(sa.text("SELECT stage, error FROM ingest_errors ORDER BY id")).tuples().all()
        statuses = dict(conn.execute(sa.text("SELECT url, last_status FROM feeds")).tuples().all())
    assert ("feed", f"{site.url_for('/missing.xml')}: HTTP 404") in errors
    assert any(stage == "feed" and error.startswith("malformed feed") for stage, error in errors)
    assert ("fetch", f"{site.url_for('/down')}: HTTP 500 after 1 attempt") in errors
    assert statuses == {site.url_for("/missing.xml"): "failed", site.url_for("/broken.xml"): "malformed"}


def test_the_same_story_from_two_feeds_is_one_article(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    site.expect_request("/one.xml").respond_with_data(rss(site.url_for("/talks")), content_type="application/rss+xml")
    site.expect_request("/two.xml").respond_with_data(
        rss(site.url_for("/talks?utm_campaign=x")), content_type="application/rss+xml"
    )
    ingest_feeds(fetch_settings, engine, [site.url_for("/one.xml"), site.url_for("/two.xml")])
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM articles")) == 1


def test_feed_list_formats(tmp_path: Path) -> None:
    yaml_list = tmp_path / "feeds.yaml"
    yaml_list.write_text("feeds:\n  - url: https://a.example/rss\n  - https://b.example/atom\n", encoding="utf-8")
    plain = tmp_path / "feeds.txt"
    plain.write_text("# mine\nhttps://a.example/rss\n\nhttps://a.example/rss\n", encoding="utf-8")
    assert read_feed_list(yaml_list) == ["https://a.example/rss", "https://b.example/atom"]
    assert read_feed_list(plain) == ["https://a.example/rss"]
    bad = tmp_path / "bad.txt"
    bad.write_text("ftp://nope\n", encoding="utf-8")
    with pytest.raises(FeedListError, match="not http"):
        read_feed_list(bad)


def test_a_feed_of_ten_thousand_entries_is_taken_a_poll_at_a_time(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    """One poll takes NEWSFLOW_FEED_MAX_ENTRIES new entries; the next poll is unconditional and takes the next."""

    def story(request: Request) -> Response:
        number = request.path.rsplit("/", 1)[-1]
        return Response(article(extra=f"<p>Story number {number} of the long feed.</p>"), content_type="text/html")

    site.expect_request(re.compile(r"/story/\d+")).respond_with_handler(story)
    links = [site.url_for(f"/story/{n}") for n in range(10_000)]
    site.expect_request("/big.xml").respond_with_data(
        rss(*links), content_type="application/rss+xml", headers={"ETag": '"big"'}
    )
    capped = replace(fetch_settings, feed_max_entries=3)

    first = ingest_feeds(capped, engine, [site.url_for("/big.xml")])
    second = ingest_feeds(capped, engine, [site.url_for("/big.xml")])
    assert (first.loaded, first.failed, second.loaded, second.failed) == (3, 0, 3, 0)
    with engine.connect() as conn:
        feed = conn.execute(sa.text("SELECT entries_deferred, etag, last_status FROM feeds")).one()
        loaded = sorted(conn.scalars(sa.text("SELECT link FROM feed_entries")))
    assert tuple(feed) == (9_994, None, "fetched")
    assert loaded == sorted(links[:6])
