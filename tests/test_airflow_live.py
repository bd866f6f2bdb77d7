"""Airflow for real: the distributed path on Celery, and news_daily seen in a browser.

The Celery test runs the api-server, scheduler, dag-processor and a Celery worker with the local Redis as
broker and Postgres as the metadata database. The browser test runs ``airflow standalone``, triggers
news_daily through REST API v2 and takes a headless Chromium screenshot of its grid view.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from sqlalchemy.engine import make_url

from .airflow_stack import airflow_env, free_port, local_feed, running_airflow
from .conftest import ROOT

REDIS = ("127.0.0.1", 6379)
SCREENSHOT = ROOT / "docs" / "images" / "news_daily_grid.png"
pytestmark = pytest.mark.postgres


def redis_reachable() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=2):
            return True
    except OSError:
        return False


def chromium() -> str | None:
    return next((found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None)


@pytest.fixture
def metadata_url(migrated_url: str, engine: sa.Engine) -> str:
    """A second, empty database on the same server for Airflow's metadata."""
    url = make_url(migrated_url)
    name = f"{url.database}_airflow"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.mark.skipif(not redis_reachable(), reason="the Celery test needs Redis at 127.0.0.1:6379")
def test_news_daily_runs_on_a_celery_worker(
    tmp_path: Path, httpserver: HTTPServer, migrated_url: str, metadata_url: str, engine: sa.Engine
) -> None:
    port = free_port()
    meta = make_url(metadata_url).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    backend = "db+" + make_url(metadata_url).set(drivername="postgresql").render_as_string(hide_password=False)
    env = airflow_env(
        tmp_path / "airflow",
        port,
        AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=meta,
        AIRFLOW__CELERY__BROKER_URL=f"redis://{REDIS[0]}:{REDIS[1]}/{port % 16}",
        AIRFLOW__CELERY__RESULT_BACKEND=backend,
        NEWSFLOW_DATABASE_URL=migrated_url,
        NEWSFLOW_FEEDS=str(local_feed(httpserver, tmp_path)),
    )
    commands = ("api-server", "scheduler", "dag-processor", "celery worker --concurrency 2")
    with running_airflow(env, port, tmp_path / "logs", *commands) as stack:
        stack.wait_until_up(dag_ids=["news_daily", "news_process"])
        stack.api("PATCH", "/dags/news_process", {"is_paused": False})
        run_id = stack.trigger("news_daily")
        assert stack.wait_for_run("news_daily", run_id) == "success"
        assert set(stack.task_states("news_daily", run_id).values()) == {"success"}
        processed = wait_for_asset_run(stack)
    with sa.create_engine(metadata_url).connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")) >= 3
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM articles")) == 1
    assert processed == "success"


def wait_for_asset_run(stack, timeout: float = 180) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = stack.latest_run("news_process")
        if run and run["state"] in {"success", "failed"}:
            return str(run["state"])
        time.sleep(2)
    raise TimeoutError("news_process was not triggered by the raw-documents asset")


@pytest.mark.skipif(chromium() is None, reason="the browser test needs Chromium: apt-get install chromium")
def test_news_daily_in_the_ui(tmp_path: Path, httpserver: HTTPServer, migrated_url: str) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = airflow_env(
        tmp_path / "airflow",
        port,
        NEWSFLOW_DATABASE_URL=migrated_url,
        NEWSFLOW_FEEDS=str(local_feed(httpserver, tmp_path)),
    )
    with running_airflow(env, port, tmp_path / "logs", "standalone") as stack:
        stack.wait_until_up(dag_ids=["news_daily"])
        run_id = stack.trigger("news_daily")
        assert stack.wait_for_run("news_daily", run_id) == "success"
        assert set(stack.task_states("news_daily", run_id).values()) == {"success"}
        shot = tmp_path / "news_daily_grid.png"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 800})
            page.goto(f"{stack.base}/dags/news_daily/runs/{run_id}", wait_until="networkidle")
            page.wait_for_timeout(2000)
            page.screenshot(path=str(shot))
            browser.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("NEWSFLOW_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, SCREENSHOT)
