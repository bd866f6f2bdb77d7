"""Integration: the batch loader against a real Postgres (atomicity, isolation of bad documents, retries)."""

from __future__ import annotations

import base64
import dataclasses
import random
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.db import loader as loading
from pipeline.db.digest import content_digest
from pipeline.db.engine import create_engine
from pipeline.db.loader import LoadFailure, LoadItem, LoadOptions, LoadResult, load_documents
from pipeline.ingest import extract_documents
from pipeline.models import Document, RawDocument
from pipeline.settings import Settings
from pipeline.sources.files import read_file

from .conftest import BENCHMARK, SEED, MakeDatabase

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def items(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> list[LoadItem]:
    """The seed and two benchmark pages, processed, ready to load."""
    folder = tmp_path_factory.mktemp("load")
    shutil.copy(SEED, folder / SEED.name)
    shutil.copy(SEED.with_name(SEED.name + ".meta.yaml"), folder / (SEED.name + ".meta.yaml"))
    for page in sorted((BENCHMARK / "html").glob("*.html.gz"))[:2]:
        shutil.copy(page, folder / page.name)
    paths = sorted(str(p) for p in folder.iterdir() if not p.name.endswith(".yaml"))
    documents = list(extract_documents(settings, paths))
    assert all(isinstance(d, Document) for d in documents)
    return [LoadItem(read_file(Path(p)), d) for p, d in zip(paths, documents, strict=True)]  # type: ignore[arg-type]


def options(engine: sa.Engine, *, force: bool = False) -> LoadOptions:
    with engine.begin() as conn:
        run_id = conn.scalar(sa.text("INSERT INTO ingest_runs DEFAULT VALUES RETURNING id"))
    return LoadOptions(run_id=int(run_id), extractor_version="test", force=force)


def with_text(item: LoadItem, text: str) -> LoadItem:
    """The same document under the same source with another text (a new version)."""
    raw = dataclasses.replace(item.raw, body=item.raw.body + b"\n<!-- v2 -->")
    return LoadItem(raw, dataclasses.replace(item.document, text=text))


def count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)


def test_a_batch_loads_every_document_with_its_facts(engine: sa.Engine, items: list[LoadItem]) -> None:
    results = load_documents(engine, items, options(engine))
    assert [r.status for r in results if isinstance(r, LoadResult)] == ["loaded"] * 3
    assert count(engine, "articles") == 3
    assert count(engine, "sections") == sum(len(i.document.sections) for i in items)
    mentions = sum(len(e.mentions) for i in items for e in i.document.facts.entities)
    assert 0 < count(engine, "entity_mentions") <= mentions
    again = load_documents(engine, items, options(engine))
    assert [r.status for r in again if isinstance(r, LoadResult)] == ["unchanged"] * 3


def test_a_document_the_database_refuses_fails_alone(engine: sa.Engine, items: list[LoadItem]) -> None:
    poisoned = LoadItem(
        RawDocument("poisoned.txt", b"title\x00body", "text/plain"),
        dataclasses.replace(items[0].document, source="poisoned.txt", title="NUL \x00 in the title"),
    )
    results = load_documents(engine, [items[1], poisoned, items[2]], options(engine))
    assert isinstance(results[0], LoadResult) and isinstance(results[2], LoadResult)
    assert isinstance(results[1], LoadFailure) and "NUL" in results[1].error
    with engine.connect() as conn:
        sources = conn.execute(sa.text("SELECT source FROM articles ORDER BY source")).scalars().all()
        raw_sources = conn.execute(sa.text("SELECT source FROM raw_documents")).scalars().all()
    assert sorted(sources) == sorted([items[1].raw.source, items[2].raw.source])
    assert "poisoned.txt" not in raw_sources


