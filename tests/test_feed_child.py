"""The feed child against a hostile feed, red-team round 3: what it hands back is bounded, and it dies with its
poller. Peak memory is measured in a process of its own (``tests.feed_cost``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import FeedError
from pipeline.models import SkippedEntry
from pipeline.sources.feed_parsing import CHILD, ParseLimits, parse_feed
from pipeline.sources.feeds import feed_entry

from .hostile import HostileServer, hostile_server, respond
from .test_feed_faults import HEAD, PEAK_LIMIT_MIB, poll_in_child
from .test_fetch import article

ROOT = Path(__file__).resolve().parent.parent
ATOM = {"content-type": "application/atom+xml"}


def entity_feed(kind: str) -> bytes:
    """A 105 KB feed whose internal DTD entity expands, through feedparser's loose parser, to 150 MB of one
    entry's content (``html``, ``text``), or to 50 entries of 9 MB each (``adding-up``); with ``-utf-7``, the
    declaration is written ``<+ACE-ENTITY`` so it is not dropped before parsing (15 entries of 9 MB each, as
    50 are over the child's memory)."""
    refs, count = {"adding-up": (90, 50), "adding-up-utf-7": (90, 15)}.get(kind, (1_500, 1))
    declaration = b'<!ENTITY a "' + b"word " * 20_000 + b'">'
    kind_attribute = b"text" if kind == "text" else b"html"
    items = b"".join(
        b'<entry><id>urn:b%d</id><title>t</title><content type="%s">&lt;p>' % (n, kind_attribute)
        + b"&a;" * refs
        + b"&lt;/p></content></entry>"
        for n in range(count)
    )
    head = b'<?xml version="1.0"?>\n<!DOCTYPE feed [\n' + declaration + b"\n]>\n"
    if kind.endswith("utf-7"):  # "<!" as "<+ACE-": no declaration to drop until feedparser decodes it
        head = head.replace(b'version="1.0"?>', b'version="1.0" encoding="utf-7"?>').replace(b"<!", b"<+ACE-")
    return head + b'<feed xmlns="http://www.w3.org/2005/Atom"><title>f</title>' + items + b"</feed>"


def atom_feed(*entries: str, encoding: str = "utf-8") -> bytes:
    text = f'<?xml version="1.0" encoding="{encoding}"?><feed xmlns="http://www.w3.org/2005/Atom"><title>f</title>'
    return (text + "".join(entries) + "</feed>").encode(encoding)


def entry(number: int, content: str, title: str = "t") -> str:
    return f'<entry><id>urn:{number}</id><title>{title}</title><content type="html">{content}</content></entry>'


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with hostile_server() as hostile:
        hostile.route("/robots.txt", respond(404, b""))
        yield hostile


@pytest.mark.postgres
@pytest.mark.parametrize("kind", ["html", "text", "adding-up", "utf-7", "adding-up-utf-7"])
def test_an_entity_that_expands_past_every_cap_costs_the_poller_no_memory(
    server: HostileServer, migrated_url: str, kind: str
) -> None:
    """Before: +442 MB in the poller for the 105 KB ``html`` feed (150 MB of JSON read whole, then parsed)."""
    body = entity_feed(kind)
    assert len(body) < 200_000
    server.route("/entity", respond(200, body, {"Content-Type": "application/atom+xml"}))
    server.route("/story", respond(200, article(extra="<p>The good feed's story.</p>").encode()))
    item = f"<item><title>G</title><link>{server.url('/story')}</link></item>"
    good = f"<rss version='2.0'><channel>{item}</channel></rss>"
    server.route("/good", respond(200, good.encode(), {"Content-Type": "application/rss+xml"}))

    outcome = poll_in_child(migrated_url, 30.0, server.url("/entity"), server.url("/good"))
    assert float(outcome["peak_mib"]) < PEAK_LIMIT_MIB, outcome  # type: ignore[arg-type]
    failures = outcome["failures"]  # the entity feed's: malformed, or its entries' thin text
    assert isinstance(failures, list) and {stage for stage, _ in failures} <= {"feed", "extract"}, outcome
    assert int(outcome["loaded"]) >= 1, outcome  # type: ignore[call-overload]  # the good feed's story
    if kind == "utf-7":  # the declaration is not seen, so it expands: the content is refused, not sent
        (refused,) = parse_feed(body, ATOM, ParseLimits()).entries
        assert refused.get("refused") == "its content is over 10,485,760 bytes" and "content" not in refused
    if kind == "adding-up-utf-7":  # each entry under the cap, the answer over it: read no further
        assert any("its entries come to more than 22,020,096 bytes" in error for _, error in failures), outcome


def test_internal_entity_declarations_are_not_expanded_in_any_encoding() -> None:
    """The declarations are dropped before parsing (quotes holding ``>``, parameter entities, UTF-16)."""
    declarations = '<!ENTITY a "x>y"><!ENTITY % p \'<!ENTITY b "z">\'>%p;'
    for encoding in ("utf-8", "utf-16"):
        head = f'<?xml version="1.0" encoding="{encoding}"?><!DOCTYPE feed [{declarations}]>'
        feed = '<feed xmlns="http://www.w3.org/2005/Atom"><title>f</title>' + entry(1, "[&amp;a;|&a;|&b;]")
        body = (head + feed + "</feed>").encode(encoding)
        parsed = parse_feed(body, ATOM, ParseLimits())
        assert len(parsed.entries) == 1, (encoding, parsed)
        value = parsed.entries[0]["content"][0]["value"]
        assert "x>y" not in value and "z" not in value, (encoding, value)


def test_a_childs_answer_over_the_cap_is_the_feeds_error() -> None:
    """Entries each under the cap that add up past twice it and a MiB: refused, not read whole."""
    limits = ParseLimits(entry_bytes=100_000)
    body = atom_feed(*(entry(n, "w" * 90_000) for n in range(30)))
    with pytest.raises(FeedError, match=r"feed too costly to parse: its entries come to more than 1,248,576 bytes"):
        parse_feed(body, ATOM, limits)


def test_an_entry_over_the_caps_is_skipped_with_its_reason_and_the_others_kept() -> None:
    """UTF-16 CJK content grows by half as UTF-8: under the fetch cap as a feed, over it as an entry; a title of
    70,000 characters; the entry's content is sent once, not again as its summary."""
    limits = ParseLimits(entry_bytes=250_000)
    story = "\u4e2d" * 100_000
    assert len(story.encode("utf-16")) < limits.entry_bytes < len(story.encode("utf-8"))
    body = atom_feed(
        entry(1, story),
        entry(2, "ok", title="T" * 70_000),
        entry(3, "<p>kept</p>"),
        encoding="utf-16",
    )
    parsed = parse_feed(body, ATOM, limits)
    read = [feed_entry("https://e.example/feed", item) for item in parsed.entries]
    skipped = [item for item in read if isinstance(item, SkippedEntry)]
    assert [item.reason for item in skipped] == [
        "its content is over 250,000 bytes",
        "its title is over 65,536 characters",
    ]
    assert [item.entry for item in skipped] == ["urn:1", "urn:2"]
    kept = parsed.entries[2]
    assert "summary_detail" not in kept and [detail["value"] for detail in kept["content"]] == ["<p>kept</p>"]


def test_the_child_stops_at_its_cpu_limit_on_its_own() -> None:
    """Without the poller's timeout, the child's ``RLIMIT_CPU`` (its time limit and a second) ends it: 300,000
    unclosed tags take feedparser's loose parser 4 s of CPU and under 100 MB."""
    slow = HEAD + b"<description>" + b"<b>" * 300_000
    options = json.dumps({"headers": {}, "memory_bytes": 512 * 1024 * 1024, "seconds": 1, "entry_bytes": 10**7})
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-I", str(CHILD), options], input=slow, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == -signal.SIGXCPU, done.stderr[-500:]
    assert time.monotonic() - started < 10


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(part) for part in path.read_text().split()] if path.exists() else []


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_killed_pollers_feed_child_dies_with_it() -> None:
    """Before: the child, re-parented to PID 1, went on parsing (460 MB RSS for 8 s and more)."""
    script = (
        "from tests.test_feed_faults import COSTLY; "
        "from pipeline.sources.feed_parsing import parse_feed, ParseLimits; "
        "parse_feed(COSTLY['tags'], {'content-type': 'application/rss+xml'}, ParseLimits(seconds=600))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    poller = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while not children(poller.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    (child,) = children(poller.pid)
    time.sleep(1.0)  # well into parsing
    try:
        poller.kill()
        poller.wait()
        gone_by = time.monotonic() + 1.0
        while running(child) and time.monotonic() < gone_by:
            time.sleep(0.05)
        assert not running(child)
    finally:
        if running(child):
            os.kill(child, signal.SIGKILL)
