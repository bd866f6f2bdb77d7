"""The event inbox: documents and URL lists dropped in a folder, ingested when its doorbell rings.

A ``.urls`` file holds one http(s) URL per line. Files stay in the inbox until a drain runs, so what is
dropped while Airflow is down is taken up when it comes back; each is then moved to ``processed/`` or
``failed/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy.engine import Engine

from pipeline.ingest import ingest
from pipeline.ingest.run import RunSummary
from pipeline.settings import Settings
from pipeline.sources.files import SIDECAR_SUFFIX

URL_LIST_SUFFIX = ".urls"
DOORBELL = ".ring"


def waiting_files(inbox: Path) -> list[Path]:
    """Documents and URL lists waiting in the inbox, in name order (sidecars travel with their document)."""
    if not inbox.is_dir():
        return []
    files = sorted(p for p in inbox.iterdir() if p.is_file() and p.name != DOORBELL)
    return [path for path in files if not path.name.endswith(SIDECAR_SUFFIX)]


def drain_inbox(settings: Settings, engine: Engine, files: list[Path], *, trigger: str = "inbox") -> RunSummary:
    """Ingest the waiting files in one run, then move each to ``processed/`` or ``failed/``."""
    inputs = {path: _inputs_of(path) for path in files}
    summary = ingest(settings, engine, [value for values in inputs.values() for value in values], trigger=trigger)
    failed_sources = {failure.source for failure in summary.failures}
    for path, values in inputs.items():
        folder = path.parent / ("failed" if failed_sources & set(values) else "processed")
        for companion in (path, path.with_name(path.name + SIDECAR_SUFFIX)):
            if companion.exists():
                _move(companion, folder)
    return summary


def _inputs_of(path: Path) -> list[str]:
    if path.suffix != URL_LIST_SUFFIX:
        return [str(path)]
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _move(path: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(folder / path.name))
