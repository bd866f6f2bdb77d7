"""news_reprocess's sources: the source as it was given (a URL before its redirects and canonical, a feed's
link with its tracking parameters, a relative path) finds its article, and a list that finds nothing is an
error, not a green run that did nothing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer

from pipeline.errors import NothingToReprocessError
from pipeline.ingest import ingest
from pipeline.ingest.feeds import stage_feeds
from pipeline.ingest.staged import process_pending, reprocess
from pipeline.settings import Settings

from .conftest import SEED
from .test_feeds import rss
from .test_fetch import article

pytestmark = pytest.mark.postgres

CANONICAL = '<link rel="canonical" href="/news/talks-2025">'


def serve_story(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/go").respond_with_data("", status=302, headers={"Location": "/story"})
    httpserver.expect_request("/story").respond_with_data(article(CANONICAL), content_type="text/html")


def test_the_url_as_fed_in_finds_the_article_named_by_its_canonical(
    httpserver: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    serve_story(httpserver)
    given = httpserver.url_for("/go") + "?utm_source=newsletter&utm_medium=email"
    assert ingest(fetch_settings, engine, [given]).loaded == 1
    for typed in (given, f"  {given} ", httpserver.url_for("/go"), httpserver.url_for("/news/talks-2025")):
        summary = reprocess(fetch_settings, engine, sources=[typed])
        assert (summary.seen, summary.replaced, summary.failed) == (1, 1, 0), typed


def test_a_feed_link_as_the_feed_gave_it_finds_the_article(
    httpserver: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    serve_story(httpserver)
    link = httpserver.url_for("/story") + "?utm_source=rss&fbclid=XYZ"
    httpserver.expect_request("/feed.xml").respond_with_data(rss(link), content_type="application/rss+xml")
    stage_feeds(fetch_settings, engine, [httpserver.url_for("/feed.xml")])
    assert process_pending(fetch_settings, engine).loaded == 1
    assert reprocess(fetch_settings, engine, sources=[link]).replaced == 1


def test_a_relative_path_finds_the_file_it_named(
    tmp_path: Path, fetch_settings: Settings, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    shutil.copy(SEED, tmp_path / "in" / "story.txt")
    assert ingest(fetch_settings, engine, ["in/story.txt"]).loaded == 1
    assert reprocess(fetch_settings, engine, sources=["in/story.txt"]).replaced == 1
    assert reprocess(fetch_settings, engine, sources=[os.path.abspath("in/story.txt")]).replaced == 1


def test_sources_that_match_nothing_fail_with_every_one_named(fetch_settings: Settings, engine: sa.Engine) -> None:
    ingest(fetch_settings, engine, [str(SEED)])
    with pytest.raises(NothingToReprocessError) as raised:
        reprocess(fetch_settings, engine, sources=["https://nowhere.example/a", "no/such/file.txt"])
    assert "https://nowhere.example/a" in str(raised.value) and "no/such/file.txt" in str(raised.value)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM articles WHERE version > 1")) == 0


def test_a_source_that_matches_nothing_beside_one_that_does_is_its_own_error_row(
    fetch_settings: Settings, engine: sa.Engine
) -> None:
    ingest(fetch_settings, engine, [str(SEED)])
    summary = reprocess(fetch_settings, engine, sources=[str(SEED), "https://nowhere.example/a"])
    assert (summary.replaced, summary.failed) == (1, 1)
    assert [(f.source, f.stage) for f in summary.failures] == [("https://nowhere.example/a", "reprocess")]


@pytest.mark.parametrize("blank", [[], [""], ["  ", "\n"]])
def test_blank_sources_mean_every_article(blank: list[str], fetch_settings: Settings, engine: sa.Engine) -> None:
    ingest(fetch_settings, engine, [str(SEED)])
    assert reprocess(fetch_settings, engine, sources=blank).replaced == 1


def test_a_file_named_with_a_byte_that_is_not_utf8_is_found_and_a_nul_matches_nothing(
    tmp_path: Path, fetch_settings: Settings, engine: sa.Engine
) -> None:
    """A source is stored as ``storable`` text (a lone surrogate, a NUL written as a backslash escape). Before, a
    source was looked up as typed: the file's own name raised UnicodeEncodeError, a NUL raised ValueError."""
    odd = tmp_path / os.fsdecode(b"caf\xe9 \x7f.txt")  # a Latin-1 name on a UTF-8 file system
    shutil.copy(SEED, odd)
    assert ingest(fetch_settings, engine, [str(odd)]).loaded == 1
    assert reprocess(fetch_settings, engine, sources=[str(odd)]).replaced == 1
    with pytest.raises(NothingToReprocessError, match=r"'x\\x00y', 'x\\udcff'"):
        reprocess(fetch_settings, engine, sources=["x\x00y", "x\udcff"])
