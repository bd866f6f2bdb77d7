"""The bad-input catalogue: each item ends as an error row (document, stage, reason) or as a clean load,
the good documents beside it are kept, the exit status says some failed, and a re-run changes nothing."""

from __future__ import annotations

import gzip
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.db.digest import content_digest

from .conftest import BENCHMARK, SEED

pytestmark = pytest.mark.postgres
ARTICLE = (
    "Talks resume in Istanbul\n\n"
    "Negotiators from both countries met on Thursday, officials said, and agreed to meet again next week "
    "to discuss a ceasefire and the exchange of 1,000 prisoners.\n\n"
)
SQL_TITLE = "Robert'); DROP TABLE articles; -- \\N $$ %s %(x)s {0}"
SQL_BODY = (
    "The minister wrote: '; DELETE FROM quotes WHERE '1'='1'; -- and also $$ COPY articles TO STDOUT $$, "
    "a backslash \\N, E'\\\\x41', \"double\" quotes, 100% sure, %(name)s and {placeholder} in the text.\n\n"
)


@dataclass(frozen=True)
class Bad:
    """A catalogue item that must end as an error row at ``stage`` with ``reason`` in its message."""

    name: str
    body: bytes
    stage: str
    reason: str


def catalogue(folder: Path) -> tuple[list[Bad], list[str]]:
    """Write every item; returns the bad ones and the names of those that must load cleanly."""
    junk = random.Random(7).randbytes(20_000)
    page = b"<html><head><title>Big</title></head><body><article>" + b"<p>" + b"word " * 200 + b"</p>\n"
    bad = [
        Bad("empty.txt", b"", "read", "empty document"),
        Bad("blank.md", b"  \n\n \t\n", "read", "empty document"),
        Bad("junk.html", junk, "extract", "binary data"),
        Bad("corrupt.html.gz", b"\x1f\x8b\x08\x00" + junk[:500], "read", "corrupt gzip"),
        Bad("bomb.html.gz", gzip.compress(b"<p>" + b"a" * 12_000_000), "read", "over the"),
        Bad("huge.html", page * (40_000_000 // len(page)), "read", "over the"),
        Bad("nested.html", b"<html><body>" + b"<div>" * 100_000 + b"<p>Deep.</p>" + b"</div>" * 100_000, "extract",
            "no main text"),
        Bad("long.txt", ("A sentence that goes on. " * 80_000).encode(), "facts", "over the model"),
    ]  # fmt: skip
    for item in bad:
        (folder / item.name).write_bytes(item.body)
    clean = {
        "nul.txt": ARTICLE.replace("met on", "met\x00 on").encode() + b"\x00trailing NUL\x00\n",
        "quotes.txt": (ARTICLE + '"This will never end, he said. And “another one begins. ‘Half a quote\n\n').encode(),
        "dates.txt": (
            ARTICLE + "They met on February 30, 2025, on 31/31/2025, in the year 99999, on December 25, 3025 and "
            "on 0000-00-00, and will meet again on Thursday, 45 March.\n\n"
        ).encode(),
        "sql.txt": (ARTICLE + SQL_BODY).encode(),
        "latin1.txt": (ARTICLE + "Le café de São Paulo, naïve façade, 20 °C.\n\n").encode("latin-1"),
        "mislabelled.html": (
            b'<html><head><meta charset="utf-8"><title>Talks</title></head><body><article><h1>Talks resume</h1>'
            b"<p>\x93We will meet again,\x94 the minister said on Thursday in Istanbul, where the talks resumed "
            b"after three years of war and two failed attempts at a ceasefire.</p></article></body></html>"
        ),
    }
    for name, body in clean.items():
        (folder / name).write_bytes(body)
    (folder / "sql.txt.meta.yaml").write_text(f"title: {SQL_TITLE!r}\n", encoding="utf-8")
    (folder / "nul.txt.meta.yaml").write_text('title: "NUL\\0 in the title"\n', encoding="utf-8")
    return bad, list(clean)


def test_the_whole_catalogue_beside_good_documents(
    migrated_url: str, engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad, clean = catalogue(tmp_path)
    shutil.copy(SEED, tmp_path / SEED.name)
    for page in sorted((BENCHMARK / "html").glob("*.html.gz"))[:2]:
        shutil.copy(page, tmp_path / page.name)
    good = [SEED.name, *clean, *(p.name for p in sorted((BENCHMARK / "html").glob("*.html.gz"))[:2])]
    monkeypatch.setenv("NEWSFLOW_DATABASE_URL", migrated_url)

    first = CliRunner().invoke(app, ["ingest", str(tmp_path), str(tmp_path / "missing.txt")])
    assert first.exit_code == 1, first.output
    errors = _errors(engine)
    for item in bad:
        stage, error = errors.pop(str((tmp_path / item.name).resolve()))
        assert (stage, item.reason in error) == (item.stage, True), (item.name, error)
    assert errors.pop(str(tmp_path / "missing.txt"))[1].startswith("no such file")
    assert errors == {}
    assert _loaded(engine) == sorted(str((tmp_path / name).resolve()) for name in good)
    _assert_verbatim(engine, tmp_path)

    digest = content_digest(engine)
    again = CliRunner().invoke(app, ["ingest", str(tmp_path), str(tmp_path / "missing.txt")])
    assert again.exit_code == 1
    assert content_digest(engine) == digest


def _errors(engine: sa.Engine) -> dict[str, tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source, stage, error FROM ingest_errors ORDER BY id")).all()
    found: dict[str, tuple[str, str]] = {}
    for source, stage, error in rows:
        assert source not in found, f"two error rows for {source}"
        found[source] = (stage, error)
    return found


def _loaded(engine: sa.Engine) -> list[str]:
    with engine.connect() as conn:
        return sorted(conn.scalars(sa.text("SELECT source FROM articles")))


OFFSETS_HOLD = """
SELECT count(*) FROM (
    SELECT f.article_id, f.start_offset, f.end_offset, f.mention AS stored FROM entity_mentions f
    UNION ALL SELECT f.article_id, f.start_offset, f.end_offset, f.quote FROM quotes f
    UNION ALL SELECT f.article_id, f.start_offset, f.end_offset, f.mention FROM dates f
    UNION ALL SELECT f.article_id, f.start_offset, f.end_offset, f.mention FROM quantities f
) AS facts JOIN articles a ON a.id = facts.article_id
WHERE substr(a.text, facts.start_offset + 1, facts.end_offset - facts.start_offset) <> facts.stored
"""


def _assert_verbatim(engine: sa.Engine, folder: Path) -> None:
    """Stored exactly: the title (sent by execute_values) and the text of sections (sent by COPY)."""
    with engine.connect() as conn:
        rows = {
            Path(source).name: (title, text)
            for source, title, text in conn.execute(sa.text("SELECT source, title, text FROM articles"))
        }
        bodies = " ".join(conn.scalars(sa.text("SELECT body FROM sections")))
        misplaced = conn.scalar(sa.text(OFFSETS_HOLD))
    assert rows["sql.txt"][0] == SQL_TITLE
    assert SQL_BODY.strip() in rows["sql.txt"][1] and SQL_BODY.strip() in bodies
    assert misplaced == 0
    assert rows["nul.txt"][0] == "NUL in the title" and "\x00" not in rows["nul.txt"][1]
    assert "café de São Paulo, naïve façade" in rows["latin1.txt"][1]
    assert "“We will meet again,”" in rows["mislabelled.html"][1]
