"""The durable intake queue: messages and their boundary, the trigger's decision, and drains against the local
Redis (skipped, saying why, when 127.0.0.1:6379 does not answer): staged then acknowledged, never twice after a
crash between the two, malformed and huge messages acknowledged with their error row, a dead drain's messages
reclaimed only after the claim time."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from werkzeug import Response

from pipeline.errors import QueueUnavailableError, SystemicError
from pipeline.ingest.queue import drain_queue, enqueue
from pipeline.settings import Settings
from pipeline.sources import queue as broker
from pipeline.sources.queue import Backlog, IntakeMessage, MalformedMessageError, Queue, Reader

from .test_fetch import article

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2):
            return True
    except OSError:
        return False


# --- messages and their boundary (no Redis) ---


def test_messages_survive_the_stream_byte_for_byte() -> None:
    nasty = b"\x00\xff\xfe<p>caf\xc3\xa9</p>\r\n" * 3
    document = IntakeMessage.for_document("dir/ünïcode story.html", nasty, origin="hub ☃", metadata={"t": "T\u00e9"})
    url = IntakeMessage.for_url("https://news.example/a?b=c#d", origin="")
    assert broker.parse(document.fields()) == document
    name = "feed-entry:https://a.example/f#1"
    entry = IntakeMessage.for_document(name, b"<p>x</p>", origin="", media_type="text/html")
    assert broker.parse(entry.fields()) == entry  # a name without an extension keeps the format it was given
    assert broker.parse(url.fields()) == url
    assert broker.parse(url.fields()).source == "https://news.example/a?b=c#d"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({b"kind": b"url", b"url": b"https://a.example/"}, "unknown message version"),
        ({b"v": b"1", b"kind": b"feed"}, "unknown message kind"),
        ({b"v": b"1", b"kind": b"url"}, "no url"),
        ({b"v": b"1", b"kind": b"url", b"url": b"file:///etc/passwd"}, "not an http(s) URL"),
        ({b"v": b"1", b"kind": b"url", b"url": b"http://"}, "not an http(s) URL"),
        ({b"v": b"1", b"kind": b"url", b"url": b"http://a.example/x\nHost: evil"}, "space or control character"),
        ({b"v": b"1", b"kind": b"url", b"url": b"http://a.example/\xff"}, "not UTF-8"),
        ({b"v": b"1", b"kind": b"document", b"name": b"a.txt", b"content": b" \n"}, "empty document"),
        ({b"v": b"1", b"kind": b"document", b"content": b"text"}, "no name"),
        ({b"v": b"1", b"kind": b"document", b"name": b"a.txt", b"content": b"x", b"metadata": b"[1]"}, "JSON object"),
        ({b"v": b"1", b"kind": b"document", b"name": b"a.txt", b"content": b"x", b"metadata": b"{"}, "not JSON"),
        ({b"v": b"1", b"kind": b"document", b"name": b"e#1", b"content": b"x", b"media_type": b"image/svg+xml"},
         "unsupported media type"),
    ],
)
def test_a_malformed_message_says_why_at_the_queue_stage(fields: dict[bytes, bytes], reason: str) -> None:
    with pytest.raises(MalformedMessageError, match=reason.replace("(", r"\(").replace(")", r"\)")) as caught:
        broker.parse(fields)
    assert caught.value.stage == "queue"


def test_a_documents_metadata_is_cleaned_and_bounded_as_a_sidecars_is() -> None:
    """Before, a NUL or a lone surrogate in one metadata value lost the whole document (Postgres refused its
    JSON at the stage stage), nested values were stored as Python reprs, and 100,000 keys were taken whole."""
    metadata = {"Title": "A\u0000 B\ud800", "au\u0000thor": "Ann", "tags": ["x", "y"], "deep": {"a": [1]}}
    fields = {b"v": b"1", b"kind": b"document", b"name": b"a.html", b"content": b"<p>x</p>"}
    parsed = broker.parse({**fields, b"metadata": json.dumps(metadata).encode()})
    assert parsed.metadata == {"title": "A B?", "author": "Ann", "tags": "x, y"}
    many = json.dumps({f"k{n}": "v" for n in range(100_000)}).encode()
    with pytest.raises(MalformedMessageError, match=r"metadata.*over"):
        broker.parse({**fields, b"metadata": many})


def test_a_producers_metadata_with_a_lone_surrogate_is_sent_and_cleaned() -> None:
    """A lone surrogate in metadata (a feed entry's field, a file name's undecodable byte) made ``fields()``
    raise UnicodeEncodeError: a WebSub delivery carrying one was answered 503 and retried by its hub forever."""
    message = IntakeMessage.for_document("a.html", b"<p>x</p>", origin="o", metadata={"title": "caf\udce9"})
    assert broker.parse(message.fields()).metadata == {"title": "caf?"}


def test_a_huge_message_is_refused_before_anything_is_sent() -> None:
    """The refusal happens at the producer's boundary: the client points at a port nobody listens on, and the
    error is the message's size, not the connection."""
    queue = broker.connect(f"redis://127.0.0.1:{closed_port()}/0")
    huge = IntakeMessage.for_document("big.txt", b"x" * 2_000_001, origin="test")
    with pytest.raises(MalformedMessageError, match="over the 2,000,000-byte limit"):
        broker.publish(queue, "s", [IntakeMessage.for_url("https://a.example/", origin="t"), huge], max_bytes=2_000_000)


