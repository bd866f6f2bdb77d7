"""Parallel ingestion gives the same rows as one process, in one run."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.ingest import ingest
from pipeline.ingest.parallel import ingest_parallel
from pipeline.settings import Settings

from .conftest import SEED, table_digest

GOLD_DOCS = sorted((Path(__file__).parent / "gold" / "docs").glob("00[1-6]*"))
pytestmark = pytest.mark.postgres


def test_two_workers_load_what_one_process_loads(db_settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    inputs = [str(SEED), *map(str, GOLD_DOCS), str(tmp_path / "missing.txt")]
    summary = ingest_parallel(db_settings, engine, inputs, workers=2)
    assert (summary.seen, summary.loaded, summary.failed) == (8, 7, 1)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(DISTINCT ingest_run_id) FROM articles")) == 1
        assert conn.scalar(sa.text("SELECT status FROM ingest_runs")) == "partial"
    parallel = table_digest(engine)
    again = ingest(db_settings, engine, inputs)
    assert (again.unchanged, again.loaded) == (7, 0)
    assert table_digest(engine) == parallel
