"""The work behind each Airflow task, as plain functions that return the counts an asset event carries.

The DAG files in ``dags/`` are thin shells: they find the database URL (the
``newsflow_db`` connection, else ``NEWSFLOW_DATABASE_URL``, else the embedded
server), call one of these, and publish what it returns. A document-level
failure is recorded and counted here; a systemic one raises ``SystemicError``
so that Airflow fails the task and retries it.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from pipeline.database import DatabaseUnavailableError, check_connection, create_engine, database_url
from pipeline.feeding import ingest_feeds
from pipeline.fetch.feeds import read_feed_list
from pipeline.ingest import IngestSummary, ingest
from pipeline.migrate import apply_migrations
from pipeline.settings import Settings
from pipeline.sources import SIDECAR_SUFFIX
from pipeline.stages import process_pending, reprocess

FEEDS_PER_TASK = 10
URL_LIST_SUFFIX = ".urls"
DOORBELL = ".ring"
log = logging.getLogger(__name__)


class SystemicError(RuntimeError):
    """Something no single document explains: the database is unreachable, or every fetch failed."""


def settings_for(connection_url: Callable[[], str]) -> Settings:
    """The settings from the environment, with the Airflow connection's URL when the lookup finds one.

    ``connection_url`` is the DAG's lookup of the ``newsflow_db`` connection; any error it raises
    (the connection is not set) means: use ``NEWSFLOW_DATABASE_URL``, else the embedded server."""
    settings = Settings.from_env()
    try:
        url = connection_url()
    except Exception:  # noqa: BLE001 - Airflow's "connection not found" type is not ours to import
        log.info("no Airflow connection newsflow_db: using NEWSFLOW_DATABASE_URL or the embedded server")
        return settings
    return replace(settings, database_url=url)


def inbox_path(settings: Settings) -> Path:
    """The watched inbox: ``NEWSFLOW_INBOX``, else ``inbox/`` in the data directory."""
    return settings.inbox_dir


def ready_engine(settings: Settings) -> Engine:
    """An engine on a migrated database, or ``SystemicError`` when it cannot be reached."""
    url = database_url(settings)
    engine = create_engine(url)
    try:
        check_connection(engine)
    except DatabaseUnavailableError as error:
        raise SystemicError(str(error)) from error
    apply_migrations(url, settings.sql_dir)
    return engine


def feed_batches(settings: Settings, *, size: int = FEEDS_PER_TASK) -> list[list[str]]:
    """The configured feeds in batches, one mapped task each."""
    feeds = read_feed_list(settings.feeds_path or settings.seeds_dir / "feeds.yaml")
    return [feeds[start : start + size] for start in range(0, len(feeds), size)]


def fetch_feeds(settings: Settings, feed_urls: list[str], *, trigger: str = "airflow") -> dict[str, int]:
    """Poll a batch of feeds and fetch their new entries into the raw store."""
    engine = ready_engine(settings)
    summary = ingest_feeds(settings, engine, feed_urls, trigger=trigger, stage_only=True)
    fetched = summary.staged + summary.unchanged
    feed_failures = [f for f in summary.failures if f.stage == "feed"]
    every_feed_failed = bool(feed_urls) and len(feed_failures) == len(feed_urls)
    if every_feed_failed or (summary.seen > 0 and fetched == 0):
        raise SystemicError(f"every fetch failed; first reason: {summary.failures[0].error}")
    return summary.extra()


def process(settings: Settings, *, limit: int, trigger: str = "airflow") -> dict[str, int]:
    """Turn staged documents into articles, sections and facts."""
    return process_pending(settings, ready_engine(settings), limit=limit, trigger=trigger).extra()


def reprocess_articles(settings: Settings, sources: list[str] | None, *, trigger: str = "airflow") -> dict[str, int]:
    """Re-derive facts from stored raw documents (all of them when ``sources`` is empty)."""
    return reprocess(settings, ready_engine(settings), sources=sources or None, trigger=trigger).extra()


def drain_inbox(settings: Settings, inbox: Path, *, trigger: str = "inbox") -> dict[str, Any]:
    """Ingest every document and URL list dropped in ``inbox``, then move each to ``processed/`` or ``failed/``.

    A ``.urls`` file holds one http(s) URL per line. Files stay in the inbox until
    this runs, so what is dropped while Airflow is down is taken up when it comes back.
    """
    files = sorted(p for p in inbox.iterdir() if p.is_file() and p.name != DOORBELL) if inbox.is_dir() else []
    waiting = [path for path in files if not path.name.endswith(SIDECAR_SUFFIX)]
    if not waiting:
        return {"files": 0, **IngestSummary(run_id=0).extra()}
    engine = ready_engine(settings)
    inputs = {path: _inputs_of(path) for path in waiting}
    summary = ingest(settings, engine, [value for values in inputs.values() for value in values], trigger=trigger)
    failed_sources = {failure.source for failure in summary.failures}
    for path, values in inputs.items():
        folder = inbox / ("failed" if failed_sources & set(values) else "processed")
        for companion in (path, path.with_name(path.name + SIDECAR_SUFFIX)):
            if companion.exists():
                _move(companion, folder)
    return {"files": len(waiting), **summary.extra()}


def _inputs_of(path: Path) -> list[str]:
    if path.suffix != URL_LIST_SUFFIX:
        return [str(path)]
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _move(path: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(folder / path.name))