def test_redis_unreachable_is_systemic_at_the_queue_stage() -> None:
    queue = broker.connect(f"redis://127.0.0.1:{closed_port()}/0")
    with pytest.raises(QueueUnavailableError) as caught:
        broker.publish(queue, "s", [IntakeMessage.for_url("https://a.example/", origin="t")])
    assert isinstance(caught.value, SystemicError) and caught.value.stage == "queue"
    with pytest.raises(QueueUnavailableError, match="not a Redis URL"):
        broker.connect("http://127.0.0.1:6379/0")


def test_the_trigger_wakes_on_a_backlog_once_then_on_news_or_after_the_refire_time() -> None:
    empty, backlog, more = Backlog(0, 0, "5-0"), Backlog(2, 3, "5-0"), Backlog(2, 4, "6-0")
    assert not broker.should_wake(empty, None, since_fired=1e9, refire_seconds=60)
    assert broker.should_wake(backlog, None, since_fired=0, refire_seconds=60)
    assert not broker.should_wake(backlog, backlog, since_fired=59.9, refire_seconds=60)
    assert broker.should_wake(more, backlog, since_fired=0, refire_seconds=60)
    assert broker.should_wake(backlog, backlog, since_fired=60, refire_seconds=60)
    assert not broker.should_wake(empty, backlog, since_fired=1e9, refire_seconds=60)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- drains against the local Redis and a real Postgres ---


@pytest.fixture
def stream() -> Iterator[str]:
    if not redis_answers():
        pytest.skip("the queue's live tests need Redis at 127.0.0.1:6379")
    name = f"newsflow-test:{uuid.uuid4().hex}"
    yield name
    redis.Redis.from_url(REDIS_URL).delete(name)


@pytest.fixture
def queue_settings(fetch_settings: Settings, stream: str) -> Settings:
    return replace(fetch_settings, queue_url=REDIS_URL, queue_stream=stream, queue_group="drains", batch_size=3)


def pages(server: HTTPServer, count: int) -> list[str]:
    server.expect_request("/robots.txt").respond_with_data("", status=404)
    for n in range(count):
        server.expect_request(f"/story/{n}").respond_with_data(article(extra=f"Story {n}. "), content_type="text/html")
    server.expect_request("/gone").respond_with_data("gone", status=410)
    return [server.url_for(f"/story/{n}") for n in range(count)]


