"""The document boundary through every entry point: poison at each stage (injected faults of unexpected types,
and real inputs that used to stop a run) beside good documents. Every good document is stored, each bad one is
one error row with its stage, the run's counts are right, nothing is a traceback, and a re-run without the
faults converges to a clean run's digest. See tests/poison.py for the corpus and the faults."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.db.digest import content_digest
from pipeline.db.engine import create_engine
from pipeline.errors import SystemicError
from pipeline.ingest.feeds import stage_feeds
from pipeline.ingest.inbox import drain_inbox, waiting_files
from pipeline.ingest.staged import process_pending, reprocess
from pipeline.settings import Settings

from . import poison
from .conftest import ROOT, MakeDatabase
from .test_feeds import rss

pytestmark = pytest.mark.postgres
POISON_SCRIPT = str(Path(poison.__file__))
BUDGET_SECONDS = 3.0


@dataclass(frozen=True)
class Page:
    name: str
    body: bytes
    stage: str | None
    content_type: str = "text/html; charset=utf-8"


def web_corpus() -> list[Page]:
    """Pages for the URL, feed and staged paths: the HTML of the file corpus and web-only poison."""
    pages = [Page(item.name, item.body, item.stage) for item in poison.corpus() if item.name.endswith(".html")]
    return [
        *pages,
        Page("poison-read.html", poison.html("calm", 20), "read"),
        Page("x-facts.html", poison.html("POISON-FACTS", 21), "facts"),
        Page("x-parse.html", poison.html("POISON-PARSE", 22), "facts"),
        Page("x-slow.html", poison.html("POISON-SLOW", 23), "facts"),
        Page("x-load.html", poison.html("POISON-LOAD", 24), "load"),
        Page("header-charset.html", poison.html("na\xefve", 25).replace("ï".encode(), b"\xef"), None,
             "text/html; charset=undefined"),
        Page("bad-canonical.html", poison.html("calm", 26, '<link rel="canonical" href="http://[::1">'), None),
        Page("bad-canonical-port.html", poison.html("calm", 27, '<link rel="canonical" href="http://x.org:99999/">'),
             None),
        Page("missing.html", b"gone", "fetch"),
    ]  # fmt: skip


@pytest.fixture
def site(httpserver: HTTPServer) -> Callable[[list[Page]], list[str]]:
    def serve(pages: list[Page]) -> list[str]:
        httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
        for page in pages:
            status = 404 if page.name == "missing.html" else 200
            httpserver.expect_request(f"/{page.name}").respond_with_data(
                page.body, status=status, content_type=page.content_type
            )
        return [httpserver.url_for(f"/{page.name}") for page in pages]

    return serve


@pytest.fixture
def poison_settings(db_settings: Settings) -> Settings:
    return replace(
        db_settings, document_seconds=BUDGET_SECONDS, batch_size=4, allow_private_hosts=True,
        fetch_host_interval=0.0, fetch_attempts=1,
    )  # fmt: skip


@pytest.fixture
def poison_env(poison_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The same settings as the environment the command line reads."""
    env = {
        "NEWSFLOW_DATABASE_URL": str(poison_settings.database_url),
        "NEWSFLOW_DOCUMENT_SECONDS": str(BUDGET_SECONDS),
        "NEWSFLOW_BATCH_SIZE": "4",
        "NEWSFLOW_ALLOW_PRIVATE_HOSTS": "true",
        "NEWSFLOW_FETCH_HOST_INTERVAL": "0",
        "NEWSFLOW_FETCH_ATTEMPTS": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def faults() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        poison.install(patch.setattr)
        yield patch


def errors(engine: sa.Engine) -> dict[str, str]:
    """Failed documents by the last part of their source, with their stage."""
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source, stage FROM ingest_errors")).all()
    return {row.source.rstrip("/").rsplit("/", 1)[-1]: row.stage for row in rows}


def article_names(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return {source.rsplit("/", 1)[-1] for source in conn.scalars(sa.text("SELECT source FROM articles"))}


def last_run(engine: sa.Engine) -> sa.Row[tuple[object, ...]]:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM ingest_runs ORDER BY id DESC LIMIT 1")).one()


def expected(items: list[poison.Item] | list[Page]) -> tuple[dict[str, str], set[str]]:
    bad = {item.name: item.stage for item in items if item.stage is not None}
    return bad, {item.name for item in items if item.stage is None}


def check(engine: sa.Engine, items: list[poison.Item] | list[Page]) -> None:
    """Each good document stored, and one error row per bad one, at its stage."""
    bad, good = expected(items)
    assert errors(engine) == bad
    assert article_names(engine) == good


def clean_digest(
    make_database: MakeDatabase, run: Callable[[Settings, sa.Engine], object], settings: Settings
) -> dict[str, str]:
    url = make_database()
    engine = create_engine(url)
    try:
        run(replace(settings, database_url=url), engine)
        return content_digest(engine)
    finally:
        engine.dispose()


def test_cli_files(poison_env: dict[str, str], engine: sa.Engine, make_database: MakeDatabase, tmp_path: Path,
                   poison_settings: Settings, faults: pytest.MonkeyPatch) -> None:  # fmt: skip
    items = poison.corpus()
    paths = poison.write(tmp_path / "in", items)
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "in")])
    assert result.exit_code == 1, result.output
    assert ("Traceback" not in result.output and result.exception is None) or isinstance(result.exception, SystemExit)
    check(engine, items)
    run = last_run(engine)
    assert (run.status, run.documents_seen, run.documents_failed) == ("partial", len(items), len(expected(items)[0]))
    assert "took longer than the 3 s budget" in _error_of(engine, "x-slow.txt")
    faults.undo()
    CliRunner().invoke(app, ["ingest", str(tmp_path / "in")])
    assert content_digest(engine) == clean_digest(make_database, _ingest_with_cli(paths), poison_settings)


