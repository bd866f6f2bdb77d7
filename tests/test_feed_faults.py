"""Feeds against a hostile world: what a red team found, each fault class with inputs as nasty as it allows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipeline.ingest.feeds import ingest_feeds
from pipeline.settings import Settings

from .hostile import HostileServer, hostile_server, respond
from .test_feeds import STORY, atom, atom_entry, rss, serve_feed_pages
from .test_fetch import article

ROOT = Path(__file__).resolve().parent.parent
PEAK_LIMIT_MIB = 300


@pytest.fixture
def site(httpserver: HTTPServer) -> HTTPServer:
    return serve_feed_pages(httpserver)


pytestmark = pytest.mark.postgres

HEAD = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><item><title>x</title>'
    b"<link>http://127.0.0.1:1/x</link></item><item><title>y</title>"
)
COSTLY = {  # about 9 MB each, a few KB gzipped; before: +1.4 GB in 5 s, and +1.2 GB in 75-106 s
    "attributes": HEAD + b"<a " + b"b " * 4_500_000 + b">",
    "tags": HEAD + b"<description>" + b"<b>" * 3_000_000,
}


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with hostile_server() as hostile:
        hostile.route("/robots.txt", respond(404, b""))
        yield hostile


def poll_in_child(database_url: str, document_seconds: float, *feed_urls: str) -> dict[str, object]:
    """Poll in a fresh process (this checkout's code) and report its seconds, peak-memory rise and failures."""
    command = [sys.executable, "-m", "tests.feed_cost", database_url, str(document_seconds), *feed_urls]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=150, check=True, env=env)
    return dict(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("kind", sorted(COSTLY))
def test_a_feed_too_costly_to_parse_is_the_feeds_error_and_costs_the_poller_no_memory(
    server: HostileServer, migrated_url: str, kind: str
) -> None:
    """The parse runs in a child process with a memory and a time limit; the next feed is still polled."""
    server.route("/costly", respond(200, COSTLY[kind], {"Content-Type": "application/rss+xml"}))
    server.route("/story", respond(200, article(extra="<p>The good feed's story.</p>").encode()))
    items = f"<item><title>Good</title><link>{server.url('/story')}</link></item>"
    good = f'<?xml version="1.0"?><rss version="2.0"><channel><title>g</title>{items}</channel></rss>'
    server.route("/good", respond(200, good.encode(), {"Content-Type": "application/rss+xml"}))

    outcome = poll_in_child(migrated_url, 10.0, server.url("/costly"), server.url("/good"))
    assert float(outcome["peak_mib"]) < PEAK_LIMIT_MIB, outcome  # type: ignore[arg-type]
    assert float(outcome["seconds"]) < 10.0 + 8.0, outcome  # type: ignore[arg-type]
    assert outcome["loaded"] == 1, outcome
    failures = outcome["failures"]
    assert isinstance(failures, list) and len(failures) == 1, outcome
    stage, error = failures[0]
    assert stage == "feed" and "feed too costly to parse" in error, outcome
    assert "over 512 MB" in error or "took longer than 10 s" in error, outcome


def runs(engine: sa.Engine) -> list[tuple[str, str | None]]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT status, stop_reason FROM ingest_runs ORDER BY id")).tuples())


def test_nul_in_an_entry_or_the_feed_costs_nothing_else_run_after_run(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    """NUL as a reference (any number of zeros) and as a raw byte, in a guid, an item title and the channel
    title: before, the bookkeeping raised outside the boundary and every run stopped before the next feed."""
    bad = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>x&#0;y\x00z</title>'
        f"<item><title>A&#x0000;B\x00C</title><link>{site.url_for('/talks')}</link></item>"
        f'<item><title>B</title><guid isPermaLink="false">g&#00;1\x002</guid><link>{site.url_for("/bbc")}</link></item>'
        "</channel></rss>"
    )
    site.expect_request("/bad.xml").respond_with_data(bad, content_type="application/rss+xml")
    site.expect_request("/story").respond_with_data(article(extra="<p>The next feed.</p>"), content_type="text/html")
    site.expect_request("/good.xml").respond_with_data(rss(site.url_for("/story")), content_type="application/rss+xml")
    feeds = [site.url_for("/bad.xml"), site.url_for("/good.xml")]

    first = ingest_feeds(fetch_settings, engine, feeds)
    second = ingest_feeds(fetch_settings, engine, feeds)
    assert (first.loaded, second.loaded, len(second.failures)) == (3, 0, 1), first.failures
    assert [failure.error.split(":")[0] for failure in first.failures] == ["malformed feed"]  # the raw NULs
    assert runs(engine) == [("partial", None), ("failed", None)]  # the second run's one document: the bad feed
    with engine.connect() as conn:
        titles = set(conn.scalars(sa.text("SELECT coalesce(title, '') FROM feeds")))
        entry_ids = set(conn.scalars(sa.text("SELECT entry_id FROM feed_entries")))
    assert not any("\x00" in text for text in titles | entry_ids)


def test_a_link_that_grows_past_the_index_limit_once_normalised_is_skipped(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    """1,900 CJK characters: under 2,000 characters, but 17,100 once percent-encoded (the btree limit is 2,704
    bytes): before, the insert raised ProgramLimitExceeded and the run stopped."""
    path = "".join(chr(0x4E00 + (n * 7919) % 0x5000) for n in range(1900))
    short = article(f'<link rel="canonical" href="{site.url_for("/short")}">')  # the page itself names a short URL
    site.expect_request(re.compile(r"/p/.*")).respond_with_data(short, content_type="text/html")
    site.expect_request("/long.xml").respond_with_data(
        rss(site.url_for("/p/") + path, site.url_for("/talks")), content_type="application/rss+xml"
    )
    summary = ingest_feeds(fetch_settings, engine, [site.url_for("/long.xml")])
    assert (summary.loaded, summary.failed, summary.feed_entries_skipped) == (1, 0, 1), summary.failures
    assert [status for status, _ in runs(engine)] == ["succeeded"]
    with engine.connect() as conn:
        assert "too long link" in conn.scalar(sa.text("SELECT last_error FROM feeds"))


def test_an_entry_whose_bookkeeping_fails_is_its_own_error_and_the_run_goes_on(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    """Whatever the database refuses about one entry's row (here a trigger) is that entry's error row."""
    with engine.begin() as conn:
        conn.execute(sa.text(
            "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.link LIKE '%poison%' THEN RAISE EXCEPTION 'poisoned entry'; END IF; RETURN NEW; END $$"
        ))  # fmt: skip
        conn.execute(sa.text(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON feed_entries FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
        ))  # fmt: skip
    site.expect_request("/poison").respond_with_data(article(extra="<p>Poison.</p>"), content_type="text/html")
    site.expect_request("/f.xml").respond_with_data(
        rss(site.url_for("/poison"), site.url_for("/talks")), content_type="application/rss+xml"
    )
    summary = ingest_feeds(fetch_settings, engine, [site.url_for("/f.xml")])
    assert [status for status, _ in runs(engine)] == ["partial"]
    with engine.connect() as conn:
        errors = conn.execute(sa.text("SELECT source, stage, error FROM ingest_errors")).tuples().all()
        delivered = list(conn.scalars(sa.text("SELECT link FROM feed_entries")))
    assert errors == [(site.url_for("/poison"), "feed", "RaiseException: poisoned entry")], summary.failures
    assert delivered == [site.url_for("/talks")]


@pytest.mark.parametrize("first_answer", ["retry-after", "server-error"])
def test_an_entry_that_failed_is_taken_again_even_when_the_feed_answers_304(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine, first_answer: str
) -> None:
    """Before, only entries never tried made the next poll unconditional: an entry deferred by a long
    Retry-After, or failed by a 5xx, was lost for good once the feed answered 304."""
    calls = {"later": 0}

    def later(request: Request) -> Response:
        calls["later"] += 1
        if calls["later"] == 1:
            status = 503 if first_answer == "retry-after" else 502
            return Response("busy", status=status, headers={"Retry-After": "86400"})
        return Response(article(extra="<p>Now ready.</p>"), content_type="text/html")

    site.expect_request("/later").respond_with_handler(later)
    site.expect_request("/f.xml", headers={"If-None-Match": '"e1"'}).respond_with_data("", status=304)
    site.expect_request("/f.xml").respond_with_data(
        rss(site.url_for("/talks"), site.url_for("/later")),
        content_type="application/rss+xml",
        headers={"ETag": '"e1"'},
    )
    first = ingest_feeds(fetch_settings, engine, [site.url_for("/f.xml")])
    second = ingest_feeds(fetch_settings, engine, [site.url_for("/f.xml")])
    third = ingest_feeds(fetch_settings, engine, [site.url_for("/f.xml")])
    assert (first.loaded, first.failed, first.feed_entries_deferred) == (1, 1, 1)
    assert (second.loaded, second.failed, calls["later"]) == (1, 0, 2)
    assert third.seen == 0
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT last_status, etag FROM feeds")).one() == ("not_modified", '"e1"')


def test_a_link_that_keeps_failing_stops_forcing_full_polls(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    """A link broken for good makes the next poll unconditional only until it has failed in three polls."""
    site.expect_request("/broken").respond_with_data("", status=500)
    site.expect_request("/f.xml", headers={"If-None-Match": '"e1"'}).respond_with_data("", status=304)
    site.expect_request("/f.xml").respond_with_data(
        rss(site.url_for("/broken")), content_type="application/rss+xml", headers={"ETag": '"e1"'}
    )
    statuses = []
    for _ in range(5):
        ingest_feeds(fetch_settings, engine, [site.url_for("/f.xml")])
        with engine.connect() as conn:
            statuses.append(conn.scalar(sa.text("SELECT last_status FROM feeds")))
    assert statuses == ["fetched", "fetched", "fetched", "not_modified", "not_modified"]


SURROGATES = ["&#xD800;", "&#x0000d800;", "&#55296;", "&#000057343;", "&#X110000;", "&#0;"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_a_reference_to_a_surrogate_costs_only_itself(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine, encoding: str
) -> None:
    """Before, feedparser's loose parser raised UnicodeEncodeError on ``&#xD800;`` and the whole feed was lost at
    every poll; now the reference reads as U+FFFD and every entry loads."""
    site.expect_request(re.compile(r"/s/\d+")).respond_with_data(article(), content_type="text/html")
    items = "".join(
        f"<item><title>S{n} {ref}</title><link>{site.url_for(f'/s/{n}')}</link></item>"
        for n, ref in enumerate(SURROGATES)
    )
    feed = f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel><title>t</title>{items}'
    body = (feed + "</channel></rss>").encode(encoding)
    site.expect_request("/s.xml").respond_with_data(body, content_type="application/rss+xml")
    summary = ingest_feeds(fetch_settings, engine, [site.url_for("/s.xml")])
    assert (summary.seen, summary.failed) == (len(SURROGATES), 0), summary.failures
    with engine.connect() as conn:
        titles = sorted(conn.scalars(sa.text("SELECT title FROM feed_entries")))
    assert titles == sorted(f"S{n} \ufffd" for n in range(len(SURROGATES)))


def test_an_inline_entry_edited_replaces_its_article_with_or_without_an_id(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    """Before, an entry with an id was never taken again after an edit (its name was seen), and one without an
    id became a new article at each edit (its name was a digest of its content)."""
    version = {"n": 1}

    def feed(request: Request) -> Response:
        body = atom(
            atom_entry("urn:edited", content=f"<p>Version {version['n']} of it.</p>{STORY}", title="With an id"),
            atom_entry(None, content=f"<p>Anonymous version {version['n']}.</p>{STORY}", title="Without an id"),
        )
        return Response(body, content_type="application/atom+xml")

    site.expect_request("/edited.xml").respond_with_handler(feed)
    first = ingest_feeds(fetch_settings, engine, [site.url_for("/edited.xml")])
    unchanged = ingest_feeds(fetch_settings, engine, [site.url_for("/edited.xml")])
    version["n"] = 2
    edited = ingest_feeds(fetch_settings, engine, [site.url_for("/edited.xml")])
    assert (first.loaded, unchanged.seen, edited.seen, edited.replaced, edited.failed) == (2, 0, 2, 2, 0)
    with engine.connect() as conn:
        texts = list(conn.scalars(sa.text("SELECT text FROM articles ORDER BY id")))
        rows = conn.scalar(sa.text("SELECT count(*) FROM feed_entries"))
    assert len(texts) == 2 and rows == 2
    assert all("version 2" in text.lower() and "version 1" not in text.lower() for text in texts), texts


def test_entries_sharing_an_id_in_one_feed_are_counted_as_skipped(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    """Before, the first of two entries with one id vanished silently and ``entries_seen`` counted both."""
    site.expect_request("/dup.xml").respond_with_data(
        atom(
            atom_entry("urn:twice", content=f"<p>First version.</p>{STORY}", title="One"),
            atom_entry("urn:twice", content=f"<p>Second, different.</p>{STORY}", title="Two"),
            atom_entry("urn:linked", link=site.url_for("/talks")),
            atom_entry("urn:linked-again", link=site.url_for("/talks?utm_source=x")),
        ),
        content_type="application/atom+xml",
    )
    summary = ingest_feeds(fetch_settings, engine, [site.url_for("/dup.xml")])
    assert (summary.loaded, summary.failed, summary.feed_entries_skipped) == (2, 0, 2), summary.failures
    with engine.connect() as conn:
        feed = conn.execute(sa.text("SELECT entries_seen, entries_skipped, last_error FROM feeds")).one()
        title = conn.scalar(sa.text("SELECT title FROM articles WHERE source LIKE 'feed-entry:%'"))
    assert (feed.entries_seen, feed.entries_skipped, title) == (2, 2, "One")
    assert feed.last_error.count("the same link as an earlier entry") == 2, feed.last_error
