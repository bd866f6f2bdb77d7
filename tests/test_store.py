"""Integration: migrations, ingest, idempotency and replacement against a real Postgres."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.db.engine import create_engine
from pipeline.db.migrations import apply_migrations, pending_migrations
from pipeline.ingest import ingest
from pipeline.settings import Settings

from .conftest import SEED, MakeDatabase, table_digest

pytestmark = pytest.mark.postgres
VIEWS = ["v_sections", "v_quotes", "v_entity_mentions", "v_dates", "v_quantities", "v_claims"]


def copy_seed(directory: Path) -> Path:
    target = directory / SEED.name
    shutil.copy(SEED, target)
    shutil.copy(SEED.with_name(SEED.name + ".meta.yaml"), directory / (SEED.name + ".meta.yaml"))
    return target


def test_migrations_from_empty(database_url: str, settings: Settings) -> None:
    expected = sorted(path.stem for path in settings.sql_dir.glob("*.sql"))
    assert expected[:3] == ["0001_core_schema", "0002_analyst_views", "0003_feeds"]
    assert pending_migrations(database_url, settings.sql_dir) == expected
    apply_migrations(database_url, settings.sql_dir)
    assert pending_migrations(database_url, settings.sql_dir) == []
    assert apply_migrations(database_url, settings.sql_dir) == []
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        comments = dict(
            conn.execute(
                sa.text(
                    "SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c WHERE c.relkind = 'v' "
                    "AND c.relnamespace = 'public'::regnamespace"
                )
            ).all()
        )
    engine.dispose()
    assert set(VIEWS) <= set(comments)
    assert all(comments[v] for v in VIEWS)


def test_seed_end_to_end(db_settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    summary = ingest(db_settings, engine, [str(copy_seed(tmp_path))])
    assert (summary.loaded, summary.failed, summary.sections) == (1, 0, 4)
    with engine.connect() as conn:
        headings = conn.execute(sa.text("SELECT heading FROM v_sections ORDER BY position")).scalars().all()
        quotes = dict(
            conn.execute(sa.text("SELECT speaker, count(*) FROM v_quotes WHERE kind = 'direct' GROUP BY speaker")).all()
        )
        people = set(
            conn.execute(sa.text("SELECT DISTINCT entity FROM v_entity_mentions WHERE type = 'PERSON'")).scalars()
        )
        published = conn.scalar(sa.text("SELECT published_at::date::text FROM articles"))
        raw_size = conn.scalar(sa.text("SELECT byte_size FROM raw_documents"))
    assert headings == [None, "How Did We Get Here?", "Russia’s Demands", "Ukraine’s Position"]
    assert quotes["Donald Trump"] >= 4 and quotes["Volodymyr Zelensky"] >= 2 and quotes["Marco Rubio"] >= 2
    assert people == {
        "Vladimir Putin",
        "Volodymyr Zelensky",
        "Recep Tayyip Erdogan",
        "Donald Trump",
        "Marco Rubio",
        "Dmitri Peskov",
        "JD Vance",
    }
    assert published == "2025-05-15"
    assert raw_size == SEED.stat().st_size


def test_offsets_in_the_database_point_at_the_text(db_settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    ingest(db_settings, engine, [str(copy_seed(tmp_path))])
    with engine.connect() as conn:
        mismatches = conn.scalar(
            sa.text(
                "SELECT count(*) FROM quotes q JOIN articles a ON a.id = q.article_id "
                "WHERE substr(a.text, q.start_offset + 1, q.end_offset - q.start_offset) <> q.quote"
            )
        )
        section_mismatches = conn.scalar(
            sa.text(
                "SELECT count(*) FROM sections s JOIN articles a ON a.id = s.article_id "
                "WHERE substr(a.text, s.start_offset + 1, s.end_offset - s.start_offset) <> s.body"
            )
        )
    assert (mismatches, section_mismatches) == (0, 0)


def test_reingest_changes_nothing(db_settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    seed = copy_seed(tmp_path)
    ingest(db_settings, engine, [str(seed)])
    before = table_digest(engine)
    again = ingest(db_settings, engine, [str(seed)])
    assert (again.loaded, again.replaced, again.unchanged, again.failed) == (0, 0, 1, 0)
    assert table_digest(engine) == before


def test_changed_document_replaces_its_facts(db_settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    seed = copy_seed(tmp_path)
    ingest(db_settings, engine, [str(seed)])
    seed.write_text(seed.read_text(encoding="utf-8").replace("Marco Rubio", "Marcus Rubio"), encoding="utf-8")
    summary = ingest(db_settings, engine, [str(seed)])
    assert (summary.replaced, summary.loaded) == (1, 0)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM articles")) == 1
        assert conn.scalar(sa.text("SELECT version FROM articles")) == 2
        assert conn.scalar(sa.text("SELECT count(*) FROM raw_documents")) == 2
        assert conn.scalar(sa.text("SELECT count(*) FROM sections")) == 4
        speakers = set(conn.execute(sa.text("SELECT DISTINCT speaker FROM quotes")).scalars())
    assert "Marcus Rubio" in speakers and "Marco Rubio" not in speakers


def test_bad_documents_are_recorded_and_good_ones_kept(
    db_settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "broken.html.gz").write_bytes(b"\x1f\x8b\x08garbage")
    copy_seed(tmp_path)
    summary = ingest(db_settings, engine, [str(p) for p in sorted(tmp_path.iterdir()) if "meta" not in p.name])
    assert (summary.loaded, summary.failed) == (1, 2)
    with engine.connect() as conn:
        errors = conn.execute(sa.text("SELECT stage, error FROM ingest_errors ORDER BY source")).all()
        run = conn.execute(sa.text("SELECT status, documents_failed, documents_loaded FROM ingest_runs")).one()
    assert [stage for stage, _ in errors] == ["read", "read"]
    assert any("corrupt gzip" in error for _, error in errors) and any("empty" in error for _, error in errors)
    assert tuple(run) == ("partial", 2, 1)


def test_same_content_under_another_path_is_not_duplicated(
    db_settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    ingest(db_settings, engine, [str(copy_seed(first))])
    summary = ingest(db_settings, engine, [str(copy_seed(second))])
    assert summary.unchanged == 1
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM articles")) == 1


def test_a_facts_failure_is_recorded_and_the_batch_goes_on(
    db_settings: Settings, engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pipeline.facts.batch

    real_analyse = pipeline.facts.batch.analyse

    def fragile(doc, **kwargs):  # type: ignore[no-untyped-def]
        if "TRIP" in doc.text:
            raise ValueError("rule tripped")
        return real_analyse(doc, **kwargs)

    monkeypatch.setattr(pipeline.facts.batch, "analyse", fragile)
    (tmp_path / "trip.txt").write_text("This TRIP document breaks a rule.\n")
    summary = ingest(db_settings, engine, [str(tmp_path / "trip.txt"), str(copy_seed(tmp_path))])
    assert (summary.loaded, summary.failed) == (1, 1)
    assert summary.failures[0].stage == "facts" and "rule tripped" in summary.failures[0].error


def test_an_entitys_name_does_not_depend_on_the_order_articles_arrive_in(
    make_database: MakeDatabase, settings: Settings, tmp_path: Path
) -> None:
    """Two spellings of one entity (the same key): whichever article comes first, the stored name is the same
    (a retried batch, or another worker's, may land in either order)."""
    spellings = {"a.txt": "Marta Kowalczyk", "b.txt": "MÁRTA KOWALCZYK", "c.txt": "Márta Kowalczyk"}
    for name, spelling in spellings.items():
        (tmp_path / name).write_text(
            f"Port reopens\n\n{spelling}, the mayor of Gdansk, said on Monday that the port would reopen. "
            f"{spelling} added that ferries would run again within a week.\n",
            encoding="utf-8",
        )
    names = []
    for order in (["a.txt", "b.txt", "c.txt"], ["c.txt", "b.txt", "a.txt"], ["b.txt", "c.txt", "a.txt"]):
        url = make_database()
        engine = create_engine(url)
        ingest(replace(settings, database_url=url), engine, [str(tmp_path / name) for name in order])
        with engine.connect() as conn:
            names.append(conn.execute(sa.text("SELECT name FROM entities WHERE key = 'marta kowalczyk'")).scalar())
        engine.dispose()
    assert names == ["Marta Kowalczyk"] * 3