def fetched(server: HTTPServer) -> Counter[str]:
    return Counter(request.path for request, _response in server.log if request.path != "/robots.txt")


def counts(engine: sa.Engine, stream: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            "raw": conn.scalar(sa.text("SELECT count(*) FROM raw_documents WHERE processed_at IS NULL")),
            "errors": sorted(conn.scalars(sa.text("SELECT stage FROM ingest_errors"))),
            "ledger": dict(conn.execute(sa.text(LEDGER), {"s": stream}).tuples().all()),
        }


LEDGER = "SELECT outcome, count(*) FROM intake_messages WHERE stream = :s GROUP BY outcome"


def stream_state(stream: str, group: str = "drains") -> tuple[int, int]:
    """(entries left in the stream, messages pending in the group)."""
    client: Any = redis.Redis.from_url(REDIS_URL)
    return int(client.xlen(stream)), int(client.xpending(stream, group)["pending"])


@pytest.mark.postgres
def test_published_messages_are_staged_once_and_acknowledged(
    queue_settings: Settings, engine: sa.Engine, httpserver: HTTPServer, stream: str, tmp_path: Path
) -> None:
    urls = pages(httpserver, 4)
    doc = tmp_path / "note.md"
    doc.write_text("# Note\n\nA note from a producer, with caf\u00e9 in it.\n", encoding="utf-8")
    (tmp_path / "note.md.meta.yaml").write_text("title: A note\n", encoding="utf-8")
    sent = enqueue(queue_settings, [*urls, httpserver.url_for("/gone"), str(doc), str(tmp_path / "missing.txt")],
                   origin="test")  # fmt: skip
    redis.Redis.from_url(REDIS_URL).xadd(stream, {b"v": b"1", b"kind": b"carrier pigeon"})

    drained = drain_queue(queue_settings, engine, broker.connect(REDIS_URL))

    assert len(sent.published) == 6 and [f.stage for f in sent.failures] == ["read"]  # the missing file, not sent
    assert drained.messages["taken"] == 7 and drained.messages["malformed"] == 1 and drained.left == 0
    assert drained.summary.staged == 5 and drained.summary.failed == 2
    assert counts(engine, stream) == {"raw": 5, "errors": ["fetch", "queue"], "ledger": {"staged": 5, "failed": 2}}
    assert fetched(httpserver) == Counter([f"/story/{n}" for n in range(4)] + ["/gone"])
    assert stream_state(stream) == (0, 0)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT metadata->>'title' FROM raw_documents WHERE source = :s"),
                           {"s": str(doc.resolve())}) == "A note"  # fmt: skip
    before = fetched(httpserver)
    again = drain_queue(queue_settings, engine, broker.connect(REDIS_URL))
    assert again.messages["taken"] == 0 and fetched(httpserver) == before


