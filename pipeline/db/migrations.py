"""Schema migrations: the numbered plain-SQL files in ``sql/``, applied by yoyo.

yoyo records applied migrations in ``_yoyo_migration`` and holds a lock table
while it works, so concurrent ``migrate`` calls are safe.
"""

from __future__ import annotations

from pathlib import Path

from yoyo import get_backend, read_migrations

from pipeline.db.engine import libpq_url


def pending_migrations(url: str, sql_dir: Path) -> list[str]:
    """Ids of the migrations not yet applied to this database."""
    backend = get_backend(libpq_url(url))
    try:
        return [m.id for m in backend.to_apply(read_migrations(str(sql_dir)))]
    finally:
        backend.connection.close()


def apply_migrations(url: str, sql_dir: Path) -> list[str]:
    """Apply every pending migration in order; return the ids applied."""
    backend = get_backend(libpq_url(url))
    try:
        with backend.lock():
            to_apply = backend.to_apply(read_migrations(str(sql_dir)))
            backend.apply_migrations(to_apply)
        return [m.id for m in to_apply]
    finally:
        backend.connection.close()
