"""Docs tests: every CLI command and analyst view is documented, and every documented query runs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer.main

from pipeline.cli import app
from pipeline.db import raw_store
from pipeline.ingest import ingest
from pipeline.ingest.staged import process_pending
from pipeline.models import RawDocument
from pipeline.settings import Settings

from .conftest import ROOT, SEED

QUERYING = ROOT / "docs" / "querying.md"


def cli_commands() -> list[str]:
    group = typer.main.get_command(app)
    names = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(command, "commands", None)
        names.extend(f"{name} {child}" for child in sub) if sub else names.append(name)
    return names


def documented_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])


@pytest.mark.parametrize("command", cli_commands())
def test_cli_command_is_documented(command: str) -> None:
    assert f"newsflow {command}" in documented_text()


def view_names() -> list[str]:
    sql = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "sql").glob("*.sql")))
    return sorted(set(re.findall(r"CREATE (?:OR REPLACE )?VIEW (\w+)", sql)))


@pytest.mark.parametrize("view", view_names())
def test_view_is_documented_and_commented(view: str) -> None:
    assert f"`{view}`" in QUERYING.read_text(encoding="utf-8")
    sql = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "sql").glob("*.sql")))
    assert f"COMMENT ON VIEW {view} IS" in sql


def documented_queries() -> list[str]:
    """The SQL blocks of the example-queries section (the administration examples above it need a superuser)."""
    examples = QUERYING.read_text(encoding="utf-8").split("## Ten example queries", 1)[1]
    return re.findall(r"```sql\n(.*?)```", examples, flags=re.S)


def test_there_are_ten_example_queries() -> None:
    assert len(documented_queries()) >= 10


@pytest.mark.postgres
def test_every_documented_query_runs_on_the_seed(db_settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    shutil.copy(SEED, tmp_path / SEED.name)
    shutil.copy(SEED.with_name(SEED.name + ".meta.yaml"), tmp_path / (SEED.name + ".meta.yaml"))
    ingest(db_settings, engine, [str(tmp_path / SEED.name)])
    (tmp_path / "empty.txt").write_text("")
    ingest(db_settings, engine, [str(tmp_path / "empty.txt")])
    staged = raw_store.stage(engine, RawDocument("https://example.com/crasher", b"<p>x</p>", "text/html"), run_id=1)
    with engine.begin() as conn:  # as if three processes had died on it
        conn.execute(sa.text("UPDATE raw_documents SET attempts = 3 WHERE id = :id"), {"id": staged})
    process_pending(db_settings, engine)
    with engine.connect() as conn:
        for query in documented_queries():
            rows = conn.execute(sa.text(query.replace(":", r"\:"))).all()
            assert rows, f"no rows from documented query:\n{query}"
