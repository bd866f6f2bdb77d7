"""The command line: output shapes and exit codes (0 all good, 1 some failed, 2 usage, 3 no database)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from pipeline.cli import app

from .conftest import SEED
from .test_fetch import article

runner = CliRunner()


def test_extract_prints_document_json(tmp_path: Path) -> None:
    result = runner.invoke(app, ["extract", str(SEED)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    document = json.loads(lines[0])
    assert document["source"] == str(SEED)
    assert document["published_at"] == "2025-05-15"
    assert [s["heading"] for s in document["sections"]][1:] == [
        "How Did We Get Here?",
        "Russia’s Demands",
        "Ukraine’s Position",
    ]
    assert {"entities", "quotes", "dates", "quantities", "claims"} <= set(document)


def test_extract_keeps_input_order_and_reports_failures(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = runner.invoke(app, ["extract", str(empty), str(SEED), str(tmp_path / "missing.txt")])
    assert result.exit_code == 1
    documents = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [d["source"] for d in documents] == [str(empty), str(SEED), str(tmp_path / "missing.txt")]
    assert "empty document" in documents[0]["error"] and "error" not in documents[1]
    assert "no such file" in documents[2]["error"]


def test_extract_published_anchor(tmp_path: Path) -> None:
    article = tmp_path / "a.txt"
    article.write_text("The minister spoke on Friday about the plan. She said it was done.\n")
    result = runner.invoke(app, ["extract", str(article), "--published", "2025-05-15"])
    document = json.loads(result.stdout)
    assert document["published_at"] == "2025-05-15"
    assert [d["value"] for d in document["dates"]] == ["2025-05-09"]


def test_extract_directory_expands(tmp_path: Path) -> None:
    shutil.copy(SEED, tmp_path / "b.txt")
    (tmp_path / "a.md").write_text("# Title\n\nSome body text here.\n")
    result = runner.invoke(app, ["extract", str(tmp_path)])
    assert [json.loads(line)["source"] for line in result.stdout.splitlines()] == [
        str(tmp_path / "a.md"),
        str(tmp_path / "b.txt"),
    ]


def test_bad_published_date_is_a_usage_error() -> None:
    result = runner.invoke(app, ["extract", str(SEED), "--published", "15/05/2025"])
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.output


@pytest.mark.postgres
def test_ingest_exit_codes(migrated_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSFLOW_DATABASE_URL", migrated_url)
    first = runner.invoke(app, ["ingest", str(SEED)])
    assert first.exit_code == 0, first.output
    assert "ingest run" in first.output and "psql" in first.output
    again = runner.invoke(app, ["ingest", str(SEED)])
    assert again.exit_code == 0
    assert "Nothing changed" in again.output
    (tmp_path / "empty.txt").write_text("")
    partial = runner.invoke(app, ["ingest", str(SEED), str(tmp_path / "empty.txt")])
    assert partial.exit_code == 1
    assert "empty document" in partial.output


def test_unreachable_database_exits_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSFLOW_DATABASE_URL", "postgresql://postgres@127.0.0.1:9/nowhere?connect_timeout=2")
    result = runner.invoke(app, ["db", "migrate"])
    assert result.exit_code == 3
    assert "cannot connect" in result.output


@pytest.mark.postgres
def test_db_url_and_migrate_in_a_real_process(migrated_url: str) -> None:
    env = {"NEWSFLOW_DATABASE_URL": migrated_url, "PATH": str(Path(sys.executable).parent)}
    newsflow = str(Path(sys.executable).parent / "newsflow")
    url = subprocess.run([newsflow, "db", "url"], env=env, capture_output=True, text=True, check=True)
    assert url.stdout.strip().startswith("postgresql://")
    migrate = subprocess.run([newsflow, "db", "migrate"], env=env, capture_output=True, text=True, check=True)
    assert "none pending" in migrate.stderr


@pytest.mark.postgres
def test_ingest_a_local_feed_then_nothing_new(
    migrated_url: str, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "NEWSFLOW_DATABASE_URL": migrated_url,
        "NEWSFLOW_ALLOW_PRIVATE_HOSTS": "true",
        "NEWSFLOW_FETCH_HOST_INTERVAL": "0",
    }.items():
        monkeypatch.setenv(name, value)
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/talks").respond_with_data(article(), content_type="text/html")
    item = f"<item><link>{httpserver.url_for('/talks')}</link></item>"
    feed = f'<rss version="2.0"><channel><title>t</title>{item}</channel></rss>'
    httpserver.expect_request("/feed.xml").respond_with_data(feed, content_type="application/rss+xml")
    first = runner.invoke(app, ["ingest", "--feed", httpserver.url_for("/feed.xml")])
    assert first.exit_code == 0, first.output
    assert "│        1 │   1 │" in first.output
    second = runner.invoke(app, ["ingest", "--feed", httpserver.url_for("/feed.xml")])
    assert second.exit_code == 0, second.output
    assert "│        0 │   0 │" in second.output


def test_extract_a_url_and_refuse_a_private_one(httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/talks").respond_with_data(article(), content_type="text/html")
    refused = runner.invoke(app, ["extract", httpserver.url_for("/talks")])
    assert refused.exit_code == 1
    assert "loopback" in json.loads(refused.stdout)["error"]
    monkeypatch.setenv("NEWSFLOW_ALLOW_PRIVATE_HOSTS", "true")
    fetched = runner.invoke(app, ["extract", httpserver.url_for("/talks")])
    assert fetched.exit_code == 0, fetched.output
    document = json.loads(fetched.stdout)
    assert document["source"] == httpserver.url_for("/talks")
    assert [s["heading"] for s in document["sections"]] == [None, "What comes next"]
