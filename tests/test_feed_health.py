"""Feed health: only the systemic fails a fetch task; failing feeds back off, are disabled after days of failure
and enabled again; a malformed feed stays failing until it parses cleanly; v_feed_health and its reader.

Local servers on 127.0.0.1 and a real Postgres; the wall clock is a fake one, so nothing sleeps."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from sqlalchemy.engine import make_url
from typer.testing import CliRunner
from werkzeug import Request, Response

from pipeline.cli import app
from pipeline.db.feeds import FeedState, feed_health
from pipeline.errors import SystemicError
from pipeline.ingest.feed_health import DUE_SLACK, after_poll, skip_reason
from pipeline.ingest.feeds import ingest_feeds, stage_feeds
from pipeline.settings import Settings
from pipeline.tasks import feed_batch_label, fetch_feeds

from .test_feeds import rss, serve_feed_pages

T0 = datetime(2026, 3, 1, 0, 0, 7, tzinfo=UTC)
MALFORMED = '<?xml version="1.0"?><rss version="2.0"><channel><title>Half</title><item><title>Cut off'


class WallClock:
    """A wall clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


@pytest.fixture
def clocked(fetch_settings: Settings, clock: WallClock) -> Settings:
    return replace(fetch_settings, wall_clock=clock)


def health(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM v_feed_health")).mappings().all()
    return {row["feed_url"]: dict(row) for row in rows}


def requests_to(server: HTTPServer, path: str) -> list[Request]:
    return [request for request, _ in server.log if request.path == path]


# Only the systemic fails a task


@pytest.mark.postgres
def test_a_dead_link_in_a_healthy_feed_is_its_error_row_and_the_task_succeeds(
    httpserver: HTTPServer, clocked: Settings, engine: sa.Engine
) -> None:
    """Before, the one page of the batch failing raised 'every fetch failed', naming the page."""
    site = serve_feed_pages(httpserver)
    site.expect_request("/gone").respond_with_data("gone", status=404)
    site.expect_request("/feed.xml").respond_with_data(rss(site.url_for("/gone")), content_type="application/rss+xml")
    counts = fetch_feeds(clocked, [site.url_for("/feed.xml")])
    assert (counts["failed"], counts["staged"], counts["feeds_skipped"]) == (1, 0, 0)
    with engine.connect() as conn:
        errors = conn.execute(sa.text("SELECT source, stage, error FROM ingest_errors")).tuples().all()
    assert errors == [(site.url_for("/gone"), "fetch", f"{site.url_for('/gone')}: HTTP 404")]
    feed = health(engine)[site.url_for("/feed.xml")]
    assert (feed["state"], feed["consecutive_failures"], feed["last_success_at"]) == ("ok", 0, T0)


@pytest.mark.postgres
def test_a_batch_whose_every_feed_could_not_be_polled_fails_naming_each_feed_and_reason(
    httpserver: HTTPServer, clocked: Settings, engine: sa.Engine
) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/missing.xml").respond_with_data("gone", status=410)
    httpserver.expect_request("/broken.xml").respond_with_data(MALFORMED, content_type="application/rss+xml")
    refused = "http://127.0.0.1:1/feed.xml"  # nothing listens on port 1
    batch = [httpserver.url_for("/missing.xml"), httpserver.url_for("/broken.xml"), refused]
    with pytest.raises(SystemicError) as raised:
        fetch_feeds(clocked, batch)
    message = str(raised.value)
    assert message.startswith("no feed of the batch could be polled (3): ")
    assert f"{batch[0]}: HTTP 410; " in message
    assert f"{batch[1]}: malformed feed" in message and f"{refused}: " in message
    stages = {url: row["last_error_stage"] for url, row in health(engine).items()}
    assert stages == {batch[0]: "fetch", batch[1]: "parse", refused: "fetch"}


@pytest.mark.postgres
def test_one_good_feed_keeps_a_batch_of_dead_ones_green(
    httpserver: HTTPServer, clocked: Settings, engine: sa.Engine
) -> None:
    site = serve_feed_pages(httpserver)
    site.expect_request("/missing.xml").respond_with_data("gone", status=404)
    site.expect_request("/good.xml").respond_with_data(rss(site.url_for("/talks")), content_type="application/rss+xml")
    counts = fetch_feeds(clocked, [site.url_for("/missing.xml"), site.url_for("/good.xml")])
    assert (counts["failed"], counts["staged"]) == (1, 1)


# Malformed feeds stay failing until they parse cleanly


class FlakyFeed:
    """A feed served malformed with a Last-Modified, answering 304 to a conditional request; ``mode`` may make
    it answer 304 to every request, or serve it well-formed."""

    def __init__(self, page: str) -> None:
        self.mode, self.page = "malformed", page

    def __call__(self, request: Request) -> Response:
        if self.mode == "always 304" or request.headers.get("If-Modified-Since"):
            return Response(status=304)
        body = MALFORMED if self.mode == "malformed" else rss(self.page)
        return Response(
            body, content_type="application/rss+xml", headers={"Last-Modified": "Sun, 01 Mar 2026 00:00:00 GMT"}
        )


@pytest.mark.postgres
def test_a_malformed_feed_stays_failing_through_304s_until_a_poll_parses_it_cleanly(
    httpserver: HTTPServer, clocked: Settings, clock: WallClock, engine: sa.Engine
) -> None:
    site = serve_feed_pages(httpserver)
    flaky = FlakyFeed(site.url_for("/talks"))
    site.expect_request("/m.xml").respond_with_handler(flaky)
    url = site.url_for("/m.xml")

    first = stage_feeds(clocked, engine, [url])
    clock.advance(hours=2)
    second = stage_feeds(clocked, engine, [url])
    sent = [request.headers.get("If-Modified-Since") for request in requests_to(site, "/m.xml")]
    assert sent == [None, None]  # the malformed poll's Last-Modified was not kept: no 304 can hide it
    assert (first.failed, second.failed) == (1, 1)
    row = health(engine)[url]
    assert (row["state"], row["consecutive_failures"], row["last_error_stage"]) == ("failing", 2, "parse")
    assert row["last_error"].startswith("malformed feed") and row["last_success_at"] is None

    flaky.mode = "always 304"  # a server that answers 304 even so: the feed is still the malformed one
    clock.advance(hours=3)
    third = stage_feeds(clocked, engine, [url])
    row = health(engine)[url]
    assert (third.failed, row["state"], row["consecutive_failures"]) == (1, "failing", 3)
    assert row["last_error"].startswith("still malformed (HTTP 304 after a malformed poll): malformed feed")

    flaky.mode = "well-formed"
    clock.advance(hours=5)
    clean = stage_feeds(clocked, engine, [url])
    row = health(engine)[url]
    assert (clean.failed, clean.staged, row["state"], row["consecutive_failures"]) == (0, 1, "ok", 0)
    assert row["last_success_at"] == clock.now and row["last_error"].startswith("still malformed")

    clock.advance(hours=1)
    unchanged = stage_feeds(clocked, engine, [url])  # now conditional, and its 304 is a success
    assert requests_to(site, "/m.xml")[-1].headers.get("If-Modified-Since")
    assert (unchanged.failed, health(engine)[url]["state"]) == (0, "ok")


# Backoff, disabling, enabling


def test_backoff_doubles_from_an_hour_up_to_its_cap() -> None:
    settings = Settings.from_env({"NEWSFLOW_FEED_BACKOFF_MAX_HOURS": "20"})
    settings = replace(settings, wall_clock=lambda: T0)
    feed, waits = FeedState(1, None, None), []
    for _ in range(7):
        after = after_poll(feed, settings, ("HTTP 503", "fetch"))
        assert after.next_poll_at is not None and after.failing_since == T0
        waits.append((after.next_poll_at - T0) / timedelta(hours=1))
        feed = replace(feed, consecutive_failures=after.consecutive_failures, failing_since=after.failing_since)
    assert waits == [1, 2, 4, 8, 16, 20, 20]
    assert after_poll(feed, settings).consecutive_failures == 0


def test_a_feed_due_within_the_slack_is_polled_and_only_the_scheduled_poller_backs_off() -> None:
    backing_off = FeedState(1, None, None, consecutive_failures=3, next_poll_at=T0 + DUE_SLACK + timedelta(seconds=1))
    assert skip_reason(backing_off, T0, due_only=True) == "backing off after 3 failed polls until 2026-03-01 00:10 UTC"
    assert skip_reason(backing_off, T0 + timedelta(seconds=1), due_only=True) is None
    assert skip_reason(backing_off, T0, due_only=False) is None
    disabled = replace(backing_off, disabled_at=T0, disabled_reason="failing since …")
    assert skip_reason(disabled, T0 + timedelta(days=99), due_only=False) == (
        "disabled since 2026-03-01 00:00 UTC: failing since … (newsflow feeds enable URL)"
    )


@pytest.mark.postgres
def test_a_failing_feed_is_skipped_until_its_next_poll_time_and_counted_as_skipped(
    httpserver: HTTPServer, clocked: Settings, clock: WallClock, engine: sa.Engine
) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/down.xml").respond_with_data("busy", status=503)
    url = httpserver.url_for("/down.xml")
    assert stage_feeds(clocked, engine, [url]).failed == 1
    assert health(engine)[url]["next_poll_at"] == T0 + timedelta(hours=1)

    clock.advance(minutes=30)
    counts = fetch_feeds(clocked, [url])  # a batch of feeds all backing off: skipped, no failure, the task succeeds
    assert (counts["failed"], counts["feeds_skipped"]) == (0, 1)
    assert len(requests_to(httpserver, "/down.xml")) == 1
    with pytest.raises(SystemicError, match="could be polled"):
        fetch_feeds(clocked, [url], retry=True)  # Airflow's retry polls it again: a dead batch stays red
    assert len(requests_to(httpserver, "/down.xml")) == 2
    assert health(engine)[url]["next_poll_at"] == clock.now + timedelta(hours=2)

    clock.advance(hours=2)
    assert stage_feeds(clocked, engine, [url]).failed == 1
    assert health(engine)[url]["consecutive_failures"] == 3


@pytest.mark.postgres
def test_a_feed_failing_for_the_disable_days_is_disabled_with_its_reason_and_enabled_again(
    httpserver: HTTPServer,
    clocked: Settings,
    clock: WallClock,
    engine: sa.Engine,
    migrated_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/dead.xml").respond_with_data("gone", status=404)
    url = httpserver.url_for("/dead.xml")
    disabled_on = None
    for day in range(1, 21):  # news_daily, every midnight
        stage_feeds(clocked, engine, [url])
        if disabled_on is None and health(engine)[url]["state"] == "disabled":
            disabled_on = day
        clock.advance(days=1)
    row = health(engine)[url]
    assert disabled_on == 17  # the first poll on or after 14 days of failure (days 1-6, 8, 11, 14, 17 polled)
    assert len(requests_to(httpserver, "/dead.xml")) == 10
    assert row["disabled_at"] == T0 + timedelta(days=16)
    assert (
        row["disabled_reason"]
        == f"failing since 2026-03-01 00:00 UTC (10 polls in a row); last error [fetch]: {url}: HTTP 404"
    )

    asked = ingest_feeds(clocked, engine, [url])  # named on the command line: still not polled
    assert (asked.failed, list(asked.feeds_skipped)) == (0, [url])
    assert asked.feeds_skipped[url].startswith("disabled since 2026-03-17 00:00 UTC: failing since")
    assert fetch_feeds(clocked, [url], retry=True)["feeds_skipped"] == 1  # a batch of only disabled feeds is green
    assert len(requests_to(httpserver, "/dead.xml")) == 10

    monkeypatch.setenv("NEWSFLOW_DATABASE_URL", migrated_url)
    shown = CliRunner().invoke(app, ["feeds", "health"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert url in shown.output and "disabled" in shown.output and "HTTP 404" in shown.output
    enabled = CliRunner().invoke(app, ["feeds", "enable", url])
    assert enabled.exit_code == 0, enabled.output
    row = health(engine)[url]
    assert (row["state"], row["consecutive_failures"], row["disabled_at"], row["next_poll_at"]) == ("ok", 0, None, None)
    assert row["last_error"] == f"{url}: HTTP 404"  # kept as history
    assert stage_feeds(clocked, engine, [url]).failed == 1  # polled again at once
    assert health(engine)[url]["failing_since"] == clock.now
    unknown = CliRunner().invoke(app, ["feeds", "enable", url + "?not-listed"])
    assert unknown.exit_code == 2 and "was ever polled" in unknown.output


# The view and its reader


@pytest.mark.postgres
def test_the_view_has_a_row_per_feed_with_entries_per_day_and_masked_credentials(
    httpserver: HTTPServer, clocked: Settings, engine: sa.Engine
) -> None:
    site = serve_feed_pages(httpserver)
    site.expect_request("/good.xml").respond_with_data(
        rss(site.url_for("/talks"), site.url_for("/bbc")), content_type="application/rss+xml"
    )
    stage_feeds(clocked, engine, [site.url_for("/good.xml")])
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO feeds (url) VALUES ('https://news.example/never.xml')"))
        conn.execute(
            sa.text(
                "INSERT INTO feeds (url, last_polled_at, consecutive_failures, last_failure) VALUES "
                "('https://ann:s3cret@news.example/private.xml', now(), 1, "
                "'https://ann:s3cret@news.example/private.xml: HTTP 401')"
            )
        )
    rows = health(engine)
    good = rows[site.url_for("/good.xml")]
    assert (good["state"], float(good["entries_per_day"])) == ("ok", 0.29)  # 2 entries over 7 days
    assert good["last_new_entry_at"] is not None and good["title"] == "Local news"
    assert rows["https://news.example/never.xml"]["state"] == "new"
    masked = rows["https://***@news.example/private.xml"]
    assert (masked["state"], masked["last_error"]) == ("failing", "https://***@news.example/private.xml: HTTP 401")
    assert not any("s3cret" in str(value) for row in rows.values() for value in row.values())
    assert [row.state for row in feed_health(engine)] == ["failing", "new", "ok"]  # worst first
    assert [row.feed_url for row in feed_health(engine, limit=1)] == ["https://***@news.example/private.xml"]


@pytest.fixture
def reader_url(engine: sa.Engine, migrated_url: str) -> Iterator[str]:
    name = f"reader_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {name} LOGIN IN ROLE newsflow_reader"))
    yield make_url(migrated_url).set(username=name, password=None).render_as_string(hide_password=False)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP OWNED BY {name}"))
        conn.execute(sa.text(f"DROP ROLE {name}"))


@pytest.mark.postgres
def test_the_reader_role_selects_the_view_but_not_the_feeds_table(engine: sa.Engine, reader_url: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO feeds (url) VALUES ('https://news.example/feed.xml')"))
    reader = sa.create_engine(reader_url, poolclass=sa.NullPool)
    with reader.connect() as conn:
        assert conn.execute(sa.text("SELECT feed_url, state FROM v_feed_health")).tuples().all() == [
            ("https://news.example/feed.xml", "new")
        ]
    with reader.connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        conn.execute(sa.text("SELECT * FROM feeds"))
    reader.dispose()


@pytest.mark.postgres
def test_a_password_holding_an_at_sign_never_shows_in_the_view_the_task_log_or_the_task_name(
    httpserver: HTTPServer, clocked: Settings, engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Before, the view masked only up to the first ``@`` (``https://***@s3cr3t@host``, the password's tail
    shown), and the task log, its failure and its map index named the feed with its password."""
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/private.xml").respond_with_data("no", status=401)
    host = httpserver.url_for("/private.xml").split("://", 1)[1]
    url = f"http://ann:p@ss-s3cr3t@{host}"  # the last @ ends the user info (RFC 3986, WHATWG)
    with pytest.raises(SystemicError) as raised, caplog.at_level("INFO"):
        fetch_feeds(clocked, [url])
    rows = health(engine)
    shown = [str(value) for row in rows.values() for value in row.values()]
    shown += [str(raised.value), caplog.text, feed_batch_label([url])]
    assert not [text for text in shown if "s3cr3t" in text or "ann:" in text]
    assert f"http://***@{host}" in rows and f"http://***@{host}" in str(raised.value)


@pytest.mark.postgres
def test_a_well_formed_feed_served_as_html_or_with_a_wrong_declared_encoding_is_healthy(
    httpserver: HTTPServer, clocked: Settings, clock: WallClock, engine: sa.Engine
) -> None:
    """feedparser flags these ``bozo`` though it parsed the document strictly and whole (its exception class
    for them is ``ThingsNobodyCaresAboutButMe``). Before, each poll of such a feed was a failure: it backed off
    and, after NEWSFLOW_FEED_DISABLE_DAYS, was disabled while delivering every entry."""
    site = serve_feed_pages(httpserver)
    declared = rss(site.url_for("/talks")).replace('version="1.0"?>', 'version="1.0" encoding="us-ascii"?>')
    site.expect_request("/html.xml").respond_with_data(rss(site.url_for("/talks")), content_type="text/html")
    site.expect_request("/ascii.xml").respond_with_data(
        declared.replace("Local news", "Caf\u00e9 news").encode(), content_type="application/rss+xml"
    )
    urls = [site.url_for("/html.xml"), site.url_for("/ascii.xml")]
    for _day in range(int(clocked.feed_disable_days) + 2):
        summary = stage_feeds(clocked, engine, urls)
        assert summary.failed == 0 and not summary.feeds_skipped, summary.failures
        clock.advance(days=1)
    rows = health(engine)
    assert [(rows[url]["state"], rows[url]["consecutive_failures"]) for url in urls] == [("ok", 0)] * 2
    page = '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>Home</title></head></html>'
    site.expect_request("/moved.xml").respond_with_data(page, content_type="text/html")
    moved = stage_feeds(clocked, engine, [site.url_for("/moved.xml")])  # a page, no feed: still malformed
    assert [failure.error.split(":")[0] for failure in moved.failures] == ["malformed feed"]
