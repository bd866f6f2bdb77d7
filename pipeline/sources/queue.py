"""The durable intake queue: a Redis Stream read through a consumer group.

Producers ``publish`` messages (a URL to fetch, or a document's bytes) with XADD; they wait in the stream while
nobody reads it. A drain reads new messages with XREADGROUP, reclaims with XAUTOCLAIM those a drain that died
took and never acknowledged (idle longer than the claim time), and acknowledges each (XACK, then XDEL so the
stream holds only the backlog) once its outcome is stored. ``backlog`` and ``should_wake`` are what the event
trigger polls. Redis errors are translated here: ``QueueUnavailableError`` (systemic, stage ``queue``) when
Redis cannot be used; a message that cannot be read is a ``MalformedMessageError`` for that message alone.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import redis
from redis.exceptions import RedisError, ResponseError

from pipeline.errors import QueueUnavailableError, SourceError
from pipeline.metadata import MetadataLimitError, metadata_strings

VERSION = b"1"
MAX_MESSAGE_BYTES = 10 * 1024 * 1024  # the same default as NEWSFLOW_FETCH_MAX_BYTES
MAX_TEXT_CHARS = 8192  # a URL, a name or an origin
DOCUMENT_MEDIA_TYPES = ("text/plain", "text/markdown", "text/html")  # what a document message may say it is
SOCKET_SECONDS = 10.0
T = TypeVar("T")


class MalformedMessageError(SourceError):
    """A message in the stream that is not one Newsflow can take: its error row, and it is acknowledged."""

    default_stage = "queue"


@dataclass(frozen=True)
class IntakeMessage:
    """One thing to ingest: a URL to fetch (``kind="url"``), or a document's bytes under its name (``kind=
    "document"``: the name gives the format, ``.txt``, ``.md``, ``.html``); ``origin`` says who published it."""

    kind: Literal["url", "document"]
    origin: str
    url: str | None = None
    name: str | None = None
    content: bytes | None = field(default=None, repr=False)
    metadata: Mapping[str, str] = field(default_factory=dict)  # a document's sidecar (title, author, published…)
    media_type: str | None = None  # a document's format when its name has no known extension (a feed's entry)

    @classmethod
    def for_url(cls, url: str, *, origin: str) -> IntakeMessage:
        return cls("url", origin, url=url)

    @classmethod
    def for_document(
        cls, name: str, content: bytes, *, origin: str, metadata: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> IntakeMessage:
        return cls("document", origin, name=name, content=content, metadata=dict(metadata or {}),
                   media_type=media_type)  # fmt: skip

    @property
    def source(self) -> str:
        """What the document is ingested as: the URL, or the document's name."""
        return (self.url if self.kind == "url" else self.name) or ""

    def fields(self) -> dict[bytes, bytes]:
        """The stream entry's fields."""
        found = {b"v": VERSION, b"kind": self.kind.encode(), b"origin": self.origin.encode("utf-8", "replace")}
        if self.kind == "url":
            return {**found, b"url": (self.url or "").encode("utf-8", "replace")}
        meta = json.dumps(dict(self.metadata)).encode()  # ASCII: a lone surrogate is sent escaped (parse cleans it)
        typed = {b"media_type": self.media_type.encode("utf-8", "replace")} if self.media_type else {}
        return {**found, b"name": (self.name or "").encode("utf-8", "replace"), b"content": self.content or b"",
                b"metadata": meta, **typed}  # fmt: skip


def entry_size(fields: Mapping[bytes, bytes]) -> int:
    return sum(len(key) + len(value) for key, value in fields.items())


def parse(fields: Mapping[bytes, bytes], *, max_bytes: int = MAX_MESSAGE_BYTES) -> IntakeMessage:
    """The message a stream entry holds; ``MalformedMessageError`` saying why when it holds none."""
    if (size := entry_size(fields)) > max_bytes:
        raise MalformedMessageError(f"message is {size:,} bytes, over the {max_bytes:,}-byte limit")
    if fields.get(b"v") != VERSION:
        raise MalformedMessageError(f"unknown message version {_shown(fields.get(b'v'))}")
    kind, origin = fields.get(b"kind"), _text(fields, b"origin", required=False)
    if kind == b"url":
        return _checked(IntakeMessage.for_url(_text(fields, b"url"), origin=origin))
    if kind == b"document":
        content, media_type = fields.get(b"content") or b"", _text(fields, b"media_type", required=False) or None
        return _checked(IntakeMessage.for_document(_text(fields, b"name"), content, origin=origin,
                                                   metadata=_metadata(fields.get(b"metadata") or b"{}"),
                                                   media_type=media_type))  # fmt: skip
    raise MalformedMessageError(f"unknown message kind {_shown(kind)} (expected url or document)")


