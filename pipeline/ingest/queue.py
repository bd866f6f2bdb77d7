"""The intake queue's two ends: ``enqueue`` (the producer behind ``newsflow enqueue``) and ``drain_queue``
(``news_events``'s ``drain_queue`` task), which stages what producers published in the raw store for ``news_process``.

A drain reclaims first what a dead drain took and never acknowledged (idle for ``NEWSFLOW_QUEUE_CLAIM_SECONDS``),
then reads new messages, a batch at a time, until the stream is empty or ``NEWSFLOW_QUEUE_DRAIN_SECONDS`` is spent
(checked before each batch). Each message's page is fetched (or its document taken) and staged with its ledger
row in one transaction; only then is the batch acknowledged. A message already in the ledger (redelivered after
a crash between that commit and the acknowledgement) is acknowledged without being fetched or staged again. A
malformed message, or one whose page cannot be fetched, is an ``ingest_errors`` row and a ledger row, and is
acknowledged: it is never tried again. A systemic error (the database or Redis lost) acknowledges nothing.
"""

from __future__ import annotations

import socket
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine

from pipeline.db import intake
from pipeline.db.intake import Taken
from pipeline.errors import SourceError
from pipeline.ingest.boundary import guarded
from pipeline.ingest.run import Input, Run, RunSummary, open_run
from pipeline.ingest.step import read
from pipeline.models import Failure, RawDocument, storable
from pipeline.settings import Settings
from pipeline.sources import expand_inputs, is_url
from pipeline.sources import queue as broker
from pipeline.sources.files import media_type_for, read_file
from pipeline.sources.queue import Delivered, IntakeMessage, MalformedMessageError, Queue, Reader


@dataclass
class QueueDrain:
    """What a drain did: its run's summary, and the messages by what became of them."""

    summary: RunSummary
    messages: Counter[str] = field(default_factory=Counter)  # taken, redelivered, malformed, acknowledged
    left: int = 0  # messages still waiting when the drain ended (its time budget spent)


def reader_for(settings: Settings) -> Reader:
    return Reader(settings.queue_stream, settings.queue_group, max_bytes=settings.fetch_max_bytes)


def drain_queue(
    settings: Settings, engine: Engine, queue: Queue, *, trigger: str = "news_events", reader: Reader | None = None
) -> QueueDrain:
    """Stage every message waiting in the stream (within the drain's time budget), acknowledging each batch
    once its outcomes are stored."""
    reader = reader or reader_for(settings)
    broker.ensure_group(queue, reader)
    deadline = settings.clock() + settings.queue_drain_seconds
    with open_run(settings, engine, trigger=trigger) as run:
        drain = QueueDrain(run.summary)
        while batch := _next_batch(queue, reader, settings, drain):
            _take_batch(run, queue, reader, batch, drain)
            if settings.clock() >= deadline:
                break
        broker.forget_idle_consumers(queue, reader, idle_seconds=max(settings.queue_claim_seconds, 3600.0))
    drain.left = broker.backlog(queue, reader.stream, reader.group).total
    return drain


def _next_batch(queue: Queue, reader: Reader, settings: Settings, drain: QueueDrain) -> list[Delivered]:
    """What a dead drain left first (its messages deleted meanwhile acknowledged), else new messages."""
    size = settings.batch_size
    reclaimed, gone = broker.reclaim(queue, reader, idle_seconds=settings.queue_claim_seconds, count=size)
    drain.messages["acknowledged"] += broker.ack(queue, reader, gone)
    drain.messages["reclaimed"] += len(reclaimed)
    return reclaimed or broker.read_new(queue, reader, count=size)


def _take_batch(run: Run, queue: Queue, reader: Reader, batch: list[Delivered], drain: QueueDrain) -> None:
    """Each message's outcome stored (those already in the ledger skipped), then the batch acknowledged."""
    engine = run.engine
    assert engine is not None
    ids = [delivered.message_id for delivered in batch]
    done = run.retrying(lambda: intake.seen(engine, reader.stream, ids))
    for delivered in batch:
        if delivered.message_id in done:
            drain.messages["redelivered"] += 1
        else:
            _take(run, reader, delivered, drain)
    drain.messages["acknowledged"] += broker.ack(queue, reader, ids)