def _ingest_with_cli(paths: list[str]) -> Callable[[Settings, sa.Engine], object]:
    def ingest(settings: Settings, _engine: sa.Engine) -> object:
        return CliRunner().invoke(app, ["ingest", *paths], env={"NEWSFLOW_DATABASE_URL": str(settings.database_url)})

    return ingest


def _error_of(engine: sa.Engine, name: str) -> str:
    with engine.connect() as conn:
        return str(conn.scalar(sa.text("SELECT error FROM ingest_errors WHERE source LIKE :s"), {"s": f"%{name}"}))


def test_cli_urls(poison_env: dict[str, str], engine: sa.Engine, site: Callable[[list[Page]], list[str]],
                  faults: pytest.MonkeyPatch) -> None:  # fmt: skip
    pages = web_corpus()
    urls = site(pages)
    result = CliRunner().invoke(app, ["ingest", *urls])
    assert result.exit_code == 1, result.output
    check(engine, pages)
    assert last_run(engine).documents_seen == len(pages)


def test_a_feed(poison_env: dict[str, str], engine: sa.Engine, httpserver: HTTPServer,
                site: Callable[[list[Page]], list[str]], faults: pytest.MonkeyPatch) -> None:  # fmt: skip
    pages = web_corpus()
    urls = site(pages)
    httpserver.expect_request("/feed.xml").respond_with_data(rss(*urls), content_type="application/rss+xml")
    result = CliRunner().invoke(app, ["ingest", "--feed", httpserver.url_for("/feed.xml")])
    assert result.exit_code == 1, result.output
    check(engine, pages)
    with engine.connect() as conn:
        entries = conn.scalar(sa.text("SELECT count(*) FROM feed_entries WHERE article_id IS NOT NULL"))
    assert entries == len(expected(pages)[1])


def test_the_staged_path_processes_everything_after_the_poison(
    poison_settings: Settings, engine: sa.Engine, httpserver: HTTPServer, site: Callable[[list[Page]], list[str]],
    make_database: MakeDatabase, faults: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    pages = web_corpus()
    urls = site(pages)
    httpserver.expect_request("/feed.xml").respond_with_data(rss(*urls), content_type="application/rss+xml")
    feed = [httpserver.url_for("/feed.xml")]
    stage_feeds(poison_settings, engine, feed)
    summary = process_pending(poison_settings, engine)
    assert summary.failed == len([p for p in pages if p.stage in {"extract", "facts"}])
    pages = [replace(p, stage="stage") if p.stage == "load" else p for p in pages]  # its row fails at staging
    check(engine, pages)
    with engine.connect() as conn:
        waiting = conn.scalar(sa.text("SELECT count(*) FROM raw_documents WHERE processed_at IS NULL"))
        closed = conn.scalar(sa.text("SELECT count(*) FROM raw_documents WHERE process_error IS NOT NULL"))
    assert (waiting, closed) == (0, summary.failed), "every failure closes its staged document"
    assert process_pending(poison_settings, engine).seen == 0, "nothing is retried for ever"


def test_reprocess_keeps_the_facts_of_a_document_that_fails(
    poison_settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    injected = {None, "extract", "facts", "load"}  # the deep- items fail without faults: their YAML is too deep
    items = [item for item in poison.corpus() if item.stage in injected and not item.name.startswith("deep-")]
    paths = poison.write(tmp_path / "in", items)
    from pipeline.ingest import ingest

    assert ingest(poison_settings, engine, paths).failed == 0
    before = _fact_counts(engine)
    with pytest.MonkeyPatch.context() as patch:
        poison.install(patch.setattr)
        summary = reprocess(poison_settings, engine)
    bad = set(expected(items)[0])
    assert {failure.source.rsplit("/", 1)[-1] for failure in summary.failures} == bad
    after = _fact_counts(engine)
    assert all(after[name] == before[name] for name in bad & set(before)), "a failed reprocess keeps the old facts"
    assert reprocess(poison_settings, engine).failed == 0


def _fact_counts(engine: sa.Engine) -> dict[str, tuple[int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT a.source, a.version, (SELECT count(*) FROM sections s WHERE s.article_id = a.id) AS n "
                "FROM articles a"
            )
        ).all()
    return {row.source.rsplit("/", 1)[-1]: (row.version, row.n) for row in rows}


def test_the_inbox(poison_settings: Settings, engine: sa.Engine, tmp_path: Path, faults: pytest.MonkeyPatch) -> None:
    items = poison.corpus()
    inbox = tmp_path / "inbox"
    poison.write(inbox, items)
    summary = drain_inbox(poison_settings, engine, waiting_files(inbox))
    bad, good = expected(items)
    assert summary.failed == len(bad) and summary.seen == len(items)
    check(engine, items)
    assert {p.name for p in (inbox / "failed").iterdir() if not p.name.endswith(".meta.yaml")} == set(bad)
    assert {p.name for p in (inbox / "processed").iterdir() if not p.name.endswith(".meta.yaml")} == good


def _script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, POISON_SCRIPT, *args], env={**os.environ, **env}, capture_output=True, text=True,
        timeout=600, check=False, cwd=ROOT,
    )  # fmt: skip


