"""The file-system boundary: YAML metadata, the inbox, special files and the embedded server's directory.

Each test is built from the worst input of its class: YAML aliases that expand a 64 KiB file a thousandfold,
links and URL lists that point out of the inbox, FIFOs that block whoever opens them, a data directory the
user cannot write to.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from pipeline.db.engine import embedded_database_url
from pipeline.errors import DatabaseUnavailableError, ExtractError, SourceError
from pipeline.extract.markdown import split_front_matter
from pipeline.ingest import RunSummary
from pipeline.ingest.inbox import drain_inbox, url_lines, waiting_files
from pipeline.metadata import MAX_ALIASES, MAX_DEPTH, MAX_METADATA_BYTES, MetadataError, load_metadata
from pipeline.settings import Settings
from pipeline.sources.drop_folder import STAGING_MARKER, numbered
from pipeline.sources.files import expand_inputs, read_file

from . import poison
from .conftest import ROOT

GOOD = poison.GOOD_TEXT
OUTSIDE_TEXT = "OUTSIDE_TEXT-OUTSIDE-THE-INBOX"
NEWSFLOW = str(Path(sys.executable).parent / "newsflow")


def alias_list(scalar_bytes: int, aliases: int) -> str:
    """One long anchored scalar, then a list that names it ``aliases`` times (joined into one title today)."""
    return f"a: &a {'x' * scalar_bytes}\ntitle: [{', '.join(['*a'] * aliases)}]\n"


def alias_fields(scalar_bytes: int, aliases: int) -> str:
    """One long anchored scalar, then as many fields that are each an alias of it."""
    return f"a: &a {'x' * scalar_bytes}\n" + "".join(f"k{n}: *a\n" for n in range(aliases))


def alias_keys(scalar_bytes: int, aliases: int) -> str:
    """Fields whose key is the alias, each in a one-field flow mapping inside a list (a list of mappings)."""
    return f"&a {'x' * scalar_bytes}: 1\nt: [" + ", ".join(f"{{*a : {n}}}" for n in range(aliases)) + "]\n"


# --- YAML metadata: a size cap, a depth cap, an alias budget --------------------------------------------------


@pytest.mark.parametrize("bomb", [alias_list, alias_fields, alias_keys])
def test_yaml_aliases_beyond_the_budget_are_refused(bomb: Callable[[int, int], str]) -> None:
    text = bomb(1_000, 5_000)  # ~25 KiB of YAML; 5 MB of values when expanded
    assert len(text.encode()) < MAX_METADATA_BYTES
    with pytest.raises(MetadataError, match="alias"):
        load_metadata(text)


def test_yaml_aliases_within_the_budget_still_load() -> None:
    text = "me: &me Jane Doe\nauthor: *me\neditors: [*me, Ann]\nbase: &b {x: 1}\n<<: *b\ntitle: Hello\n"
    assert load_metadata(text) == {"me": "Jane Doe", "author": "Jane Doe", "editors": "Jane Doe, Ann",
                                   "title": "Hello"}  # fmt: skip
    load_metadata(alias_list(10, MAX_ALIASES))


def test_yaml_nested_beyond_the_depth_cap_is_refused() -> None:
    for depth in (MAX_DEPTH + 1, 5_000):
        with pytest.raises(MetadataError, match="nested deeper"):
            load_metadata("title: " + "[" * depth + "]" * depth + "\n")
    assert load_metadata("title: x\nextra: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)) == {"title": "x"}


def test_yaml_over_the_size_cap_is_refused() -> None:
    with pytest.raises(MetadataError, match="limit"):
        load_metadata("title: " + "x" * MAX_METADATA_BYTES + "\n")


@pytest.mark.parametrize(
    "front",
    [alias_list(1_000, 5_000), "title: " + "x" * (2 * MAX_METADATA_BYTES), "t: " + "[" * 5_000 + "]" * 5_000],
    ids=["aliases", "size", "depth"],
)
def test_bad_front_matter_is_an_extract_error(front: str) -> None:
    with pytest.raises(ExtractError, match="front matter"):
        split_front_matter(f"---\n{front}\n---\n\n{GOOD}")


def test_front_matter_that_is_not_yaml_is_text() -> None:
    meta, body = split_front_matter("---\nJust a thematic break: [ and text\n---\n\nMore text.\n")
    assert meta == {} and body.startswith("---")


CHILD = """
import resource, sys
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (1_500_000_000, 1_500_000_000))
from pipeline.extract.dispatch import extract
from pipeline.sources.files import read_file
outcomes = []
for path in sys.argv[1:]:
    try:
        document = extract(read_file(Path(path)))
        outcomes.append(f"loaded title of {len(document.title or '')} characters")
    except Exception as error:
        outcomes.append(f"{type(error).__name__}: {str(error)[:80]}")