def _checked(message: IntakeMessage) -> IntakeMessage:
    """``message`` when it can be taken: a URL is http(s) with a host, a document has a name and bytes."""
    if message.kind == "url":
        url = message.url or ""
        if not url.lower().startswith(("http://", "https://")) or len(url.split("/")) < 3 or not url.split("/")[2]:
            raise MalformedMessageError(f"not an http(s) URL with a host: {_shown(url.encode())}")
        if any(ch.isspace() or ord(ch) < 32 for ch in url):
            raise MalformedMessageError(f"URL has a space or control character: {_shown(url.encode())}")
    elif not (message.content or b"").strip():
        raise MalformedMessageError("empty document")
    elif message.media_type not in (None, *DOCUMENT_MEDIA_TYPES):
        raise MalformedMessageError(f"unsupported media type {_shown(message.media_type.encode())}")
    return message


def _text(fields: Mapping[bytes, bytes], key: bytes, *, required: bool = True) -> str:
    value = fields.get(key)
    if value is None or (required and not value.strip()):
        if required:
            raise MalformedMessageError(f"message has no {key.decode()}")
        return ""
    if len(value) > MAX_TEXT_CHARS:
        raise MalformedMessageError(f"message's {key.decode()} is over {MAX_TEXT_CHARS:,} bytes")
    try:
        return value.decode("utf-8").strip()
    except UnicodeDecodeError as error:
        raise MalformedMessageError(f"message's {key.decode()} is not UTF-8: {_shown(value)}") from error


def _metadata(raw: bytes) -> dict[str, str]:
    try:
        loaded = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise MalformedMessageError(f"message's metadata is not JSON: {error}") from error
    if not isinstance(loaded, dict):
        raise MalformedMessageError("message's metadata is not a JSON object")
    try:  # as a sidecar's: lower-case keys, scalars (lists joined), no NUL or lone surrogate, at most 64 KiB
        return metadata_strings(loaded)
    except MetadataLimitError as error:
        raise MalformedMessageError(f"message's metadata: {error}") from error


def _shown(value: bytes | None) -> str:
    return "none" if value is None else repr(value[:80].decode("utf-8", "backslashreplace"))


@dataclass(frozen=True)
class Delivered:
    """A stream entry read for this drain: its id, and its message or why it has none."""

    message_id: str
    message: IntakeMessage | None
    error: str | None = None


@dataclass(frozen=True)
class Queue:
    """A connection to the Redis holding the stream."""

    client: redis.Redis


@dataclass(frozen=True)
class Reader:
    """Who reads: the stream, the consumer group, this drain's consumer name, and the largest message taken."""

    stream: str
    group: str
    consumer: str = field(default_factory=lambda: consumer_name())
    max_bytes: int = MAX_MESSAGE_BYTES


def consumer_name() -> str:
    """A name no other drain has: host, process and a random token."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Redis errors as ``QueueUnavailableError`` (systemic: nothing was taken or acknowledged)."""
    try:
        yield
    except RedisError as error:
        reason = f"{type(error).__name__}: {error}"
        raise QueueUnavailableError(f"the intake queue is unavailable ({what}): {reason}") from error


def _call(what: str, work: Callable[[], T]) -> T:
    with redis_errors(what):
        return work()


def connect(queue_url: str) -> Queue:
    """A client for ``queue_url`` (``redis://`` or ``rediss://``); it connects on first use."""
    try:
        client = redis.Redis.from_url(queue_url, socket_timeout=SOCKET_SECONDS, socket_connect_timeout=SOCKET_SECONDS)
    except ValueError as error:
        raise QueueUnavailableError(f"NEWSFLOW_QUEUE_URL is not a Redis URL: {error}") from error
    return Queue(client)


def publish(
    queue: Queue, stream: str, messages: list[IntakeMessage], *, max_bytes: int = MAX_MESSAGE_BYTES
) -> list[str]:
    """Add the messages to the stream, all or none (one MULTI); their ids, in order. A message over
    ``max_bytes`` (or one a drain would refuse) is refused here with ``MalformedMessageError``."""
    entries = [message.fields() for message in messages]
    for fields in entries:
        parse(fields, max_bytes=max_bytes)  # refused at the producer, before anything is sent
    pipe = queue.client.pipeline(transaction=True)
    for fields in entries:
        pipe.xadd(stream, fields)  # type: ignore[arg-type]
    return [_id(ident) for ident in _call("publishing", pipe.execute)]


def ensure_group(queue: Queue, reader: Reader) -> None:
    """Create the consumer group (and the stream) when missing, reading from the stream's start."""
    try:
        _call("creating the group", lambda: queue.client.xgroup_create(reader.stream, reader.group, "0", mkstream=True))
    except QueueUnavailableError as error:
        if not (isinstance(error.__cause__, ResponseError) and "BUSYGROUP" in str(error.__cause__)):
            raise