class CrashBeforeAck:
    """A Redis client that dies (as a process killed) when the drain acknowledges, after staging."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        pipe = self.client.pipeline(*args, **kwargs)

        def crash(*_args: Any, **_kwargs: Any) -> None:
            raise KeyboardInterrupt("killed between staging and acknowledging")

        pipe.xack = crash  # type: ignore[method-assign]
        return pipe


@pytest.mark.postgres
def test_a_crash_between_staging_and_ack_redelivers_and_nothing_is_processed_twice(
    queue_settings: Settings, engine: sa.Engine, httpserver: HTTPServer, stream: str
) -> None:
    urls = pages(httpserver, 3)
    enqueue(queue_settings, urls, origin="test")
    crashing = Queue(CrashBeforeAck(redis.Redis.from_url(REDIS_URL)))  # type: ignore[arg-type]

    with pytest.raises(KeyboardInterrupt):
        drain_queue(queue_settings, engine, crashing)
    assert counts(engine, stream)["raw"] == 3 and stream_state(stream) == (3, 3)  # staged, not acknowledged

    patient = drain_queue(queue_settings, engine, broker.connect(REDIS_URL))
    assert patient.messages["taken"] == 0 and patient.left == 3  # the dead drain's claim has not expired

    drained = drain_queue(replace(queue_settings, queue_claim_seconds=0), engine, broker.connect(REDIS_URL))
    assert drained.messages["redelivered"] == 3 and drained.messages["taken"] == 0
    assert counts(engine, stream) == {"raw": 3, "errors": [], "ledger": {"staged": 3}}
    assert fetched(httpserver) == Counter(f"/story/{n}" for n in range(3))  # each page fetched once
    assert stream_state(stream) == (0, 0)


@pytest.mark.postgres
def test_a_dead_consumers_messages_are_reclaimed_after_the_claim_time(
    queue_settings: Settings, engine: sa.Engine, httpserver: HTTPServer, stream: str
) -> None:
    urls = pages(httpserver, 2)
    queue = broker.connect(REDIS_URL)
    broker.publish(queue, stream, [IntakeMessage.for_url(url, origin="test") for url in urls])
    dead = Reader(stream, "drains", consumer="dead-drain")
    broker.ensure_group(queue, dead)
    assert len(broker.read_new(queue, dead, count=10)) == 2  # taken, then its process died
    assert broker.backlog(queue, stream, "drains") == Backlog(2, 0, broker.backlog(queue, stream, "drains").last_id)

    drained = drain_queue(replace(queue_settings, queue_claim_seconds=0), engine, queue)

    assert drained.messages["reclaimed"] == 2 and drained.summary.staged == 2
    assert fetched(httpserver) == Counter(f"/story/{n}" for n in range(2))
    assert stream_state(stream) == (0, 0) and broker.backlog(queue, stream, "drains").total == 0


@pytest.mark.postgres
def test_a_huge_message_in_the_stream_is_an_error_row_and_acknowledged(
    queue_settings: Settings, engine: sa.Engine, stream: str
) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.xadd(stream, IntakeMessage.for_document("big.txt", b"word " * 400_000, origin="rogue").fields())  # type: ignore[arg-type]

    drained = drain_queue(replace(queue_settings, fetch_max_bytes=1_000_000), engine, broker.connect(REDIS_URL))

    assert drained.messages["malformed"] == 1
    with engine.connect() as conn:
        error = conn.scalar(sa.text("SELECT error FROM ingest_errors WHERE stage = 'queue'"))
    assert "over the 1,000,000-byte limit" in str(error)
    assert counts(engine, stream)["ledger"] == {"failed": 1} and stream_state(stream) == (0, 0)


def test_the_backlog_counts_waiting_then_pending_then_nothing(stream: str) -> None:
    queue = broker.connect(REDIS_URL)
    assert broker.backlog(queue, stream, "g").total == 0  # no stream yet
    ids = broker.publish(queue, stream, [IntakeMessage.for_url(f"https://a.example/{n}", origin="t") for n in range(3)])
    assert broker.backlog(queue, stream, "g") == Backlog(0, 3, ids[-1])  # no group yet: the whole stream waits
    reader = Reader(stream, "g", consumer="c")
    broker.ensure_group(queue, reader)
    broker.ensure_group(queue, reader)  # a second time is no error
    taken = broker.read_new(queue, reader, count=2)
    assert broker.backlog(queue, stream, "g") == Backlog(2, 1, ids[-1])
    broker.ack(queue, reader, [d.message_id for d in taken] + broker_ids(broker.read_new(queue, reader, count=5)))
    assert broker.backlog(queue, stream, "g").total == 0


def broker_ids(delivered: list[broker.Delivered]) -> list[str]:
    return [d.message_id for d in delivered]


# --- the producer: newsflow enqueue ---


def test_enqueue_with_redis_down_exits_3_and_publishes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    (tmp_path / "a.txt").write_text("A document.\n", encoding="utf-8")
    monkeypatch.setenv("NEWSFLOW_QUEUE_URL", f"redis://127.0.0.1:{closed_port()}/0")
    result = CliRunner().invoke(app, ["enqueue", str(tmp_path / "a.txt"), "https://a.example/"])
    assert (
        result.exit_code == 3
        and "intake queue is unavailable" in result.output
        and "nothing was published" in result.output
    )


def test_enqueue_prints_ids_and_names_what_it_could_not_send(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stream: str
) -> None:
    from typer.testing import CliRunner

    from pipeline.cli import app

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("A document.\n", encoding="utf-8")
    (tmp_path / "docs" / "b.html").write_text(article(), encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    monkeypatch.setenv("NEWSFLOW_QUEUE_URL", REDIS_URL)
    monkeypatch.setenv("NEWSFLOW_QUEUE_STREAM", stream)
    inputs = [str(tmp_path / "docs"), "https://a.example/x", str(tmp_path / "empty.txt")]
    result = CliRunner().invoke(app, ["enqueue", *inputs, "--origin", "laptop"])
    assert result.exit_code == 1, result.output
    assert (
        "not published" in result.output and "empty.txt" in result.output and "published 3 message(s)" in result.output
    )
    entries = redis.Redis.from_url(REDIS_URL).xrange(stream)
    assert [broker.parse(fields).source for _, fields in entries] == [
        str((tmp_path / "docs" / "a.txt").resolve()), str((tmp_path / "docs" / "b.html").resolve()),
        "https://a.example/x"]  # fmt: skip
    assert {broker.parse(fields).origin for _, fields in entries} == {"laptop"}
    assert all(ident.decode() in result.output for ident, _ in entries)


@pytest.mark.postgres
def test_a_drain_with_redis_down_stops_at_the_queue_stage_having_taken_nothing(
    fetch_settings: Settings, engine: sa.Engine
) -> None:
    from pipeline.tasks import drain_queue as task

    down = replace(fetch_settings, queue_url=f"redis://127.0.0.1:{closed_port()}/0")
    with pytest.raises(QueueUnavailableError, match="intake queue is unavailable") as caught:
        task(down)
    assert caught.value.stage == "queue"
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM ingest_runs WHERE status = 'running'")) == 0
        assert conn.scalar(sa.text("SELECT count(*) FROM intake_messages")) == 0


@pytest.mark.postgres
def test_a_message_reclaimed_while_its_first_drain_still_works_is_staged_once(
    queue_settings: Settings, engine: sa.Engine, stream: str
) -> None:
    """A drain whose batch outlasts the claim time (slow pages) has its messages reclaimed by another drain.
    Before, both fetched and staged the page: a page that changed between the two fetches was staged twice, so
    processed twice. The ledger row is now written first, in the staging transaction: the second is skipped."""
    served: list[int] = []
    server = HTTPServer(threaded=True)
    server.expect_request("/robots.txt").respond_with_data("", status=404)

    def story(_request: Any) -> Any:
        served.append(number := len(served) + 1)
        if number == 1:  # the first drain is still fetching when the second reclaims its message
            second = threading.Thread(target=drain_and_process)
            second.start()
            second.join(60)
        return Response(article(extra=f"Version {number} of the story. "), content_type="text/html")

    def drain_and_process() -> None:  # news_process takes what the second drain staged meanwhile
        drain_queue(eager, engine, broker.connect(REDIS_URL))
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE raw_documents SET processed_at = now()"))

    server.expect_request("/story").respond_with_handler(story)
    server.start()
    try:
        eager = replace(queue_settings, queue_claim_seconds=0)
        enqueue(queue_settings, [server.url_for("/story")], origin="test")
        first = drain_queue(queue_settings, engine, broker.connect(REDIS_URL))
    finally:
        server.clear()
        server.stop()
    assert len(served) == 2 and first.summary.staged == 0  # both drains fetched it (the claim had expired)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM raw_documents")) == 1  # processed once
    assert counts(engine, stream)["ledger"] == {"staged": 1} and stream_state(stream) == (0, 0)