print("|".join(outcomes))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def worst_alias_bomb() -> str:
    """The largest expansion that fits 64 KiB: a 32 KiB scalar named 8,000 times (256 MB as a joined title)."""
    scalar = 32 * 1024
    return alias_list(scalar, (MAX_METADATA_BYTES - scalar - 64) // 4)


def test_a_64_kib_alias_bomb_costs_no_memory(tmp_path: Path) -> None:
    bomb = worst_alias_bomb()
    (tmp_path / "side.txt").write_text(GOOD)
    (tmp_path / "side.txt.meta.yaml").write_text(bomb)
    (tmp_path / "front.md").write_text(f"---\n{bomb}---\n\n{GOOD}")
    baseline = _child(tmp_path, [])
    result = _child(tmp_path, [str(tmp_path / "side.txt"), str(tmp_path / "front.md")])
    side, front = result.stdout.splitlines()[0].split("|")
    assert side.startswith("SourceError: unreadable metadata sidecar") and "alias" in side
    assert front.startswith("ExtractError: front matter") and "alias" in front
    extra_mib = int(result.stdout.splitlines()[1]) - int(baseline.stdout.splitlines()[1])
    assert extra_mib < 50, f"{extra_mib} MiB more than reading nothing"


def _child(tmp_path: Path, paths: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", CHILD, *paths], capture_output=True, text=True, timeout=300,
                            env=env, cwd=tmp_path, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result


# --- special files: refused by their type, never opened -------------------------------------------------------


def read_with_deadline(path: Path, seconds: float = 10) -> BaseException | None:
    """``read_file(path)`` in a thread; the error it raised. A reader blocked in ``open`` is freed and fails."""
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            read_file(path)
            outcome.append(None)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))  # the reader's open returns: let it go
        thread.join(10)
        pytest.fail(f"reading {path.name} blocked for {seconds} s")
    return outcome[0]


def test_a_fifo_is_refused_without_being_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    error = read_with_deadline(tmp_path / "pipe.txt")
    assert isinstance(error, SourceError) and "is a FIFO, not a regular file" in str(error)


def test_a_link_to_a_device_is_refused(tmp_path: Path) -> None:
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    error = read_with_deadline(tmp_path / "zero.txt")
    assert isinstance(error, SourceError) and "is a character device, not a regular file" in str(error)


def test_a_sidecar_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    (tmp_path / "doc.txt").write_text(GOOD)
    os.mkfifo(tmp_path / "doc.txt.meta.yaml")
    error = read_with_deadline(tmp_path / "doc.txt")
    assert isinstance(error, SourceError) and "doc.txt.meta.yaml is a FIFO" in str(error)


def test_special_files_in_a_directory_are_listed_to_be_refused(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(GOOD)
    os.mkfifo(tmp_path / "b.txt")
    os.mkfifo(tmp_path / "c.bin")  # not a document name: not a document
    assert list(expand_inputs([str(tmp_path)])) == [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]


@pytest.mark.postgres
def test_an_explicit_fifo_is_an_error_row_not_a_hang(tmp_path: Path, migrated_url: str, engine: sa.Engine) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "good.txt").write_text(GOOD)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NEWSFLOW_DATABASE_URL": migrated_url}
    result = subprocess.run([NEWSFLOW, "ingest", str(tmp_path / "pipe.txt"), str(tmp_path / "good.txt")],
                            capture_output=True, text=True, timeout=240, env=env, check=False)  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source, stage, error FROM ingest_errors")).all()
        articles = conn.scalar(sa.text("SELECT count(*) FROM articles"))
    assert [(row.stage, row.error) for row in rows] == [("read", "pipe.txt is a FIFO, not a regular file")]
    assert articles == 1


# --- the inbox: URL lists hold URLs, nothing outside the inbox is read ----------------------------------------


@pytest.fixture
def inbox_settings(db_settings: Settings) -> Settings:
    return replace(db_settings, allow_private_hosts=True, fetch_host_interval=0, fetch_attempts=1)


@pytest.fixture
def site(httpserver: HTTPServer) -> HTTPServer:
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    page = f"<html><head><title>Page</title></head><body><article><h1>Page</h1><p>{GOOD}</p></article></body></html>"
    httpserver.expect_request("/good").respond_with_data(page, content_type="text/html")
    httpserver.expect_request("/gone").respond_with_data("gone", status=404)
    return httpserver


