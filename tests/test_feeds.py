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

from pipeline.ingest.feeds import ingest_feeds, stage_feeds
from pipeline.ingest.staged import process_pending
from pipeline.models import FeedEntry
from pipeline.settings import Settings
from pipeline.sources.feeds import FeedListError, feed_entry, read_feed_list

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
def site(httpserver: HTTPServer) -> HTTPServer:
    return serve_feed_pages(httpserver)


def serve_feed_pages(httpserver: HTTPServer) -> HTTPServer:
    """robots.txt (none), a real BBC page at /bbc and a short article at /talks."""
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
    nameless = tmp_path / "nameless.yaml"  # before: a bare KeyError
    nameless.write_text("- {name: x}\n- {url: [https://a.example/rss]}\n", encoding="utf-8")
    with pytest.raises(FeedListError, match=r"without a url: .*name"):
        read_feed_list(nameless)


def test_a_feed_list_of_yaml_aliases_is_refused_not_expanded(tmp_path: Path) -> None:
    """A billion laughs in the operator's feed list: refused before anything is expanded."""
    lines = ["a: &a [" + ", ".join(["https://x.example/rss"] * 10) + "]"]
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 10) + "]" for i in range(8)]
    bomb = tmp_path / "feeds.yaml"
    bomb.write_text("\n".join(lines) + "\nfeeds: *i\n", encoding="utf-8")
    with pytest.raises(FeedListError, match="aliases"):
        read_feed_list(bomb)


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


STORY = "<p>Negotiators from both sides met in Istanbul on Thursday for the first direct talks in three years.</p>" * 4


def atom(*entries: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Inline news</title>'
        f"<id>urn:newsflow:test</id>{''.join(entries)}</feed>"
    )


def atom_entry(entry_id: str | None, *, link: str | None = None, content: str | None = None, title: str = "") -> str:
    parts = [f"<id>{entry_id}</id>" if entry_id is not None else "", f"<title>{title or 'Untitled'}</title>"]
    parts.append(f'<link href="{link}"/>' if link is not None else "")
    parts.append(f'<content type="html"><![CDATA[{content}]]></content>' if content is not None else "")
    return f"<entry>{''.join(parts)}<updated>2024-05-01T10:00:00Z</updated></entry>"