def test_workers_with_a_document_that_kills_its_worker(
    poison_env: dict[str, str], engine: sa.Engine, tmp_path: Path
) -> None:
    items = [*poison.corpus(), poison.Item("x-kill.txt", poison.text("POISON-KILL", 30), "process")]
    poison.write(tmp_path / "in", items)
    result = _script({**poison_env, "NEWSFLOW_BATCH_SIZE": "2"}, "ingest", str(tmp_path / "in"), "--workers", "2")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    check(engine, items)
    assert "worker process died" in _error_of(engine, "x-kill.txt")
    assert last_run(engine).documents_seen == len(items)


def test_a_staged_document_that_kills_its_process_is_quarantined(
    poison_env: dict[str, str], poison_settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    items = [poison.Item(f"good-{n}.txt", poison.text("calm", n), None) for n in range(5)]
    items.insert(2, poison.Item("x-kill.txt", poison.text("POISON-KILL", 9), "process"))
    paths = poison.write(tmp_path / "in", items)
    from pipeline.ingest import run as runs
    from pipeline.ingest.staged import stage_values

    with runs.open_run(poison_settings, engine, trigger="test") as run:
        stage_values(run, paths)
    deaths = 0
    for _ in range(poison_settings.quarantine_attempts):
        deaths += _script(poison_env, "process-pending").returncode == 137
    assert deaths == poison_settings.quarantine_attempts, "the killer killed every run that took it"
    result = _script(poison_env, "process-pending")
    assert result.returncode == 0, result.stderr[-3000:]
    check(engine, items)
    with engine.connect() as conn:
        quarantined = conn.execute(sa.text("SELECT source, attempts, reason FROM v_quarantined_documents")).all()
    assert [(row.source.rsplit("/", 1)[-1], row.attempts) for row in quarantined] == [("x-kill.txt", 3)]


DISK_FULL_TRIGGER = """
CREATE FUNCTION newsflow_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100'; END $$;
CREATE TRIGGER newsflow_test_disk_full BEFORE INSERT ON articles FOR EACH ROW
EXECUTE FUNCTION newsflow_test_disk_full();
"""


def test_a_database_that_refuses_everyone_stops_the_run_and_blames_no_document(
    poison_env: dict[str, str], engine: sa.Engine, tmp_path: Path
) -> None:
    """SQLSTATE 53100 (disk full) on every article: not one document's fault, so no error rows, exit 3."""
    with engine.begin() as conn:
        conn.execute(sa.text(DISK_FULL_TRIGGER))
    paths = poison.write(tmp_path / "in", [item for item in poison.corpus() if item.stage is None])
    result = CliRunner().invoke(app, ["ingest", *paths])
    assert result.exit_code == 3, result.output
    assert "stopped:" in result.output and "refuses every document" in result.output
    assert errors(engine) == {}
    run = last_run(engine)
    assert run.status == "stopped" and "53100" not in str(run.stop_reason) and "No space left" in str(run.stop_reason)


def test_a_stopped_processing_run_gives_its_claims_back(
    poison_settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    """news_process stopped by the database: the documents it had claimed wait again, attempts unchanged, so
    an outage never quarantines them; the next run processes them."""
    from pipeline.ingest import run as runs
    from pipeline.ingest.staged import stage_values

    items = [poison.Item(f"good-{n}.txt", poison.text("calm", n), None) for n in range(6)]
    paths = poison.write(tmp_path / "in", items)
    with runs.open_run(poison_settings, engine, trigger="test") as run:
        stage_values(run, paths)
    with engine.begin() as conn:
        conn.execute(sa.text(DISK_FULL_TRIGGER))
    with pytest.raises(SystemicError):
        process_pending(poison_settings, engine)
    with engine.begin() as conn:
        query = "SELECT attempts, claimed_by FROM raw_documents WHERE processed_at IS NULL"
        waiting = conn.execute(sa.text(query)).all()
        conn.execute(sa.text("DROP TRIGGER newsflow_test_disk_full ON articles"))
    assert len(waiting) == len(items) and all(row.attempts == 0 and row.claimed_by is None for row in waiting)
    assert last_run(engine).status == "stopped"
    assert process_pending(poison_settings, engine).loaded == len(items)


TYPED_YAML = "date: 2025-13-45\nx: !!bool maybe\ny: !!timestamp x\nz: " + "9" * 5001 + "\n"


def red_team_corpus(folder: Path) -> tuple[dict[str, str | None], list[str]]:
    """Inputs a red team found stopping a run or losing a document; name → the stage it must fail at (None:
    it must load). Returns them and the paths to ingest."""
    folder.mkdir(parents=True)
    good = poison.text("calm", 40).decode()
    cases: dict[str, tuple[bytes | str, str | None, str | None]] = {
        "ancient.txt": ("Town found\n\nArchaeologists said the town was founded 3000 years ago, "
                        "ten thousand years ago and 65 million years ago.\n", "published: 2025-05-15\n", None),
        "end-of-time.txt": ("Last day\n\nIt ends tomorrow, officials said on Thursday.\n", "published: 9999-12-31\n",
                            None),
        "typed-yaml.txt": (poison.text("calm", 41), TYPED_YAML, None),
        "offset.txt": (poison.text("calm", 42), "published: '2025-01-01 12:00 +9999'\n", None),
        "share.txt": ("Share" + " on" * 45 + " ?\n\n" + good, None, None),
        "words.txt": ("a " * 250_000, None, "facts"),
        "x" * 240 + ".txt": (poison.text("calm", 43), None, None),  # its sidecar's name would be too long to exist
    }  # fmt: skip
    for name, (body, sidecar, _) in cases.items():
        (folder / name).write_text(body if isinstance(body, str) else body.decode(), encoding="utf-8")
        if sidecar is not None:
            (folder / (name + ".meta.yaml")).write_text(sidecar, encoding="utf-8")
    with open(os.fsencode(folder) + b"/caf\xe9.txt", "wb") as stream:  # not UTF-8: the name is escaped
        stream.write(good.encode())
    deep = folder.joinpath(*(["\u4e2d" * 80] * 14))
    deep.mkdir(parents=True)
    (deep / "empty.txt").write_bytes(b"")  # its path is over 3 KB: the error row keeps a shortened one
    expected = {name: stage for name, (_, _, stage) in cases.items()} | {"caf\\udce9.txt": None, "empty.txt": "read"}
    return expected, [str(folder)]


def test_inputs_from_the_red_team(poison_env: dict[str, str], engine: sa.Engine, tmp_path: Path) -> None:
    expected, inputs = red_team_corpus(tmp_path / "in")
    result = CliRunner().invoke(app, ["ingest", *inputs])
    assert result.exit_code == 1, result.output
    found = errors(engine)
    shortened = {name: stage for name, stage in found.items() if name.endswith("…")}
    assert list(shortened.values()) == ["read"], "the over-long path's row, its source cut to fit the index"
    named = {name: stage for name, stage in expected.items() if stage is not None and name != "empty.txt"}
    assert {name: stage for name, stage in found.items() if name not in shortened} == named
    assert article_names(engine) == {name for name, stage in expected.items() if stage is None}
    assert last_run(engine).documents_seen == len(expected)


def test_extract_prints_every_document_whatever_its_metadata(tmp_path: Path) -> None:
    front = '---\ntitle: "A \\ud800 B"\npublished: 2025-01-01 12:00 +9999\n---\n\n'
    (tmp_path / "s.md").write_text(front + poison.GOOD_TEXT)
    (tmp_path / "t.txt").write_text(poison.GOOD_TEXT)
    result = subprocess.run(
        [str(Path(sys.executable).parent / "newsflow"), "extract", str(tmp_path)], capture_output=True, timeout=300,
        cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.decode("utf-8").splitlines()
    assert len(lines) == 2 and all('"text"' in line for line in lines)
