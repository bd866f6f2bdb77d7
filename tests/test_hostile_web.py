"""The HTTP client against a hostile server (tests/hostile.py): bombs stop at the cap with little memory, every
fetch ends by its total deadline, Retry-After is capped, robots.txt follows RFC 9309, types are checked before
any body is read."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import brotli
import pytest
import sqlalchemy as sa

from pipeline.errors import FetchDeferredError
from pipeline.ingest import ingest
from pipeline.settings import Settings
from pipeline.sources import decoding
from pipeline.sources.http import Fetcher, FetchError, FetchPolicy

from . import hostile
from .conftest import ROOT, MakeDatabase
from .hostile import HostileServer, respond

POLICY = FetchPolicy(allow_private_hosts=True, host_interval=0, backoff_seconds=0.05, attempts=3, deadline=3.0)
PAGE = (
    b"<html><head><title>A</title></head><body><article><p>"
    + b"Text of the page. " * 40
    + b"</p></article></body></html>"
)
MAX_BYTES = 10 * 1024 * 1024
PEAK_LIMIT_MIB = 300  # what one hostile response may add to a process's peak memory


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with hostile.hostile_server() as running:
        running.route("/robots.txt", respond(404, b""))
        yield running


@pytest.fixture(scope="session")
def bomb_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bombs")


def fetch_in_child(url: str, *, deadline: float = 0, max_bytes: int = MAX_BYTES) -> dict[str, object]:
    """Fetch in a fresh process and report its error, seconds and peak-memory rise (MiB)."""
    command = [sys.executable, "-m", "tests.hostile", url, str(max_bytes), str(deadline)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
    return dict(json.loads(done.stdout))


@pytest.mark.parametrize(
    "encodings", [("gzip",), ("br",), ("gzip", "gzip"), ("deflate", "br"), ("br", "gzip")], ids="-".join
)
def test_a_compression_bomb_stops_at_the_cap_with_little_memory(
    server: HostileServer, bomb_cache: Path, encodings: tuple[str, ...]
) -> None:
    server.route("/bomb", hostile.bomb_response(encodings, bomb_cache))
    outcome = fetch_in_child(server.url("/bomb"))
    assert outcome["error"] and "over the 10,485,760-byte limit" in str(outcome["error"])
    assert float(outcome["peak_mib"]) < PEAK_LIMIT_MIB, outcome  # type: ignore[arg-type]


def test_an_honest_stacked_encoding_is_decoded(server: HostileServer, bomb_cache: Path) -> None:
    body = hostile._compress("br", hostile._compress("gzip", PAGE))
    server.route("/stacked", respond(200, body, {"Content-Encoding": "gzip, br"}))
    with Fetcher(POLICY) as fetcher:
        assert fetcher.get(server.url("/stacked")).body == PAGE


@pytest.mark.parametrize(
    ("encoding", "reason"),
    [("compress", "unsupported Content-Encoding 'compress'"), ("gzip, " * 6 + "gzip", "more than 4 content encodings")],
)
def test_unknown_or_absurd_encodings_are_refused(server: HostileServer, encoding: str, reason: str) -> None:
    server.route("/odd", respond(200, PAGE, {"Content-Encoding": encoding}))
    with Fetcher(POLICY) as fetcher, pytest.raises(FetchError, match=reason):
        fetcher.get(server.url("/odd"))


def test_corrupt_compressed_data_is_a_clear_error(server: HostileServer) -> None:
    server.route("/corrupt", respond(200, b"\x1f\x8b\x08\x00garbage" * 10, {"Content-Encoding": "gzip"}))
    with Fetcher(POLICY) as fetcher, pytest.raises(FetchError, match="cannot decode the gzip body"):
        fetcher.get(server.url("/corrupt"))


@pytest.mark.parametrize(
    "behaviour",
    [hostile.trickle_body(0.2), hostile.trickle_head(0.2), hostile.stall_after_head()],
    ids=["trickled-body", "trickled-headers", "stalled-body"],
)
def test_a_fetch_ends_by_its_total_deadline(server: HostileServer, behaviour: hostile.Behaviour) -> None:
    server.route("/slow", behaviour)
    outcome = fetch_in_child(server.url("/slow"), deadline=3.0)
    assert "timed out" in str(outcome["error"]) and "3 s" in str(outcome["error"]), outcome
    assert float(outcome["seconds"]) < 3.0 + 1.0, outcome  # type: ignore[arg-type]


def test_a_trickled_robots_txt_ends_by_the_deadline_and_says_so(server: HostileServer) -> None:
    server.route("/robots.txt", hostile.trickle_body(0.2, {"Content-Type": "text/plain"}))
    server.route("/page", respond(200, PAGE))
    policy = replace(POLICY, respect_robots=True)
    started = time.monotonic()
    with Fetcher(policy) as fetcher, pytest.raises(FetchError, match=r"robots\.txt unreachable: timed out"):
        fetcher.get(server.url("/page"))
    assert time.monotonic() - started < policy.deadline + 1.0
    assert "/page" not in server.requests


def test_the_deadline_covers_retries_and_their_waits(server: HostileServer) -> None:
    server.route("/flaky", respond(503, b"busy", {"Retry-After": "2"}))
    started = time.monotonic()
    with Fetcher(replace(POLICY, attempts=10)) as fetcher, pytest.raises(FetchError):
        fetcher.get(server.url("/flaky"))
    assert time.monotonic() - started < POLICY.deadline + 1.0


@pytest.mark.parametrize("retry_after", ["999999", "Wed, 21 Oct 2099 07:28:00 GMT"])
def test_a_long_retry_after_defers_the_url_instead_of_sleeping(server: HostileServer, retry_after: str) -> None:
    server.route("/later", respond(429, b"slow down", {"Retry-After": retry_after}))
    slept: list[float] = []
    deferred = pytest.raises(FetchDeferredError, match="deferred to the next poll: the server asked to wait")
    with Fetcher(replace(POLICY, deadline=30.0), sleep=slept.append) as fetcher, deferred:
        fetcher.get(server.url("/later"))
    assert slept == [] and server.requests.count("/later") == 1


def test_a_short_retry_after_is_honoured(server: HostileServer) -> None:
    answers = iter([respond(503, b"busy", {"Retry-After": "7"}), respond(200, PAGE)])
    server.route("/busy", lambda connection: next(answers)(connection))
    slept: list[float] = []
    with Fetcher(replace(POLICY, deadline=30.0), sleep=slept.append) as fetcher:
        assert fetcher.get(server.url("/busy")).body == PAGE
    assert slept == [7.0]


def test_the_content_type_is_checked_before_the_body_is_read(server: HostileServer) -> None:
    server.route("/binary", hostile.trickle_body(0.05, {"Content-Type": "application/octet-stream"}))
    started = time.monotonic()
    with Fetcher(POLICY) as fetcher, pytest.raises(FetchError, match="unexpected content type"):
        fetcher.get(server.url("/binary"))
    assert time.monotonic() - started < 1.0  # the body that never ends was never read


@pytest.mark.parametrize(
    ("declared", "body", "reason"),
    [(10_000, PAGE[:100], "incomplete|peer closed"), (10**12, PAGE, "over the 10,485,760-byte limit")],
    ids=["short-body", "huge-declared"],
)
def test_lying_lengths_are_clear_errors(server: HostileServer, declared: int, body: bytes, reason: str) -> None:
    server.route("/lie", hostile.lying_length(declared, body))
    with Fetcher(POLICY) as fetcher, pytest.raises(FetchError, match=reason):
        fetcher.get(server.url("/lie"))


ROBOTS = b"""User-agent: *
Disallow: /