def read_new(queue: Queue, reader: Reader, *, count: int) -> list[Delivered]:
    """Up to ``count`` messages never delivered to the group, now this consumer's (XREADGROUP >)."""
    with redis_errors("reading"):
        found: Any = queue.client.xreadgroup(reader.group, reader.consumer, {reader.stream: ">"}, count=count)
    return [_delivered(ident, fields, reader) for _stream, entries in found or [] for ident, fields in entries]


def reclaim(queue: Queue, reader: Reader, *, idle_seconds: float, count: int) -> tuple[list[Delivered], list[str]]:
    """Messages another consumer took and left unacknowledged for ``idle_seconds`` (XAUTOCLAIM), now this
    consumer's, up to ``count``; and the ids of such messages deleted from the stream meanwhile."""
    idle_ms = int(idle_seconds * 1000)
    start, taken, gone = "0-0", list[Delivered](), list[str]()
    while len(taken) < count:
        with redis_errors("reclaiming"):
            answer: Any = queue.client.xautoclaim(
                reader.stream, reader.group, reader.consumer, idle_ms, start_id=start, count=count - len(taken)
            )
        start = _id(answer[0])
        taken += [_delivered(ident, fields, reader) for ident, fields in answer[1] if fields is not None]
        gone += [_id(ident) for ident in (answer[2] if len(answer) > 2 else [])]
        if start == "0-0":
            break
    return taken, gone


def ack(queue: Queue, reader: Reader, message_ids: list[str]) -> int:
    """Acknowledge the messages and delete them from the stream (their outcome is stored); how many were
    acknowledged now (0 for one acknowledged before)."""
    if not message_ids:
        return 0
    pipe = queue.client.pipeline(transaction=True)
    pipe.xack(reader.stream, reader.group, *message_ids)
    pipe.xdel(reader.stream, *message_ids)
    return int(_call("acknowledging", pipe.execute)[0])


def forget_idle_consumers(queue: Queue, reader: Reader, *, idle_seconds: float) -> int:
    """Remove consumers (dead drains) holding no message and idle longer than ``idle_seconds``; how many."""
    with redis_errors("removing idle consumers"):
        consumers: Any = queue.client.xinfo_consumers(reader.stream, reader.group)
        idle = [_text_of(c["name"]) for c in consumers if not c["pending"] and c["idle"] > idle_seconds * 1000]
        for name in idle:
            queue.client.xgroup_delconsumer(reader.stream, reader.group, name)
    return len(idle)


def _delivered(ident: Any, fields: Mapping[bytes, bytes], reader: Reader) -> Delivered:
    try:
        return Delivered(_id(ident), parse(fields, max_bytes=reader.max_bytes))
    except MalformedMessageError as error:
        return Delivered(_id(ident), None, str(error))


def _id(ident: Any) -> str:
    return _text_of(ident)


def _text_of(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Backlog:
    """What waits for the group: messages delivered and not acknowledged (``pending``), messages not delivered
    yet (``waiting``), and the stream's newest id (a change means new messages arrived)."""

    pending: int
    waiting: int
    last_id: str

    @property
    def total(self) -> int:
        return self.pending + self.waiting


def backlog(queue: Queue, stream: str, group: str) -> Backlog:
    """The group's backlog; a missing stream has none, and a missing group is behind by the whole stream."""
    try:
        info: Any = _call("reading the backlog", lambda: queue.client.xinfo_stream(stream))
    except QueueUnavailableError as error:
        if isinstance(error.__cause__, ResponseError) and "no such key" in str(error.__cause__).lower():
            return Backlog(0, 0, "")
        raise
    last_id = _id(info["last-generated-id"])
    groups: Any = _call("reading the backlog", lambda: queue.client.xinfo_groups(stream))
    mine = next((g for g in groups if _text_of(g["name"]) == group), None)
    if mine is None:
        return Backlog(0, int(info["length"]), last_id)
    lag = mine.get("lag")
    waiting = int(lag) if lag is not None else int(_id(mine["last-delivered-id"]) != last_id)
    return Backlog(int(mine["pending"]), waiting, last_id)


def should_wake(now: Backlog, fired: Backlog | None, *, since_fired: float, refire_seconds: float) -> bool:
    """Whether the trigger fires: there is a backlog, and it has not fired on it yet, or new messages came
    since it did, or the backlog has stayed ``refire_seconds`` (a drain that ran out of time, or failed)."""
    if now.total == 0:
        return False
    if fired is None or now.last_id != fired.last_id:
        return True
    return since_fired >= refire_seconds