def test_changed_and_unchanged_documents_in_one_batch(engine: sa.Engine, items: list[LoadItem]) -> None:
    load_documents(engine, items, options(engine))
    first = items[0].document
    changed = with_text(items[0], first.text[: first.sections[-1].end])
    results = load_documents(engine, [changed, items[1]], options(engine))
    assert [r.status for r in results if isinstance(r, LoadResult)] == ["replaced", "unchanged"]
    with engine.connect() as conn:
        version = conn.scalar(sa.text("SELECT version FROM articles WHERE source = :s"), {"s": changed.raw.source})
    assert version == 2
    assert count(engine, "articles") == 3


def test_the_same_source_twice_in_one_batch_is_loaded_in_order(engine: sa.Engine, items: list[LoadItem]) -> None:
    changed = with_text(items[0], items[0].document.text)
    results = load_documents(engine, [items[0], changed], options(engine))
    assert [r.status for r in results if isinstance(r, LoadResult)] == ["loaded", "replaced"]
    assert count(engine, "articles") == 1


@pytest.mark.parametrize("where", ["_insert_facts", "copy_rows"])
def test_a_dropped_connection_mid_load_is_rolled_back_and_retried(
    engine: sa.Engine,
    items: list[LoadItem],
    monkeypatch: pytest.MonkeyPatch,
    make_database: MakeDatabase,
    where: str,
) -> None:
    """The backend is terminated (pg_terminate_backend) mid-transaction: before a statement SQLAlchemy sends
    (``_insert_facts``) or before a COPY on the driver's own cursor (``copy_rows``)."""
    real = getattr(loading, where)
    killed: list[int] = []
    attempts: list[int] = []

    def terminate_then_continue(conn: sa.Connection, *args: object) -> None:
        if not killed:
            pid = int(conn.scalar(sa.text("SELECT pg_backend_pid()")) or 0)
            killed.append(pid)
            with engine.connect() as other:
                other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        real(conn, *args)

    write_batch = loading._write_batch
    monkeypatch.setattr(loading, where, terminate_then_continue)
    monkeypatch.setattr(loading, "_write_batch", lambda *a: attempts.append(1) or write_batch(*a))
    results = load_documents(engine, items, options(engine))
    assert killed and len(attempts) == 2, "one killed attempt, one retry of the whole batch"
    assert all(isinstance(r, LoadResult) and r.status == "loaded" for r in results)
    monkeypatch.undo()
    clean = create_engine(make_database())
    load_documents(clean, items, options(clean))
    assert content_digest(engine) == content_digest(clean)
    clean.dispose()


def test_a_server_side_refusal_fails_that_document_alone(engine: sa.Engine, items: list[LoadItem]) -> None:
    """A source over the btree index row limit: SQLSTATE 54000, which psycopg2 files under OperationalError,
    yet the data's fault and not worth a retry."""
    noise = base64.urlsafe_b64encode(random.Random(1).randbytes(8_000)).decode()  # incompressible
    long_source = "https://example.com/" + noise
    oversized = LoadItem(dataclasses.replace(items[1].raw, source=long_source), items[1].document)
    results = load_documents(engine, [items[0], oversized, items[2]], options(engine))
    assert isinstance(results[0], LoadResult) and isinstance(results[2], LoadResult)
    assert isinstance(results[1], LoadFailure) and "index row" in results[1].error
    assert count(engine, "articles") == 2


def test_copy_escapes_backslashes_tabs_and_newlines(engine: sa.Engine, items: list[LoadItem]) -> None:
    tricky = "Back\\slash \\N, tab\tand\r\nnewline"
    document = items[0].document
    section = dataclasses.replace(document.sections[0], heading=tricky)
    item = LoadItem(items[0].raw, dataclasses.replace(document, sections=(section, *document.sections[1:])))
    load_documents(engine, [item], options(engine))
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT heading FROM sections WHERE position = 0")) == tricky


def test_an_unreachable_database_raises_instead_of_failing_documents(items: list[LoadItem]) -> None:
    engine = create_engine("postgresql://postgres@127.0.0.1:9/nowhere")
    with pytest.raises(sa.exc.OperationalError):
        load_documents(engine, items[:1], LoadOptions(run_id=1, extractor_version="test"))