def outside_secret(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(f"{OUTSIDE_TEXT}\n\n{GOOD}")
    return secret


def stored_text(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        articles = conn.execute(sa.text("SELECT concat_ws(' ', source, title, text) FROM articles")).scalars()
        raws = conn.execute(sa.text("SELECT concat_ws(' ', source, metadata::text) FROM raw_documents")).scalars()
        return " ".join([*articles, *raws])


def error_rows(engine: sa.Engine) -> dict[str, tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source, stage, error FROM ingest_errors")).all()
    return {row.source.rsplit("/", 1)[-1]: (row.stage, row.error) for row in rows}


@pytest.mark.postgres
def test_a_url_list_holds_urls_only_and_keeps_each_lines_result(
    inbox_settings: Settings, engine: sa.Engine, site: HTTPServer, tmp_path: Path
) -> None:
    secret = outside_secret(tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    lines = [site.url_for("/good"), str(secret), f"file://{secret}", "# a comment", "", "ftp://example.org/x",
             site.url_for("/gone"), "http://", "../outside/secret.txt"]  # fmt: skip
    (inbox / "list.urls").write_text("\n".join(lines) + "\n")

    summary = drain_inbox(inbox_settings, engine, waiting_files(inbox))

    assert OUTSIDE_TEXT not in stored_text(engine)
    assert summary.loaded == 1 and summary.failed == 6
    rows = error_rows(engine)
    for number in (2, 3, 6, 8, 9):
        assert rows[f"list.urls:{number}"][0] == "inbox" and "not an http(s) URL" in rows[f"list.urls:{number}"][1]
    assert rows["gone"][0] == "fetch"
    assert (inbox / "processed" / "list.urls").read_text() == site.url_for("/good") + "\n"
    failed = (inbox / "failed" / "list.urls").read_text().splitlines()
    assert [line for line in failed if not line.startswith("#")] == [lines[1], lines[2], lines[5], lines[6],
                                                                      lines[7], lines[8]]  # fmt: skip
    assert failed[0].startswith("# line 2: not an http(s) URL") and "404" in failed[failed.index(lines[6]) - 1]
    assert not (inbox / "list.urls").exists()


@pytest.mark.postgres
def test_a_url_list_that_all_worked_is_processed_as_dropped(
    inbox_settings: Settings, engine: sa.Engine, site: HTTPServer, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "ok.urls").write_text(f"# morning\n{site.url_for('/good')}\n")
    assert drain_inbox(inbox_settings, engine, waiting_files(inbox)).loaded == 1
    assert (inbox / "processed" / "ok.urls").read_text() == f"# morning\n{site.url_for('/good')}\n"
    assert not (inbox / "failed").exists()


@pytest.mark.postgres
def test_nothing_outside_the_inbox_is_read(inbox_settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    secret = outside_secret(tmp_path)
    (secret.parent / "list.urls").write_text("http://127.0.0.1:9/\n")
    (secret.parent / "meta.yaml").write_text(f"title: {OUTSIDE_TEXT}\n")
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "leak.txt").symlink_to(secret)
    (inbox / "leak.urls").symlink_to(secret.parent / "list.urls")
    (inbox / "doc.txt").write_text(GOOD)
    (inbox / "doc.txt.meta.yaml").symlink_to(secret.parent / "meta.yaml")
    (inbox / "sub" / "real.txt").write_text(f"Inside\n\n{GOOD}")
    (inbox / "inside.txt").symlink_to(inbox / "sub" / "real.txt")  # no link is read, even one that stays inside
    (inbox / "loop.txt").symlink_to(inbox / "loop.urls")  # links that lead nowhere but to each other
    (inbox / "loop.urls").symlink_to(inbox / "loop.txt")

    summary = drain_inbox(inbox_settings, engine, waiting_files(inbox))

    assert OUTSIDE_TEXT not in stored_text(engine)
    rows = error_rows(engine)
    assert {name: stage for name, (stage, _) in rows.items()} == {"leak.txt": "inbox", "leak.urls": "inbox",
                                                                  "doc.txt": "inbox", "loop.txt": "inbox",
                                                                  "loop.urls": "inbox", "inside.txt": "inbox",
                                                                  "sub": "inbox"}  # fmt: skip
    assert all("outside the inbox" in rows[name][1] for name in ("leak.txt", "leak.urls", "doc.txt"))
    assert all("is a link" in rows[name][1] for name in ("loop.txt", "loop.urls", "inside.txt"))
    assert "is a folder" in rows["sub"][1]
    assert summary.loaded == 0 and summary.failed == 7
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["doc.txt", "doc.txt.meta.yaml", "inside.txt",
                                                                     "leak.txt", "leak.urls", "loop.txt",
                                                                     "loop.urls", "sub"]  # fmt: skip
    assert not (inbox / "processed").exists()
    assert secret.read_text().startswith(OUTSIDE_TEXT), "the target of a refused link is left alone"


@pytest.mark.postgres
def test_a_fifo_in_the_inbox_is_refused_and_filed(inbox_settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    os.mkfifo(inbox / "pipe.txt")
    os.mkfifo(inbox / "pipe.urls")
    (inbox / "good.txt").write_text(GOOD)
    files = waiting_files(inbox)
    assert [p.name for p in files] == ["good.txt", "pipe.txt", "pipe.urls"]
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(drain_inbox(inbox_settings, engine, files)), daemon=True)
    thread.start()
    thread.join(120)
    if thread.is_alive():
        for name in ("pipe.txt", "pipe.urls"):
            os.close(os.open(inbox / name, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("the drain blocked on a FIFO")
    rows = error_rows(engine)
    assert "is a FIFO, not a regular file" in rows["pipe.txt"][1] and "is a FIFO" in rows["pipe.urls"][1]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["pipe.txt", "pipe.urls"]


# --- the embedded server's data directory ---------------------------------------------------------------------


def parent_is_a_file(tmp_path: Path) -> Path:
    (tmp_path / "data").write_text("a file where the data directory should be")
    return tmp_path / "data" / "pgdata"


def lock_is_a_directory(tmp_path: Path) -> Path:
    (tmp_path / "data" / "pgdata.lock").mkdir(parents=True)
    return tmp_path / "data" / "pgdata"


def read_only_parent(tmp_path: Path) -> Path:
    if os.geteuid() == 0:
        pytest.skip("root is not denied by file modes (the other two cases cover the message)")
    (tmp_path / "data").mkdir(mode=0o500)
    return tmp_path / "data" / "pgdata"


def not_a_data_directory(tmp_path: Path) -> Path:
    """A directory that claims to be PostgreSQL 18's but holds nothing else: the server cannot start on it."""
    (tmp_path / "data" / "pgdata").mkdir(parents=True)
    (tmp_path / "data" / "pgdata" / "PG_VERSION").write_text("18\n")
    return tmp_path / "data" / "pgdata"


def another_postgres_version(tmp_path: Path) -> Path:
    (tmp_path / "data" / "pgdata").mkdir(parents=True)
    (tmp_path / "data" / "pgdata" / "PG_VERSION").write_text("17\n")
    return tmp_path / "data" / "pgdata"


@pytest.mark.parametrize(
    "make", [parent_is_a_file, lock_is_a_directory, read_only_parent, not_a_data_directory, another_postgres_version]
)
def test_an_unusable_embedded_data_directory_says_what_to_do(tmp_path: Path, make: Callable[[Path], Path]) -> None:
    pgdata = make(tmp_path)
    with pytest.raises(DatabaseUnavailableError) as raised:
        embedded_database_url(pgdata)
    message = str(raised.value)
    assert f"cannot use the embedded Postgres data directory {pgdata}" in message
    assert "NEWSFLOW_DATABASE_URL" in message and "NEWSFLOW_DATA_DIR" in message


def test_the_message_names_the_owner_when_it_is_another_user(tmp_path: Path) -> None:
    pgdata = lock_is_a_directory(tmp_path)
    try:
        os.chown(tmp_path / "data" / "pgdata.lock", 4242, 4242)
    except PermissionError:
        pytest.skip("only root can give a directory to another user")
    with pytest.raises(DatabaseUnavailableError, match="owned by uid 4242"):
        embedded_database_url(pgdata)


def test_the_command_line_exits_3_with_the_message(tmp_path: Path) -> None:
    pgdata = parent_is_a_file(tmp_path)
    (tmp_path / "doc.txt").write_text(GOOD)
    env = {key: value for key, value in os.environ.items() if key != "NEWSFLOW_DATABASE_URL"}
    env |= {"PYTHONPATH": str(ROOT), "NEWSFLOW_DATA_DIR": str(pgdata.parent)}
    result = subprocess.run([NEWSFLOW, "ingest", str(tmp_path / "doc.txt")], capture_output=True, text=True,
                            timeout=120, env=env, check=False)  # fmt: skip
    assert result.returncode == 3, result.stdout + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "NEWSFLOW_DATABASE_URL" in " ".join((result.stdout + result.stderr).split())


# --- the inbox under a hostile producer: swaps, rewrites, collisions, squatters, floods --------------------------


def drain(settings: Settings, engine: sa.Engine, inbox: Path) -> RunSummary:
    return drain_inbox(settings, engine, waiting_files(inbox), inbox=inbox)


def articles(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source, concat_ws(' ', title, text) AS text FROM articles"))
        return [(row.source, row.text) for row in rows]


def meanwhile(site: HTTPServer, act: Callable[[], None]) -> str:
    """A URL whose fetch runs ``act`` first: what a producer does while the drain is busy with that URL."""

    def respond(_request: Request) -> Response:
        act()
        page = f"<html><body><article><h1>Busy</h1><p>{GOOD}</p></article></body></html>"
        return Response(page, content_type="text/html")

    site.expect_request("/busy").respond_with_handler(respond)
    return site.url_for("/busy")


def staged(inbox: Path) -> list[str]:
    """What waits in the inbox's staging folders (but the drain's marker)."""
    return sorted(p.name for p in inbox.glob(".draining-*/*") if p.name != STAGING_MARKER)


def swap_for_link(inbox: Path, name: str, target: Path) -> None:
    """Replace every file called ``name`` in the inbox and under it (a staging folder) by a link to ``target``."""
    for path in [inbox / name, *inbox.glob(f".*/{name}"), *inbox.glob(f"*/{name}")]:
        if path.parent.name in {"processed", "failed"}:
            continue
        path.unlink(missing_ok=True)
        path.symlink_to(target)


@pytest.mark.postgres
def test_a_file_swapped_for_a_link_after_it_was_taken_is_not_read(
    inbox_settings: Settings, engine: sa.Engine, site: HTTPServer, tmp_path: Path
) -> None:
    secret = outside_secret(tmp_path)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "b.txt").write_text(f"Inside\n\n{GOOD}")
    (inbox / "b.txt.meta.yaml").write_text("title: Inside\n")
    (secret.parent / "meta.yaml").write_text(f"title: {OUTSIDE_TEXT}\n")
    busy = meanwhile(site, lambda: (swap_for_link(inbox, "b.txt", secret),
                                    swap_for_link(inbox, "b.txt.meta.yaml", secret.parent / "meta.yaml")))  # fmt: skip
    (inbox / "a.urls").write_text(busy + "\n")

    drain(replace(inbox_settings, batch_size=1), engine, inbox)

    assert OUTSIDE_TEXT not in stored_text(engine)
    assert secret.read_text().startswith(OUTSIDE_TEXT)


@pytest.mark.postgres
def test_a_file_rewritten_while_the_drain_runs_waits_for_the_next_drain(
    inbox_settings: Settings, engine: sa.Engine, site: HTTPServer, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    monday, tuesday = f"Monday\n\n{GOOD}", f"Tuesday\n\n{GOOD}"
    later = f"{site.url_for('/good')}\n"

    def rewrite() -> None:
        (inbox / "0daily.txt").write_text(tuesday)
        (inbox / "a.urls").write_text(later)

    (inbox / "0daily.txt").write_text(monday)
    (inbox / "a.urls").write_text(meanwhile(site, rewrite) + "\n")

    drain(replace(inbox_settings, batch_size=1), engine, inbox)

    assert (inbox / "processed" / "0daily.txt").read_text() == monday
    assert (inbox / "0daily.txt").read_text() == tuesday, "the new version waits in the inbox"
    assert (inbox / "a.urls").read_text() == later, "the new list waits in the inbox"
    assert (inbox / "processed" / "a.urls").read_text() == site.url_for("/busy") + "\n"
    assert [text.startswith("Monday") for source, text in articles(engine) if source.endswith("0daily.txt")] == [True]
    drain(inbox_settings, engine, inbox)
    assert [text.startswith("Tuesday") for source, text in articles(engine) if source.endswith("0daily.txt")] == [True]
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["0daily.1.txt", "0daily.txt", "a.1.urls",
                                                                        "a.urls"]  # fmt: skip


@pytest.mark.postgres
def test_names_already_filed_are_never_overwritten(inbox_settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    long_name = "n" * (255 - len(".txt")) + ".txt"
    for version in range(1, 4):
        (inbox / "l.urls").write_text(f"not a url {version}\n")
        (inbox / "d.txt").write_text(f"Version {version}\n\n{GOOD}")
        (inbox / long_name).write_text(f"Long {version}\n\n{GOOD}")
        if version == 1:
            (inbox / "d.txt.meta.yaml").write_text("title: One\n")
        drain(inbox_settings, engine, inbox)

    failed = {p.name: p.read_text() for p in (inbox / "failed").iterdir()}
    assert sorted(failed) == ["l.1.urls", "l.2.urls", "l.urls"]
    assert [sum(f"not a url {n}" in text for text in failed.values()) for n in (1, 2, 3)] == [1, 1, 1]
    processed = {p.name: p.read_text() for p in (inbox / "processed").iterdir()}
    assert {name for name in processed if "n" * 40 not in name} == {"d.txt", "d.txt.meta.yaml", "d.1.txt", "d.2.txt"}
    assert processed["d.txt"].startswith("Version 1") and processed["d.txt.meta.yaml"] == "title: One\n"
    assert processed["d.2.txt"].startswith("Version 3")
    assert sorted(text[:6] for name, text in processed.items() if "n" * 40 in name) == ["Long 1", "Long 2", "Long 3"]
    assert all(len(name.encode()) <= 255 for name in processed)
    stored = articles(engine)
    assert len(stored) == 2, "a file dropped again under its name is the same article"
    assert {source for source, _ in stored} == {str((inbox / "d.txt").resolve()), str((inbox / long_name).resolve())}
    assert any(text.startswith("Version 3") for _, text in stored)


@pytest.mark.postgres
@pytest.mark.parametrize("squat", ["file", "broken link", "link out", "fifo"])
def test_a_squatter_on_a_filing_folder_is_refused_and_the_folder_made(
    inbox_settings: Settings, engine: sa.Engine, tmp_path: Path, squat: str
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("processed", "failed"):
        if squat == "file":
            (inbox / name).write_text("in the way")
        elif squat == "broken link":
            (inbox / name).symlink_to(tmp_path / "nowhere")
        elif squat == "link out":
            (inbox / name).symlink_to(elsewhere)
        else:
            os.mkfifo(inbox / name)
    (inbox / "good.txt").write_text(GOOD)
    (inbox / ("s" * 247 + ".txt")).write_text(GOOD)  # its sidecar's name is too long for the system

    summary = drain(inbox_settings, engine, inbox)

    assert summary.loaded == 2 and summary.failed == 2
    assert not list(elsewhere.iterdir()), "nothing filed through a link"
    for name in ("processed", "failed"):
        assert (inbox / name).is_dir() and not (inbox / name).is_symlink()
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["failed", "processed"]
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["good.txt", "s" * 247 + ".txt"]
    assert set(error_rows(engine)) == {"failed", "processed"}
    assert drain(inbox_settings, engine, inbox).seen == 0, "the next drain finds nothing in the way"


@pytest.mark.postgres
def test_folders_and_orphan_sidecars_are_refused_once_and_filed(
    inbox_settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "sub" / "inner.txt").write_text(GOOD)
    (inbox / "lonely.txt.meta.yaml").write_text("title: Lonely\n")
    (inbox / ".story.tmp").write_text("half written")  # a hidden name: still being written, left alone

    drain(inbox_settings, engine, inbox)

    rows = error_rows(engine)
    assert set(rows) == {"sub", "lonely.txt.meta.yaml"}
    assert "folder" in rows["sub"][1] and "without its document" in rows["lonely.txt.meta.yaml"][1]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["lonely.txt.meta.yaml", "sub"]
    assert (inbox / "failed" / "sub" / "inner.txt").read_text() == GOOD
    assert sorted(p.name for p in inbox.iterdir()) == [".story.tmp", "failed"]


@pytest.mark.postgres
def test_a_squatter_put_in_the_way_during_a_drain_costs_a_row_and_nothing_else(
    inbox_settings: Settings, engine: sa.Engine, site: HTTPServer, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    squatted: list[bool] = []

    def squat() -> None:
        if not squatted:
            (inbox / "failed").write_text("in the way")
            squatted.append(True)

    (inbox / "a.urls").write_text(meanwhile(site, squat) + "\nnope\n")

    drain(inbox_settings, engine, inbox)

    assert "could not file it away" in error_rows(engine)["a.urls"][1]
    assert staged(inbox) == ["a.urls"], "it waits in staging"
    drain(inbox_settings, engine, inbox)
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["a.urls", "failed"]
    assert "# line 2: not an http(s) URL" in (inbox / "failed" / "a.urls").read_text()
    assert sorted(p.name for p in inbox.iterdir()) == ["failed", "processed"]


FLOOD = """
import resource, sys
from pathlib import Path
from dataclasses import replace
import sqlalchemy as sa
from pipeline.settings import Settings
from pipeline.ingest.inbox import drain_inbox, waiting_files
inbox = Path(sys.argv[1])
settings = replace(Settings.from_env(), database_url=sys.argv[2])
engine = sa.create_engine(sys.argv[2])
if len(sys.argv) > 3:
    summary = drain_inbox(settings, engine, waiting_files(inbox), inbox=inbox)
    print(summary.failed)
else:
    print(0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


@pytest.mark.postgres
def test_a_flood_of_lines_costs_a_bounded_memory_and_a_hundred_rows(
    inbox_settings: Settings, engine: sa.Engine, migrated_url: str, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "flood.urls").write_bytes(b"x\n" * 5_000_000)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.run([sys.executable, "-c", FLOOD, str(inbox), migrated_url, *extra], capture_output=True,
                           text=True, timeout=600, env=env, check=False) for extra in ([], ["drain"])]  # fmt: skip
    assert all(run.returncode == 0 for run in runs), runs[-1].stderr[-2000:]
    baseline, drained = (int(run.stdout.split()[-1]) for run in runs)
    assert drained - baseline < 300, f"{drained - baseline} MiB more than draining nothing"
    with engine.connect() as conn:
        rows = conn.scalar(sa.text("SELECT count(*) FROM ingest_errors"))
        limit = conn.scalar(sa.text("SELECT count(*) FROM ingest_errors WHERE error LIKE '%over the limit%'"))
    assert rows <= 102 and limit == 1
    with (inbox / "failed" / "flood.urls").open() as failed:
        assert sum(line == "x\n" for line in failed) == 5_000_000, "every line can be dropped again"


@pytest.mark.postgres
def test_two_drains_at_once_take_each_file_once(inbox_settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for number in range(6):
        (inbox / f"doc{number}.txt").write_text(f"Number {number}\n\n{GOOD}")
    (inbox / "bad.urls").write_text("nope\n")
    outcomes: list[object] = []

    def one_drain() -> None:
        try:
            outcomes.append(drain(inbox_settings, engine, inbox))
        except Exception as error:  # noqa: BLE001 - handed to the test
            outcomes.append(error)

    threads = [threading.Thread(target=one_drain) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert [type(outcome).__name__ for outcome in outcomes] == ["RunSummary", "RunSummary"]
    assert len(articles(engine)) == 6
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == [f"doc{n}.txt" for n in range(6)]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["bad.urls"]
    assert sorted(p.name for p in inbox.iterdir()) == ["failed", "processed"]


@pytest.mark.postgres
def test_a_drain_that_died_is_finished_by_the_next(inbox_settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "doc.txt").write_text(f"Old\n\n{GOOD}")
    (inbox / "doc.txt.meta.yaml").write_text("title: Old\n")
    killed = subprocess.run([sys.executable, "-c", DIES_AFTER_STAGING, str(inbox)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)  # fmt: skip
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (inbox / "doc.txt").exists(), "the dead drain had taken the file"
    (inbox / "doc.txt").write_text(f"New\n\n{GOOD}")  # dropped again meanwhile: the newer version wins

    drain(inbox_settings, engine, inbox)

    assert [text[:3] for _, text in articles(engine)] == ["New"]
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["doc.1.txt", "doc.txt", "doc.txt.meta.yaml"]
    assert (inbox / "processed" / "doc.txt").read_text().startswith("Old")
    assert sorted(p.name for p in inbox.iterdir()) == ["processed"]


DIES_AFTER_STAGING = """
import os, signal, sys
from pathlib import Path
from pipeline.ingest import inbox as module
inbox = Path(sys.argv[1])
with module.DropFolder.locked(inbox) as folder:
    folder.stage(module.waiting_files(inbox))
    os.kill(os.getpid(), signal.SIGKILL)
"""


# --- small hostile inputs: line breaks, BOMs, schemes, credentials, /proc -------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("boms", [0, 1, 40])
def test_front_matter_with_any_line_break_and_boms_is_metadata(newline: str, boms: int) -> None:
    text = "\ufeff" * boms + newline.join(["---", "title: Hello", "---", "", "Body text."])
    metadata, body = split_front_matter(text)
    assert metadata == {"title": "Hello"}
    assert "title" not in body and body.strip() == "Body text."


def test_url_lines_split_on_line_feeds_only() -> None:
    text = "\ufeffhttp://a.example/1\r\nhttp://b.example/x\x85y\nhttp://c.example/\u2028z\n\x1chttp://d.example/\nHTTPS://E.example/Path\n"
    lines = url_lines(text)
    assert [line.number for line in lines] == [1, 2, 3, 4, 5]
    assert [line.refusal is None for line in lines] == [True, False, False, False, True]
    assert lines[0].url == "http://a.example/1" and lines[4].url == "https://E.example/Path"


@pytest.mark.postgres
def test_a_password_in_a_url_list_is_not_recorded(inbox_settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "creds.urls").write_text("http://user:hunter2-SECRET@127.0.0.1:9/a\nhttp://hunter3-SECRET@127.0.0.1:9/b\n")
    drain(inbox_settings, engine, inbox)
    rows = error_rows(engine)
    assert len(rows) == 2 and not any("SECRET" in f"{source} {error}" for source, (_, error) in rows.items())
    with engine.connect() as conn:
        assert "SECRET" not in " ".join(conn.scalars(sa.text("SELECT source || error FROM ingest_errors")))
    assert "SECRET" not in (inbox / "failed" / "creds.urls").read_text()


def test_a_link_to_a_file_that_would_block_is_a_clear_error(tmp_path: Path) -> None:
    if not os.access("/proc/kmsg", os.R_OK):
        pytest.skip("/proc/kmsg cannot be read here")
    (tmp_path / "kmsg.txt").symlink_to("/proc/kmsg")
    # Empty, the kernel's ring would block the read; with messages waiting it reads them up to the limit.
    with pytest.raises(SourceError, match=r"would block|over the 16-byte limit"):
        read_file(tmp_path / "kmsg.txt", max_bytes=16)


def test_a_stale_postmaster_pid_says_what_to_do(tmp_path: Path) -> None:
    pgdata = not_a_data_directory(tmp_path)
    alive = os.getpid()
    (pgdata / "postmaster.pid").write_text(f"{alive}\n{pgdata}\n0\n1\n\n127.0.0.1\n0 0\nready\n")
    with pytest.raises(DatabaseUnavailableError) as raised:
        embedded_database_url(pgdata)
    message = str(raised.value)
    assert f"cannot use the embedded Postgres data directory {pgdata}" in message and "postmaster.pid" in message


# --- red-team round 3: names that are not UTF-8, a drain's time budget, folder sidecars, hard links, fake staging


@pytest.mark.postgres
def test_a_name_that_is_not_utf8_is_refused_filed_and_blocks_nothing(
    inbox_settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    bad = [b"bad\xff.txt", b"\xfe" * 251 + b".txt", b"list\xc3.urls", b"half\xe2\x82.html.gz"]
    for _ in range(2):  # the second time each name is taken in failed/: the numbered names are cut in bytes
        for name in bad:
            with open(os.path.join(os.fsencode(inbox), name), "wb") as stream:
                stream.write(b"http://127.0.0.1:9/x\n" if name.endswith(b".urls") else f"Bad\n\n{GOOD}".encode())
        (inbox / "good.txt").write_text(f"Good\n\n{GOOD}")
        summary = drain(inbox_settings, engine, inbox)
        assert summary.failed == len(bad)

    assert len(articles(engine)) == 1
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source, stage, error FROM ingest_errors")).all()
    assert len(rows) == 2 * len(bad) and {row.stage for row in rows} == {"inbox"}
    assert all("not valid UTF-8" in row.error for row in rows)
    assert sum(row.source.endswith("/bad\\udcff.txt") for row in rows) == 2, "stored escaped"
    failed = [os.fsencode(p.name) for p in (inbox / "failed").iterdir()]
    assert len(failed) == 2 * len(bad) and all(len(name) <= 255 for name in failed)
    assert b"bad\xff.txt" in failed and b"bad\xff.1.txt" in failed
    assert sorted(p.name for p in inbox.iterdir()) == ["failed", "processed"], "nothing waits in staging"


def test_numbered_names_are_cut_in_bytes_whatever_the_name() -> None:
    for raw in [b"\xff" * 300 + b".txt", "é".encode() * 200 + b".html.gz", b"a\xff" * 200]:
        name = os.fsdecode(raw)
        for number in (0, 1, 12345):
            cut = numbered(name, number, 200)
            assert len(os.fsencode(cut)) <= 200 and cut.endswith(name[-3:] if number == 0 else "")
    assert numbered("é" * 200 + ".txt", 1, 11) == "éé.1.txt"  # no half character left at the cut


class FakeClock:
    """A clock that only moves when told: a fetch of ``/tick/N`` takes ``step`` seconds of it."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step
        self.fetched: list[str] = []

    def __call__(self) -> float:
        return self.now

    def tick(self, request: Request) -> Response:
        self.fetched.append(request.path)
        self.now += self.step
        return Response(f"<html><body><article><h1>{request.path}</h1><p>{GOOD}</p></article></body></html>",
                        content_type="text/html")  # fmt: skip


@pytest.mark.postgres
def test_a_drain_stops_at_its_time_budget_and_the_next_takes_up_the_rest(
    inbox_settings: Settings, engine: sa.Engine, site: HTTPServer, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    clock = FakeClock(step=10.0)
    site.expect_request(re.compile(r"/tick/\d+")).respond_with_handler(clock.tick)
    urls = [site.url_for(f"/tick/{n}") for n in range(6)]
    (inbox / "a.urls").write_text("# six slow pages\n" + "\n".join([*urls[:3], "nope", *urls[3:]]) + "\n")
    (inbox / "z.txt").write_text(f"Later\n\n{GOOD}")
    budget = replace(inbox_settings, inbox_drain_seconds=25.0, clock=clock)

    first = drain_inbox(budget, engine, waiting_files(inbox), inbox=inbox)

    assert clock.fetched == [f"/tick/{n}" for n in range(3)], "nothing is fetched once the budget is spent"
    assert first.loaded == 3 and first.failed == 1 and first.inbox_left == 4  # 3 lines and z.txt
    assert set(error_rows(engine)) == {"a.urls:5"}, "what is left waits without an error"
    assert (inbox / "processed" / "a.urls").read_text() == "".join(f"{url}\n" for url in urls[:3])
    assert "nope" in (inbox / "failed" / "a.urls").read_text()
    assert staged(inbox) == ["a.urls", "z.txt"], "left in staging"
    assert (inbox / ".ring").exists(), "the doorbell rings again for the next drain"
    (inbox / ".ring").unlink()  # as the Airflow watcher does

    second = drain_inbox(replace(budget, inbox_drain_seconds=1000.0), engine, waiting_files(inbox), inbox=inbox)

    assert clock.fetched == [f"/tick/{n}" for n in range(6)], "no line is fetched twice"
    assert second.loaded == 4 and second.failed == 0 and second.inbox_left == 0
    assert (inbox / "processed" / "a.1.urls").read_text().split() == urls[3:]
    assert [source.rsplit("/", 1)[-1] for source, _ in articles(engine)].count("z.txt") == 1
    assert sorted(p.name for p in inbox.iterdir()) == ["failed", "processed"]
    assert set(error_rows(engine)) == {"a.urls:5"}


@pytest.mark.postgres
def test_a_sidecar_that_is_a_folder_is_refused_on_its_own(
    inbox_settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "d.txt.meta.yaml").mkdir(parents=True)
    (inbox / "d.txt.meta.yaml" / "inner.txt").write_text(GOOD)
    (inbox / "d.txt").write_text(f"Doc\n\n{GOOD}")

    drain(inbox_settings, engine, inbox)

    rows = error_rows(engine)
    assert set(rows) == {"d.txt", "d.txt.meta.yaml"}
    assert "is a folder" in rows["d.txt.meta.yaml"][1] and "metadata sidecar" in rows["d.txt"][1]
    assert not any("waits in" in error for _, error in rows.values())
    assert (inbox / "failed" / "d.txt.meta.yaml" / "inner.txt").read_text() == GOOD
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["d.txt", "d.txt.meta.yaml"]
    assert sorted(p.name for p in inbox.iterdir()) == ["failed"]


@pytest.mark.postgres
def test_a_hard_link_to_a_file_outside_is_not_read(inbox_settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    secret = outside_secret(tmp_path)
    (secret.parent / "meta.yaml").write_text(f"title: {OUTSIDE_TEXT}\n")
    (secret.parent / "list.urls").write_text("http://127.0.0.1:9/from-outside\n")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    os.link(secret, inbox / "leak.txt")
    os.link(secret.parent / "list.urls", inbox / "leak.urls")
    (inbox / "doc.txt").write_text(GOOD)
    os.link(secret.parent / "meta.yaml", inbox / "doc.txt.meta.yaml")

    drain(inbox_settings, engine, inbox)

    assert OUTSIDE_TEXT not in stored_text(engine)
    rows = error_rows(engine)
    assert set(rows) == {"leak.txt", "leak.urls", "doc.txt"}
    assert all("other hard links" in error for _, error in rows.values())
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["doc.txt", "doc.txt.meta.yaml", "leak.txt",
                                                                     "leak.urls"]  # fmt: skip
    assert secret.read_text().startswith(OUTSIDE_TEXT)


@pytest.mark.postgres
def test_a_staging_folder_the_drain_did_not_make_is_refused(
    inbox_settings: Settings, engine: sa.Engine, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    (inbox / ".draining-fake").mkdir(parents=True)
    (inbox / ".draining-fake" / "planted.txt").write_text(f"{OUTSIDE_TEXT}\n\n{GOOD}")
    (inbox / ".draining-private").mkdir(mode=0o700)
    (inbox / ".draining-private" / "planted.txt").write_text(f"{OUTSIDE_TEXT}\n\n{GOOD}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "planted.txt").write_text(f"{OUTSIDE_TEXT}\n\n{GOOD}")
    (inbox / ".draining-link").symlink_to(outside)
    (inbox / ".draining-file").write_text("not a folder")

    drain(inbox_settings, engine, inbox)

    assert OUTSIDE_TEXT not in stored_text(engine)
    assert set(error_rows(engine)) == {".draining-fake", ".draining-private", ".draining-link", ".draining-file"}
    assert (inbox / "failed" / ".draining-fake" / "planted.txt").exists()
    assert (outside / "planted.txt").exists()
    assert sorted(p.name for p in inbox.iterdir()) == ["failed"]


@pytest.mark.postgres
def test_every_drain_takes_something_even_with_no_budget_left(
    inbox_settings: Settings, engine: sa.Engine, site: HTTPServer, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.urls").write_text(f"{site.url_for('/good')}\n{site.url_for('/gone')}\n")
    (inbox / "b.txt").write_text(f"Bee\n\n{GOOD}")
    spent = replace(inbox_settings, inbox_drain_seconds=0.0)

    taken = [drain(spent, engine, inbox) for _ in range(3)]

    assert [(summary.seen, summary.inbox_left) for summary in taken] == [(1, 2), (1, 1), (1, 0)]
    assert sorted(p.name for p in inbox.iterdir()) == [".ring", "failed", "processed"], "no drain is lost"