User-agent: Newsflow
Disallow: /private
Allow: /private/press
Disallow: /*.pdf$
"""


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/private/press/release", True),  # the longest match wins, not the first
        ("/private/notes", False),
        ("/report.pdf", False),
        ("/report.pdfx", True),
        ("/news/story", True),  # Newsflow has its own group: the * group does not apply
    ],
)
def test_robots_txt_follows_rfc_9309(server: HostileServer, path: str, allowed: bool) -> None:
    server.route("/robots.txt", respond(200, ROBOTS, {"Content-Type": "text/plain"}))
    server.route(path, respond(200, PAGE))
    with Fetcher(replace(POLICY, respect_robots=True)) as fetcher:
        if allowed:
            assert fetcher.get(server.url(path)).body == PAGE
        else:
            with pytest.raises(FetchError, match=r"disallowed by robots\.txt"):
                fetcher.get(server.url(path))


def test_robots_txt_wildcards_and_end_anchors(server: HostileServer) -> None:
    rules = b"User-agent: *\nDisallow: /*.pdf$\nDisallow: /*?print=\n"
    server.route("/robots.txt", respond(200, rules, {"Content-Type": "text/plain"}))
    for path in ("/a.pdfx", "/story"):
        server.route(path, respond(200, PAGE))
    with Fetcher(replace(POLICY, respect_robots=True)) as fetcher:
        for path in ("/files/a.pdf", "/story?print=1"):
            with pytest.raises(FetchError, match="disallowed"):
                fetcher.get(server.url(path))
        assert fetcher.get(server.url("/a.pdfx")).body == PAGE


@pytest.mark.parametrize(
    ("status", "allowed", "reason"),
    [(404, True, None), (410, True, None), (503, False, "robots.txt unreachable: HTTP 503")],
)
def test_robots_txt_status_per_rfc(server: HostileServer, status: int, allowed: bool, reason: str | None) -> None:
    server.route("/robots.txt", respond(status, b"Disallow: /"))
    server.route("/page", respond(200, PAGE))
    with Fetcher(replace(POLICY, respect_robots=True)) as fetcher:
        if allowed:
            assert fetcher.get(server.url("/page")).body == PAGE
        else:
            with pytest.raises(FetchError, match=reason):
                fetcher.get(server.url("/page"))


def test_a_redirected_robots_txt_is_followed(server: HostileServer) -> None:
    server.route("/robots.txt", respond(301, b"", {"Location": "/real-robots.txt"}))
    server.route("/real-robots.txt", respond(200, b"User-agent: *\nDisallow: /\n", {"Content-Type": "text/plain"}))
    with Fetcher(replace(POLICY, respect_robots=True)) as fetcher, pytest.raises(FetchError, match="disallowed"):
        fetcher.get(server.url("/page"))


def test_a_deferred_url_leaves_a_row_that_says_so(
    server: HostileServer, make_database: MakeDatabase, settings: Settings
) -> None:
    server.route("/later", respond(503, b"busy", {"Retry-After": "86400"}))
    url = make_database()
    run_settings = replace(settings, database_url=url, allow_private_hosts=True)
    from pipeline.db.engine import create_engine

    engine = create_engine(url)
    summary = ingest(run_settings, engine, [server.url("/later")])
    assert summary.failed == 1
    with engine.connect() as conn:
        stage, error = conn.execute(sa.text("SELECT stage, error FROM ingest_errors")).one()
    assert stage == "fetch" and error.startswith("deferred to the next poll")


def test_the_child_process_measures_this_checkout() -> None:
    """The peak-memory child imports the code under test, not an installed copy."""
    code = "import pipeline, sys; sys.stdout.write(pipeline.__file__)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONSAFEPATH": ""})  # fmt: skip
    assert Path(done.stdout).resolve().is_relative_to(ROOT)


# Found by red-teaming the first version of this client.


def test_work_that_decodes_to_nothing_is_bounded(server: HostileServer) -> None:
    """Empty gzip members inside brotli: 418 bytes of input, no output, and (before) 43 s of work."""
    server.route("/empty", respond(200, hostile.empty_members_in_br(256 * 52428), {"Content-Encoding": "gzip, br"}))
    outcome = fetch_in_child(server.url("/empty"), deadline=3.0)
    assert float(outcome["seconds"]) < 3.0 + 1.0, outcome  # type: ignore[arg-type]
    assert "more than 1,000 gzip members" in str(outcome["error"])


@pytest.mark.parametrize(
    ("coding", "body"),
    [("deflate", zlib.compress(PAGE)), ("gzip", gzip.compress(PAGE))],
)
def test_what_follows_the_end_of_a_coding_is_not_read(server: HostileServer, coding: str, body: bytes) -> None:
    server.route("/tail", hostile.endless_after(body, coding))
    started = time.monotonic()
    with Fetcher(POLICY) as fetcher:
        assert fetcher.get(server.url("/tail")).body == PAGE
    assert time.monotonic() - started < 1.0


def test_bytes_after_a_brotli_stream_are_a_clear_error_at_once(server: HostileServer) -> None:
    """brotli's decoder cannot say where its stream ended within a chunk: what follows it there is an error."""
    server.route("/tail", hostile.endless_after(brotli.compress(PAGE), "br"))
    started = time.monotonic()
    with Fetcher(POLICY) as fetcher, pytest.raises(FetchError, match="cannot decode the br body"):
        fetcher.get(server.url("/tail"))
    assert time.monotonic() - started < 1.0


def test_a_host_with_many_dead_addresses_ends_by_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each address used to get the whole connect timeout (4 addresses: 12 s for a 3 s deadline)."""
    with hostile.blackhole() as port:
        answer = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))] * 4
        real = socket.getaddrinfo
        monkeypatch.setattr(
            socket, "getaddrinfo", lambda host, *a, **k: answer if host == "dead.test" else real(host, *a, **k)
        )
        started = time.monotonic()
        with (
            Fetcher(replace(POLICY, respect_robots=False, attempts=1)) as fetcher,
            pytest.raises(FetchError, match="timed out"),
        ):
            fetcher.get(f"http://dead.test:{port}/")
        assert time.monotonic() - started < POLICY.deadline + 1.0


def test_waiting_for_a_turn_at_a_host_ends_by_the_deadline(server: HostileServer) -> None:
    server.route("/page", respond(200, PAGE))
    policy = replace(POLICY, respect_robots=False, host_interval=5.0)
    with Fetcher(policy) as fetcher:
        assert fetcher.get(server.url("/page")).body == PAGE
        started = time.monotonic()
        with pytest.raises(FetchError, match="timed out: over the 3 s total deadline \\(waiting for a turn"):
            fetcher.get(server.url("/page"))
    assert time.monotonic() - started < 1.0  # the next turn is after the deadline: no point in waiting


def test_threads_sharing_a_fetcher_each_keep_their_deadline(server: HostileServer) -> None:
    server.route("/page", respond(200, PAGE))
    policy = replace(POLICY, respect_robots=False, host_interval=1.0)
    seconds: list[float] = []

    def fetch(fetcher: Fetcher) -> None:
        started = time.monotonic()
        with contextlib.suppress(FetchError):
            fetcher.get(server.url("/page"))
        seconds.append(time.monotonic() - started)

    with Fetcher(policy) as fetcher:
        threads = [threading.Thread(target=fetch, args=(fetcher,)) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert max(seconds) < policy.deadline + 1.0, seconds


def test_a_robots_txt_timed_out_in_another_fetchs_leftover_time_is_asked_again() -> None:
    """A slow redirect on site A leads to site B late in its deadline; B's robots.txt must not be held
    unreachable for the rest of the run."""
    with hostile.hostile_server() as site_a, hostile.hostile_server() as site_b:
        site_b.route("/robots.txt", hostile.delayed(0.5, respond(200, b"User-agent: *\nAllow: /\n")))
        site_b.route("/story", respond(200, PAGE))
        site_a.route("/robots.txt", respond(404, b""))
        site_a.route("/r", hostile.delayed(2.8, respond(302, b"", {"Location": site_b.url("/story")})))
        with Fetcher(replace(POLICY, respect_robots=True, attempts=1)) as fetcher:
            with pytest.raises(FetchError, match="timed out"):
                fetcher.get(site_a.url("/r"))
            assert fetcher.get(site_b.url("/story")).body == PAGE


@pytest.mark.parametrize(
    "behaviour",
    [
        respond(503, b"busy", {"Retry-After": "\xb2"}),
        respond(429, b"slow", {"Retry-After": "Mon, 01 Jan 99999999999 00:00:00 GMT"}),
        respond(302, b"", {"Location": "http://a..b/"}),
        respond(302, b"", {"Location": "http://" + "x" * 64 + ".example/"}),
        respond(302, b"", {"Location": "http://example.com:99999/"}),
        respond(302, b"", {"Location": "http://[::1/"}),
    ],
    ids=[
        "retry-after-superscript",
        "retry-after-year-99999999999",
        "empty-label",
        "long-label",
        "bad-port",
        "bad-ipv6",
    ],
)
def test_hostile_headers_are_fetch_errors(server: HostileServer, behaviour: hostile.Behaviour) -> None:
    server.route("/odd", behaviour)
    with Fetcher(replace(POLICY, attempts=2)) as fetcher, pytest.raises(FetchError):
        fetcher.get(server.url("/odd"))


@pytest.mark.parametrize("url", ["http://example.com:99999/", "http://a..b/", "http://[::1/"])
def test_urls_that_do_not_parse_are_fetch_errors(url: str) -> None:
    with Fetcher(FetchPolicy(attempts=1)) as fetcher, pytest.raises(FetchError, match=r"not a valid|cannot resolve"):
        fetcher.get(url)


def test_a_hostile_robots_txt_header_is_a_robots_error(server: HostileServer) -> None:
    server.route("/robots.txt", respond(302, b"", {"Location": "http://a..b/robots.txt"}))
    server.route("/page", respond(200, PAGE))
    with (
        Fetcher(replace(POLICY, respect_robots=True)) as fetcher,
        pytest.raises(FetchError, match=r"robots\.txt unreachable"),
    ):
        fetcher.get(server.url("/page"))


def _decode(parts: list[bytes], coding: str) -> bytes:
    pieces = decoding.decoded(parts, coding, check=lambda: None, intermediate_limit=10**9)
    return b"".join(pieces)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])
def test_a_truncated_body_is_an_error_not_a_shorter_page(coding: str) -> None:
    body = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress}[coding](PAGE * 20)
    with pytest.raises(decoding.DecodingError, match="ends early"):
        _decode([body[: len(body) - 5]], coding)


def test_codings_split_anywhere_decode_whole() -> None:
    members = gzip.compress(b"<html>A") + gzip.compress(b"B</html>")
    cut = len(gzip.compress(b"<html>A")) + 1  # one byte into the second member's magic
    assert _decode([members[:cut], members[cut:]], "gzip") == b"<html>AB</html>"
    wrapped = zlib.compress(PAGE)
    assert _decode([wrapped[:1], wrapped[1:]], "deflate") == PAGE
    assert _decode([bytes([byte]) for byte in brotli.compress(PAGE)], "br") == PAGE


def test_an_empty_body_with_a_coding_is_an_empty_page() -> None:
    for coding in ("gzip", "deflate", "br"):
        assert _decode([], coding) == b""


def test_an_intermediate_layer_is_capped() -> None:
    body = brotli.compress(gzip.compress(os.urandom(2_000_000)))  # br makes 2 MB of gzip stream
    with pytest.raises(decoding.DecodingError, match="the br layer decodes to more than 1,000,000 bytes"):
        b"".join(decoding.decoded([body], "gzip, br", check=lambda: None, intermediate_limit=1_000_000))


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "gzip, br", "br, deflate"])
@pytest.mark.parametrize("chunk", [1 << 16, 1 << 24], ids=["network-chunks", "one-chunk"])
def test_an_honest_large_body_decodes_whole(coding: str, chunk: int) -> None:
    """Bodies of several pieces, whatever the chunking (the first brotli loop stopped after 96 KiB)."""
    data = os.urandom(1_500_000) + bytes(1_500_000)
    body = data
    for name in (name.strip() for name in coding.split(",")):
        body = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress}[name](body)
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    assert _decode(parts, coding) == data


# Found by the second round of red-teaming.


def test_a_validator_that_cannot_be_sent_back_is_left_out(server: HostileServer) -> None:
    """An obs-text ETag (allowed by RFC 9110) stored from one poll made every later poll fail before sending."""
    server.route("/feed", respond(200, PAGE))
    with Fetcher(POLICY) as fetcher:
        for etag, modified in [('"caf\xe9"', "\xff\xfe"), ('"' + "x" * 200_000 + '"', None)]:
            assert fetcher.get(server.url("/feed"), etag=etag, last_modified=modified).body == PAGE


def test_a_huge_location_is_refused_before_robots_txt_is_asked(server: HostileServer) -> None:
    rule = b"Disallow:/*ab\n"
    server.route("/robots.txt", respond(200, b"User-agent: *\n" + rule * (512 * 1024 // len(rule))))
    server.route("/p", respond(302, b"", {"Location": "/" + "a" * 65000}))
    started = time.monotonic()
    with Fetcher(replace(POLICY, respect_robots=True)) as fetcher, pytest.raises(FetchError, match="at most 8,192"):
        fetcher.get(server.url("/p"))
    assert time.monotonic() - started < POLICY.deadline + 1.0


def test_a_robots_txt_that_starts_with_a_bom_is_obeyed(server: HostileServer) -> None:
    server.route(
        "/robots.txt", respond(200, b"\xef\xbb\xbfUser-agent: *\nDisallow: /\n", {"Content-Type": "text/plain"})
    )
    server.route("/page", respond(200, PAGE))
    with Fetcher(replace(POLICY, respect_robots=True)) as fetcher, pytest.raises(FetchError, match="disallowed"):
        fetcher.get(server.url("/page"))


def test_a_robots_txt_that_asks_to_come_back_later_defers_the_page(server: HostileServer) -> None:
    """Not "robots.txt unreachable" for the rest of the run: the page is deferred, and robots.txt asked again."""
    answers = iter([respond(429, b"", {"Retry-After": "999999"}), respond(404, b"")])
    server.route("/robots.txt", lambda connection: next(answers)(connection))
    server.route("/page", respond(200, PAGE))
    with Fetcher(replace(POLICY, respect_robots=True, deadline=30.0)) as fetcher:
        with pytest.raises(FetchDeferredError):
            fetcher.get(server.url("/page"))
        assert fetcher.get(server.url("/page")).body == PAGE
