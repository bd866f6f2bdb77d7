"""A real Airflow for tests: its processes, its REST API v2, and a local feed for news_daily to read."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer

from .conftest import ROOT
from .test_feeds import rss
from .test_fetch import article

BIN = Path(sys.executable).parent


def local_feed(server: HTTPServer, tmp_path: Path) -> Path:
    server.expect_request("/robots.txt").respond_with_data("", status=404)
    server.expect_request("/talks").respond_with_data(article(), content_type="text/html")
    server.expect_request("/feed.xml").respond_with_data(
        rss(server.url_for("/talks")), content_type="application/rss+xml"
    )
    feeds = tmp_path / "feeds.txt"
    feeds.write_text(server.url_for("/feed.xml") + "\n", encoding="utf-8")
    return feeds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def airflow_env(home: Path, port: int, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "NEWSFLOW_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT=str(free_port()),
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        # the triggerer imports newsflow_triggers by its class path: the DAGs folder is on every process's path
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "dags"), env.get("PYTHONPATH")])),
        NEWSFLOW_HOME=str(ROOT),
        NEWSFLOW_ALLOW_PRIVATE_HOSTS="true",
        NEWSFLOW_FETCH_HOST_INTERVAL="0",
        NEWSFLOW_QUEUE_STREAM=f"newsflow-test:{uuid.uuid4().hex}",  # news_events never drains a real stream
    )
    env.update(extra)
    return env


@dataclass
class AirflowStack:
    """Airflow processes started from one environment, driven through REST API v2."""

    env: Mapping[str, str]
    port: int
    logs: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *commands: str, **extra: str) -> list[subprocess.Popen[bytes]]:
        """Start these Airflow commands (with ``extra`` environment on top of the stack's); their processes."""
        started = []
        for command in commands:
            log = (self.logs / f"{command.replace(' ', '-')}.log").open("wb")
            started.append(
                subprocess.Popen(
                    [str(BIN / "airflow"), *command.split()],
                    env={**self.env, **extra},
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
            )
        self.processes.extend(started)
        return started

    def stop(self, processes: list[subprocess.Popen[bytes]] | None = None) -> None:
        """Stop these processes (all of the stack's by default), each with its process group."""
        chosen = self.processes if processes is None else processes
        for process in chosen:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for process in chosen:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def api(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        token = json.loads(urllib.request.urlopen(f"{self.base}/auth/token", timeout=10).read())["access_token"]
        request = urllib.request.Request(
            f"{self.base}/api/v2{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        return json.loads(urllib.request.urlopen(request, timeout=30).read())

    def wait_until_up(self, *, dag_ids: list[str], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                found = {dag["dag_id"] for dag in self.api("GET", "/dags")["dags"]}
                if set(dag_ids) <= found:
                    return
            except OSError:
                pass
            time.sleep(2)
        raise TimeoutError(f"Airflow did not serve {dag_ids} within {timeout} s; logs in {self.logs}")

    def trigger(self, dag_id: str) -> str:
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        return str(self.api("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})["dag_run_id"])

    def wait_for_run(self, dag_id: str, run_id: str, *, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = str(self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])
            if state in {"success", "failed"}:
                return state
            time.sleep(2)
        raise TimeoutError(f"{dag_id} {run_id} did not finish within {timeout} s; logs in {self.logs}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        instances = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {f"{ti['task_id']}[{ti['map_index']}]": str(ti["state"]) for ti in instances}

    def latest_run(self, dag_id: str) -> dict[str, Any] | None:
        runs = self.api("GET", f"/dags/{dag_id}/dagRuns?order_by=-start_date&limit=1")["dag_runs"]
        return runs[0] if runs else None


@contextmanager
def running_airflow(env: Mapping[str, str], port: int, logs: Path, *commands: str) -> Iterator[AirflowStack]:
    logs.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=dict(env), capture_output=True, check=True, timeout=300)
    stack = AirflowStack(env, port, logs)
    try:
        stack.start(*commands)
        yield stack
    finally:
        stack.stop()