def _take(run: Run, reader: Reader, delivered: Delivered, drain: QueueDrain) -> None:
    drain.messages["taken"] += 1
    message = delivered.message
    if message is None:
        drain.messages["malformed"] += 1
        name = f"{reader.stream}#{delivered.message_id}"
        taken = Taken(reader.stream, delivered.message_id, "malformed", name, "")
        failure = run.fail(Input(name), Failure(name, "queue", delivered.error or "malformed message"))
        _failed(run, taken, failure)
        return
    _stage(run, Taken(reader.stream, delivered.message_id, message.kind, message.source, message.origin), message)


def _stage(run: Run, taken: Taken, message: IntakeMessage) -> None:
    """Fetch the message's page (or take its document) and stage it with its ledger row."""
    engine, item = run.engine, Input(message.source)
    assert engine is not None
    raw = read(run, item) if message.kind == "url" else guarded(run, item, "queue", lambda: document_of(message))
    if isinstance(raw, Failure):
        _failed(run, taken, raw)
        return
    staged = raw
    done = guarded(run, item, "stage", lambda: intake.stage(engine, taken, staged, run_id=run.id))
    if isinstance(done, Failure):
        _failed(run, taken, done)
        return
    if done.raw_id is not None:
        run.summary.raw_documents[item.name] = done.raw_id
    run.succeed(item, "unchanged" if done.raw_id is None else "staged")  # not first: another drain staged it


def _failed(run: Run, taken: Taken, failure: Failure) -> None:
    engine = run.engine
    assert engine is not None
    reason = f"{failure.stage}: {failure.error}"
    run.retrying(lambda: intake.fail(engine, taken, reason, run_id=run.id))


def document_of(message: IntakeMessage) -> RawDocument:
    """A document message as the raw document it carries, its format named by its name."""
    name = message.name or ""
    media_type = message.media_type or media_type_for(Path(name))
    if media_type is None:
        raise MalformedMessageError(f"unsupported document name {name!r} (expected .txt, .md, .html)")
    return RawDocument(storable(name), message.content or b"", media_type, dict(message.metadata))


@dataclass
class Enqueued:
    """What ``newsflow enqueue`` published (stream ids, by input) and what it could not."""

    published: dict[str, str] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)


def default_origin() -> str:
    return f"newsflow enqueue@{socket.gethostname()}"


def enqueue(settings: Settings, values: list[str], *, origin: str | None = None) -> Enqueued:
    """Publish URLs, files and the documents under directories to the intake queue, in one transaction: each
    file read here (with its sidecar) and sent as bytes; an input that cannot be sent is a failure."""
    done, messages = Enqueued(), list[tuple[str, IntakeMessage]]()
    for value in expand_inputs(values):
        message = _message(settings, value, origin or default_origin())
        if isinstance(message, Failure):
            done.failures.append(message)
        else:
            messages.append((value, message))
    if messages:
        queue = broker.connect(settings.queue_url)
        ids = broker.publish(queue, settings.queue_stream, [m for _, m in messages], max_bytes=settings.fetch_max_bytes)
        done.published = {value: ident for (value, _), ident in zip(messages, ids, strict=True)}
    return done


def _message(settings: Settings, value: str, origin: str) -> IntakeMessage | Failure:
    try:
        if is_url(value):
            message = IntakeMessage.for_url(value, origin=origin)
        else:
            raw = read_file(Path(value), max_bytes=settings.fetch_max_bytes)
            message = IntakeMessage.for_document(raw.source, raw.body, origin=origin, metadata=raw.metadata)
        broker.parse(message.fields(), max_bytes=settings.fetch_max_bytes)
    except SourceError as error:
        return Failure(value, error.stage, str(error))
    return message
