"""Airflow for real: the distributed path on Celery, and news_daily seen in a browser.

The Celery test runs the api-server, scheduler, dag-processor and a Celery worker with the local Redis as
broker and Postgres as the metadata database. The browser test runs ``airflow standalone`` as a new user
would: it checks in headless Chromium that every DAG is on without a click, triggers news_daily once (no
other click: news_process follows on its asset), and reads the dead feed's line in the mapped task's log.
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
    """As a new user: every DAG is on without a click, one click on news_daily's Trigger (and the form's) leaves
    the facts in Postgres, and the dead feed beside the good one is named, with its reason, in the task's log
    as the UI shows it."""
    from playwright.sync_api import sync_playwright

    port = free_port()
    feeds = local_feed(httpserver, tmp_path)
    dead_feed = httpserver.url_for("/gone/feed.xml")
    httpserver.expect_request("/gone/feed.xml").respond_with_data("gone", status=410)
    feeds.write_text(feeds.read_text(encoding="utf-8") + dead_feed + "\n", encoding="utf-8")
    env = airflow_env(tmp_path / "airflow", port, NEWSFLOW_DATABASE_URL=migrated_url, NEWSFLOW_FEEDS=str(feeds))
    env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"  # the DAGs' own is_paused_upon_creation wins
    with running_airflow(env, port, tmp_path / "logs", "standalone") as stack:
        stack.wait_until_up(dag_ids=["news_daily", "news_process", "news_events", "news_reprocess"])
        assert {dag["dag_id"]: dag["is_paused"] for dag in stack.api("GET", "/dags")["dags"]} == dict.fromkeys(
            ["news_daily", "news_process", "news_events", "news_reprocess"], False
        )
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 800})
            switches = dag_list_switches(page, stack.base)
            page.screenshot(path=str(tmp_path / "dag_list.png"))
            trigger_in_the_ui(page, stack.base, "news_daily")
            run_id = wait_for_first_run(stack, "news_daily")
            assert stack.wait_for_run("news_daily", run_id) == "success"
            assert wait_for_asset_run(stack) == "success"
            log_text = task_log_text(page, stack.base, run_id)
            page.screenshot(path=str(tmp_path / "failed_feed_log.png"))
            page.goto(f"{stack.base}/dags/news_daily/runs/{run_id}", wait_until="networkidle")
            page.wait_for_timeout(2000)
            page.screenshot(path=str(tmp_path / "news_daily_grid.png"))
            browser.close()
        runs = {dag: stack.api("GET", f"/dags/{dag}/dagRuns")["total_entries"] for dag in ("news_daily",)}
    assert switches == [True] * 4, switches
    assert f"failed: {dead_feed} [feed]" in log_text and "410" in log_text, log_text[-3000:]
    assert runs["news_daily"] == 1, "switching on or triggering news_daily must make one run, not two"
    with sa.create_engine(migrated_url).connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM articles")) == 1
        assert conn.scalar(sa.text("SELECT count(*) FROM sections")) >= 1
    shot = tmp_path / "news_daily_grid.png"
    assert shot.stat().st_size > 10_000
    if os.environ.get("NEWSFLOW_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        for name in ("news_daily_grid.png", "dag_list.png", "failed_feed_log.png"):
            shutil.copy(tmp_path / name, SCREENSHOT.parent / name)


def dag_list_switches(page, base: str) -> list[bool]:  # type: ignore[no-untyped-def]
    """The on/off switch of each DAG in the UI's DAG list, as the browser renders it."""
    page.goto(f"{base}/dags", wait_until="networkidle")
    page.get_by_text("news_reprocess").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    switches = page.locator("[data-testid=toggle-pause]")
    return [switches.nth(n).get_attribute("data-state") == "checked" for n in range(switches.count())]


def trigger_in_the_ui(page, base: str, dag_id: str) -> None:  # type: ignore[no-untyped-def]
    """Click the DAG page's Trigger button, then the form's Trigger, as a user does."""
    page.goto(f"{base}/dags/{dag_id}", wait_until="networkidle")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for(timeout=30_000)
    dialog.get_by_role("button", name="Trigger").last.click()
    page.wait_for_timeout(1000)


def wait_for_first_run(stack, dag_id: str, timeout: float = 60) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run := stack.latest_run(dag_id):
            return str(run["dag_run_id"])
        time.sleep(1)
    raise TimeoutError(f"the Trigger click made no {dag_id} run")


def task_log_text(page, base: str, run_id: str) -> str:  # type: ignore[no-untyped-def]
    """The text of the first mapped fetch task's log page, as the UI shows it."""
    page.goto(f"{base}/dags/news_daily/runs/{run_id}/tasks/fetch_feed_batch/mapped/0", wait_until="networkidle")
    page.get_by_text("failed:").first.wait_for(timeout=60_000)
    return str(page.inner_text("body"))