def test_entries_carried_inline_are_ingested_from_their_content_once(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    """Atom content without a link (feedparser turns a tag: id into the link), content beside a javascript: link,
    RSS content:encoded and a bare description without link or guid: each is a document named within its feed,
    and a re-poll delivers none of them again."""
    feed_url, rss_url = site.url_for("/inline.xml"), site.url_for("/inline.rss")
    site.expect_request("/inline.xml").respond_with_data(
        atom(
            atom_entry("tag:example.org,2024:talks", content=f"<h2>Talks</h2>{STORY}", title="Talks resume"),
            atom_entry(
                "urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                link="javascript:alert(1)",
                content=f"<p>Scripted link.</p>{STORY}",
                title="Scripted",
            ),
        ),
        content_type="application/atom+xml",
    )
    site.expect_request("/inline.rss").respond_with_data(
        '<?xml version="1.0"?><rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        "<channel><title>Inline RSS</title>"
        '<item><title>Encoded</title><guid isPermaLink="false">story 7\n</guid>'
        f"<content:encoded><![CDATA[<p>Encoded.</p>{STORY}]]></content:encoded></item>"
        f"<item><title>Described</title><description><![CDATA[<p>Described.</p>{STORY}]]></description></item>"
        "</channel></rss>",
        content_type="application/rss+xml",
    )

    first = ingest_feeds(fetch_settings, engine, [feed_url, rss_url])
    assert (first.loaded, first.failed) == (4, 0), first.failures
    with engine.connect() as conn:
        articles = dict(conn.execute(sa.text("SELECT source, title FROM articles")).tuples().all())
        delivered = set(conn.scalars(sa.text("SELECT link FROM feed_entries WHERE article_id IS NOT NULL")))
    names = set(articles)
    assert f"feed-entry:{feed_url}#tag:example.org,2024:talks" in names
    assert f"feed-entry:{feed_url}#urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427" in names
    assert f"feed-entry:{rss_url}#story%207" in names
    assert any(name.startswith(f"feed-entry:{rss_url}#sha256:") for name in names)
    assert set(articles.values()) == {"Talks resume", "Scripted", "Encoded", "Described"}
    assert delivered == names

    again = ingest_feeds(fetch_settings, engine, [feed_url, rss_url])
    assert (again.seen, again.failed) == (0, 0)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM articles")) == 4


def test_another_feed_cannot_replace_an_inline_entry_by_reusing_its_id(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    entry_id = "tag:example.org,2024:talks"
    site.expect_request("/own.xml").respond_with_data(
        atom(atom_entry(entry_id, content=f"<p>The original.</p>{STORY}")), content_type="application/atom+xml"
    )
    site.expect_request("/copycat.xml").respond_with_data(
        atom(atom_entry(entry_id, content=f"<p>The impostor.</p>{STORY}")), content_type="application/atom+xml"
    )
    summary = ingest_feeds(fetch_settings, engine, [site.url_for("/own.xml"), site.url_for("/copycat.xml")])
    assert (summary.loaded, summary.replaced) == (2, 0)


def test_entries_without_a_usable_link_or_content_are_counted_and_listed(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    bad_links = ["javascript:alert(1)", "data:text/html,hi", "ftp://example.org/story", "mailto:desk@example.org",
                 "file:///etc/passwd", "http://host:99999/", "https://exa mple.com/",
                 "https://" + "a" * 3000 + ".example/"]  # fmt: skip
    entries = [atom_entry(f"urn:bad:{n}", link=link) for n, link in enumerate(bad_links)]
    entries += [atom_entry(None, title="Nothing at all"), atom_entry("urn:good", link=site.url_for("/talks"))]
    site.expect_request("/mixed.xml").respond_with_data(
        atom(*entries), content_type="application/atom+xml", headers={"ETag": '"m1"'}
    )
    site.expect_request("/mixed.xml", headers={"If-None-Match": '"m1"'}).respond_with_data("", status=304)

    summary = ingest_feeds(fetch_settings, engine, [site.url_for("/mixed.xml")])
    assert (summary.loaded, summary.failed, summary.feed_entries_skipped) == (1, 0, 9), summary.failures
    assert summary.extra()["skipped"] == 9 and summary.table_row()["skipped"] == 9
    with engine.connect() as conn:
        feed = conn.execute(sa.text("SELECT last_status, entries_skipped, last_error FROM feeds")).one()
    assert (feed.last_status, feed.entries_skipped) == ("fetched", 9)
    for scheme in ("javascript", "data", "ftp", "mailto", "file"):
        assert f"{scheme}:" in feed.last_error
    assert all(f"urn:bad:{n}" in feed.last_error for n in range(len(bad_links)))
    assert "no link and no content" in feed.last_error and len(feed.last_error) < 2000

    unchanged = ingest_feeds(fetch_settings, engine, [site.url_for("/mixed.xml")])
    assert unchanged.seen == 0
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT entries_skipped, last_error FROM feeds")).one()
    assert tuple(kept) == (9, feed.last_error)


def test_a_poll_that_runs_out_of_time_defers_the_rest(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    """Each story takes 100 s on a fake clock; a 250 s budget takes three entries, defers the other seven (not
    failed, not delivered), and the next poll takes the next three."""
    now = [0.0]

    def slow_story(request: Request) -> Response:
        now[0] += 100.0
        number = request.path.rsplit("/", 1)[-1]
        return Response(article(extra=f"<p>Slow story number {number}.</p>"), content_type="text/html")

    site.expect_request(re.compile(r"/slow/\d+")).respond_with_handler(slow_story)
    links = [site.url_for(f"/slow/{n}") for n in range(10)]
    site.expect_request("/slow.xml").respond_with_data(
        rss(*links), content_type="application/rss+xml", headers={"ETag": '"s1"'}
    )
    budgeted = replace(fetch_settings, feed_poll_seconds=250.0, clock=lambda: now[0])

    first = ingest_feeds(budgeted, engine, [site.url_for("/slow.xml")])
    assert (first.loaded, first.failed, first.feed_entries_deferred) == (3, 0, 7), first.failures
    with engine.connect() as conn:
        feed = conn.execute(sa.text("SELECT entries_deferred, etag FROM feeds")).one()
        errors = conn.scalar(sa.text("SELECT count(*) FROM ingest_errors"))
        delivered = sorted(conn.scalars(sa.text("SELECT link FROM feed_entries")))
    assert (tuple(feed), errors, delivered) == ((7, None), 0, sorted(links[:3]))

    second = ingest_feeds(budgeted, engine, [site.url_for("/slow.xml")])
    assert (second.loaded, second.failed, second.feed_entries_deferred) == (3, 0, 4)
    with engine.connect() as conn:
        assert sorted(conn.scalars(sa.text("SELECT link FROM feed_entries"))) == sorted(links[:6])


def test_the_scheduled_path_stages_inline_entries_and_processes_them(
    site: HTTPServer, fetch_settings: Settings, engine: sa.Engine
) -> None:
    feed_url = site.url_for("/staged.xml")
    site.expect_request("/staged.xml").respond_with_data(
        atom(atom_entry("tag:example.org,2024:staged", content=STORY, title="Staged"),
             atom_entry("urn:linked", link=site.url_for("/talks")), atom_entry("urn:void", link="mailto:x@y.z")),
        content_type="application/atom+xml",
    )  # fmt: skip
    staged = stage_feeds(fetch_settings, engine, [feed_url])
    assert (staged.staged, staged.failed, staged.extra()["skipped"]) == (2, 0, 1)
    processed = process_pending(fetch_settings, engine)
    assert (processed.loaded, processed.failed) == (2, 0)
    with engine.connect() as conn:
        sources = set(conn.scalars(sa.text("SELECT source FROM articles")))
        delivered = set(conn.scalars(sa.text("SELECT link FROM feed_entries WHERE raw_document_id IS NOT NULL")))
    assert sources == {f"feed-entry:{feed_url}#tag:example.org,2024:staged", site.url_for("/talks")} == delivered


def test_an_entry_points_at_its_page_by_content_src_and_its_inline_content_beats_a_link_to_a_pdf() -> None:
    """Atom ``<content src>`` is the entry's page (before: skipped as "urn: link … is not http(s)"); an
    alternate link declared as another type than HTML does not win over the entry's own content (before: the PDF
    was fetched, and failed, at every poll)."""
    by_src = {"id": "urn:a", "link": "urn:a", "content": [{"src": "https://e.example/story", "type": "text/html"}]}
    assert feed_entry("https://e.example/feed", by_src) == FeedEntry("https://e.example/story", None, "urn:a")
    pdf = {
        "id": "urn:b",
        "link": "urn:b",
        "links": [{"rel": "alternate", "type": "application/pdf", "href": "https://e.example/b.pdf"}],
        "content": [{"type": "text/html", "value": "<p>The story itself.</p>"}],
    }
    inline = feed_entry("https://e.example/feed", pdf)
    assert isinstance(inline, FeedEntry) and inline.content is not None
    assert inline.link == "feed-entry:https://e.example/feed#urn:b"
    without_content = feed_entry("https://e.example/feed", {**pdf, "content": []})
    assert isinstance(without_content, FeedEntry) and without_content.link == "https://e.example/b.pdf"
