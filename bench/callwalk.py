"""Count the module boundaries one ``newsflow ingest FILE`` crosses on its way to the rows.

Runs the CLI in this process under ``sys.setprofile`` and records every call from a function of one
``pipeline`` module into a function of another. A boundary is a distinct (caller function, callee function)
pair across rooms, a room being a top-level module or package of ``pipeline``: calls between the modules of
one package are not counted, calls into it are. ``--by-module`` counts every module as its own room.

Usage: python bench/callwalk.py FILE [--show] [--by-module]
(the database is NEWSFLOW_DATABASE_URL, else the embedded one)
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BY_MODULE: list[bool] = []
BASE_LAYER = ("pipeline.models.", "pipeline.settings.", "pipeline.errors.", "pipeline.metadata.")


def room(module: str) -> str:
    """The unit a crossing is counted between: a top-level module or package of ``pipeline`` (a room of the
    house: ``pipeline.db``, ``pipeline.ingest``, ``pipeline.cli``, …), or with ``--by-module`` every module."""
    return module if BY_MODULE else ".".join(module.split(".")[:2])


def walk(arguments: list[str]) -> set[tuple[str, str]]:
    """Distinct cross-room call edges, as ("module.function", "module.function")."""
    edges: set[tuple[str, str]] = set()

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call" or frame.f_back is None:
            return
        callee, caller = frame.f_globals.get("__name__", ""), frame.f_back.f_globals.get("__name__", "")
        if callee.startswith("pipeline") and caller.startswith("pipeline") and room(callee) != room(caller):
            edges.add((f"{caller}.{frame.f_back.f_code.co_name}", f"{callee}.{frame.f_code.co_name}"))

    from pipeline.cli import app

    sys.setprofile(profile)
    try:
        app(["ingest", *arguments], standalone_mode=False)
    finally:
        sys.setprofile(None)
    return edges


def main() -> int:
    show = "--show" in sys.argv
    if "--by-module" in sys.argv:
        BY_MODULE.append(True)
    arguments = [value for value in sys.argv[1:] if not value.startswith("--")]
    edges = walk(arguments)
    modules = {caller.rsplit(".", 1)[0] for caller, _ in edges} | {callee.rsplit(".", 1)[0] for _, callee in edges}
    if show:
        for caller, callee in sorted(edges):
            print(f"{caller} -> {callee}")
        print(Counter(room(callee.rsplit(".", 1)[0]) for _, callee in edges))
    rooms = {room(m) for m in modules}
    pairs = {(room(a.rsplit(".", 1)[0]), room(b.rsplit(".", 1)[0])) for a, b in edges}
    into_rooms = {(a, b) for a, b in edges if not b.startswith(BASE_LAYER)}
    print(f"{len(edges)} boundary crossings (caller → callee functions) over {len(rooms)} rooms;", end=" ")
    print(f"{len(pairs)} room pairs")
    print(f"{len(into_rooms)} of them into rooms other than the data model, settings and errors everyone uses")
    return 0


if __name__ == "__main__":
    sys.exit(main())
