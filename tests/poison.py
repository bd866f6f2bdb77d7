"""Poison for the document boundary: documents that raise unexpected exception types at each stage, and real
inputs that used to take a whole run down, beside good documents.

Injected faults key on markers in a document's name or text, so the same corpus is poison while they are
installed and good once they are gone. ``install`` patches the public stage functions the batch step calls;
run as a script, this module installs them in every process, including the ``--workers`` processes that
``spawn`` starts (they import the main module again), and then runs ``newsflow`` with the arguments given.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.db import raw_store  # noqa: E402
from pipeline.facts import batch  # noqa: E402
from pipeline.ingest import step  # noqa: E402
from pipeline.sources import drop_folder  # noqa: E402

GOOD_TEXT = (
    "Talks resume in Istanbul\n\n"
    "Negotiators from both countries met on Thursday, officials said, and agreed to meet again next week "
    "to discuss a ceasefire and the exchange of 1,000 prisoners. “We will be back,” Marco Rubio said.\n\n"
)
DEEP_YAML = "title: " + "[" * 5000 + "]" * 5000 + "\n"


@dataclass(frozen=True)
class Item:
    """One input of the corpus and how it must end: loaded (``stage`` None) or failed at ``stage``."""

    name: str
    body: bytes
    stage: str | None
    sidecar: str | None = None


def text(marker: str, number: int) -> bytes:
    return (GOOD_TEXT + f"Dispatch {number}: {marker} in the closing paragraph of this report.\n").encode()


def html(marker: str, number: int, head: str = "") -> bytes:
    body = "".join(f"<p>{paragraph}</p>" for paragraph in text(marker, number).decode().split("\n\n")[1:])
    return f"<html><head><title>Story {number}</title>{head}</head><body><article><h1>Story {number}</h1>{body}" \
        f"</article></body></html>".encode()  # fmt: skip


def corpus() -> list[Item]:
    """Good documents, injected poison for every stage, and real inputs that used to stop a run."""
    return [
        Item("good-1.txt", text("calm", 1), None),
        Item("good-2.md", b"---\ntitle: Good two\n---\n\n" + text("calm", 2), None),
        Item("good-3.html", html("calm", 3), None),
        Item("poison-read.txt", text("calm", 4), "read"),
        Item("x-extract.html", html("POISON-EXTRACT", 5), "extract"),
        Item("x-facts.txt", text("POISON-FACTS", 6), "facts"),
        Item("x-parse.txt", text("POISON-PARSE", 7), "facts"),
        Item("x-slow.txt", text("POISON-SLOW", 8), "facts"),
        Item("x-load.txt", text("POISON-LOAD", 9), "load"),
        Item("charset-meta.html", html("caf\xe9", 10, '<meta charset="undefined">').replace(b"caf\xc3\xa9", b"caf\xe9"),
             None),
        Item("charset-sidecar.txt", text("calm", 11), None, sidecar="charset: undefined\n"),
        Item("deep-front.md", b"---\n" + DEEP_YAML.encode() + b"---\n\n" + text("calm", 12), "extract"),
        Item("deep-sidecar.txt", text("calm", 13), "read", sidecar=DEEP_YAML),
    ]  # fmt: skip


def write(folder: Path, items: list[Item]) -> list[str]:
    """The corpus as files; their paths, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    for item in items:
        (folder / item.name).write_bytes(item.body)
        if item.sidecar is not None:
            (folder / (item.name + ".meta.yaml")).write_text(item.sidecar, encoding="utf-8")
    return [str(folder / item.name) for item in items]


# Injected faults: unexpected exception types, each where one stage of the batch step meets it.
def _failing_read(real: Callable[..., Any]) -> Callable[..., Any]:
    def read(value: str, fetcher: Any) -> Any:
        if "poison-read" in value:
            raise KeyError("poison at the read stage")
        return real(value, fetcher)

    return read


def _failing_staged_read(real: Callable[..., Any]) -> Callable[..., Any]:
    def read(self: Any, name: str, max_bytes: int) -> Any:
        if "poison-read" in name:
            raise KeyError("poison at the read stage")
        return real(self, name, max_bytes)

    return read


def _failing_extract(real: Callable[..., Any]) -> Callable[..., Any]:
    def extract(raw: Any, name: str) -> Any:
        if b"POISON-EXTRACT" in raw.body:
            return 1 / 0
        return real(raw, name)

    return extract


def _failing_rules(real: Callable[..., Any]) -> Callable[..., Any]:
    def analyse(doc: Any, **kwargs: Any) -> Any:
        if "POISON-FACTS" in doc.text:
            raise IndexError("poison in the rules")
        if "POISON-SLOW" in doc.text:
            time.sleep(30)
        if "POISON-KILL" in doc.text:
            os._exit(137)  # as the OOM killer would end it
        return real(doc, **kwargs)

    return analyse


def _failing_parse(real: Callable[..., Any]) -> Callable[..., Any]:
    def parse(self: Any, texts: Any) -> Iterator[Any]:
        texts = list(texts)
        if any("POISON-PARSE" in value for value in texts):
            raise UnicodeError("poison in the model pass")
        yield from real(self, texts)

    return parse


def _failing_row(real: Callable[..., Any]) -> Callable[..., Any]:
    def raw_values(raw: Any, run_id: int) -> Any:
        if b"POISON-LOAD" in raw.body:
            raise TypeError("poison while building the row")
        return real(raw, run_id)

    return raw_values


FAULTS: list[tuple[Any, str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = [
    (step, "read_input", _failing_read),
    (drop_folder.Staging, "read_document", _failing_staged_read),  # the inbox reads what it staged
    (step, "extract_and_lay_out", _failing_extract),
    (batch, "analyse", _failing_rules),
    (batch.Analyser, "parse", _failing_parse),
    (raw_store, "raw_values", _failing_row),
]


def install(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """Install every fault (``setattr_`` is ``monkeypatch.setattr`` in a test, so they are undone after it)."""
    for owner, name, wrap in FAULTS:
        setattr_(owner, name, wrap(getattr(owner, name)))


if __name__ in {"__main__", "__mp_main__"}:  # run as the command, or re-imported by one of its workers
    install()

if __name__ == "__main__":
    if sys.argv[1:2] == ["process-pending"]:  # the body of news_process's task
        from pipeline.db.engine import create_engine, database_url
        from pipeline.ingest.staged import process_pending
        from pipeline.settings import Settings

        settings = Settings.from_env()
        print(process_pending(settings, create_engine(database_url(settings))).extra())
    else:
        from pipeline.cli import main

        sys.argv = ["newsflow", *sys.argv[1:]]
        main()
