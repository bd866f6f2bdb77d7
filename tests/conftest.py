"""Shared fixtures: a real Postgres per test, the spaCy model once, the shared material.

Postgres is the server in NEWSFLOW_TEST_DATABASE_URL when set (``.ci/run`` sets
it when 127.0.0.1:5432 answers), else an embedded server under
``.newsflow/test-pgdata``. Each test that asks for ``database_url`` gets a
fresh database of its own, dropped afterwards.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pipeline.db.engine import create_engine, embedded_database_url, normalise_url
from pipeline.db.migrations import apply_migrations
from pipeline.facts.model import load_model
from pipeline.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SEED = ROOT / "seeds" / "000_1bc6a02370071b09.txt"
GOLD = SHARED / "gold" / "000_1bc6a02370071b09.json"
BENCHMARK = SHARED / "data" / "article-extraction-benchmark"


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env({"NEWSFLOW_HOME": str(ROOT)})


@pytest.fixture(scope="session")
def nlp(settings: Settings) -> Any:
    return load_model(settings.spacy_model)


@pytest.fixture(scope="session")
def gold() -> dict[str, Any]:
    return json.loads(GOLD.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def server_admin_url() -> str:
    configured = os.environ.get("NEWSFLOW_TEST_DATABASE_URL")
    if configured:
        return normalise_url(configured)
    return embedded_database_url(ROOT / ".newsflow" / "test-pgdata")


MakeDatabase = Callable[..., str]


@pytest.fixture
def make_database(server_admin_url: str, settings: Settings) -> Iterator[MakeDatabase]:
    """Fresh migrated databases on the test server, as many as a test asks for, dropped afterwards."""
    names: list[str] = []
    admin = sa.create_engine(server_admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)

    def make(*, migrated: bool = True) -> str:
        names.append(f"newsflow_test_{uuid.uuid4().hex[:12]}")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{names[-1]}"'))
        url = make_url(server_admin_url).set(database=names[-1]).render_as_string(hide_password=False)
        if migrated:
            apply_migrations(url, settings.sql_dir)
        return url

    try:
        yield make
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def database_url(make_database: Callable[..., str]) -> str:
    """A fresh, empty database on the test server, dropped after the test."""
    return make_database(migrated=False)


@pytest.fixture
def migrated_url(database_url: str, settings: Settings) -> str:
    apply_migrations(database_url, settings.sql_dir)
    return database_url


@pytest.fixture
def engine(migrated_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_settings(settings: Settings, migrated_url: str) -> Settings:
    return replace(settings, database_url=migrated_url)


@pytest.fixture
def fetch_settings(db_settings: Settings) -> Settings:
    """A database, and fetches that may reach 127.0.0.1 at once and give up after one attempt."""
    return replace(db_settings, allow_private_hosts=True, fetch_host_interval=0.0, fetch_attempts=1)


def table_digest(engine: sa.Engine) -> dict[str, str]:
    """An md5 of every table's full contents (ids and timestamps of runs excluded)."""
    tables = [
        "raw_documents",
        "articles",
        "sections",
        "entities",
        "entity_mentions",
        "quotes",
        "dates",
        "quantities",
        "claims",
    ]
    digests = {}
    with engine.connect() as conn:
        for table in tables:
            row = conn.execute(
                sa.text(
                    f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM "
                    f"(SELECT * FROM {table}) AS t"
                )
            ).scalar_one()
            digests[table] = row
    return digests
