"""The database: every SQL statement Newsflow sends lives in this package."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from pipeline.db.engine import check_connection, create_engine, database_url
from pipeline.db.migrations import Waits, apply_migrations
from pipeline.settings import Settings


def open_database(settings: Settings) -> tuple[Engine, list[str]]:
    """An engine on the configured (or embedded) database with every migration applied, and the ids of those
    applied now; ``DatabaseUnavailableError`` when it cannot be reached."""
    url = database_url(settings)
    engine = create_engine(url, statement_seconds=settings.db_statement_seconds)
    check_connection(engine)
    return engine, apply_migrations(url, settings.sql_dir, waits=Waits(reconnect=settings.db_reconnect_seconds))
