"""Count the module boundaries one ``newsflow ingest FILE`` crosses on its way to the rows.

Runs the CLI in this process under ``sys.setprofile`` and records every call from a function of one
``pipeline`` module into a function of another. A boundary is a distinct (caller function, callee function)
pair across modules; the internals of a stage package (``extract``, ``facts``, ``sections``) count as one
room, so calls between its own modules are not counted, calls into it are.

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

ROOMS = ["pipeline.extract", "pipeline.facts", "pipeline.sections"]


def room(module: str) -> str:
    """The unit a crossing is counted between: a module, or a whole stage package."""
    return next((name for name in ROOMS if module == name or module.startswith(name + ".")), module)


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
    if "--by-module" in sys.argv:  # every module its own room, stage packages included
        ROOMS.clear()
    arguments = [value for value in sys.argv[1:] if not value.startswith("--")]
    edges = walk(arguments)
    modules = {caller.rsplit(".", 1)[0] for caller, _ in edges} | {callee.rsplit(".", 1)[0] for _, callee in edges}
    if show:
        for caller, callee in sorted(edges):
            print(f"{caller} -> {callee}")
        print(Counter(room(callee.rsplit(".", 1)[0]) for _, callee in edges))
    print(f"{len(edges)} boundary crossings over {len({room(m) for m in modules})} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
