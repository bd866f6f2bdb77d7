"""The hostile web, measured: each bomb's peak memory and each slow server's fetch time, at the defaults.

Serves tests/hostile.py's scenarios on 127.0.0.1 and fetches each in a child process of its own
(``python -m tests.hostile``), with the default cap (10 MiB) and total deadline (30 s). Prints one row per
scenario; docs/reliability.md quotes them. Takes about two minutes (three fetches wait out the deadline).

    python bench/hostile.py [--deadline 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import hostile  # noqa: E402

MAX_BYTES = 10 * 1024 * 1024
BOMBS = [("gzip",), ("br",), ("gzip", "gzip"), ("deflate", "br"), ("br", "gzip")]


def scenarios(cache: Path) -> dict[str, hostile.Behaviour]:
    slow = {
        "body trickled 1 byte/s": hostile.trickle_body(1.0),
        "headers trickled 1 byte/s": hostile.trickle_head(1.0),
        "body stalled after headers": hostile.stall_after_head(),
    }
    bombs = {f"1 GiB bomb, {', '.join(codings)}": hostile.bomb_response(codings, cache) for codings in BOMBS}
    return {**bombs, **slow}


def measure(url: str, deadline: float) -> dict[str, object]:
    command = [sys.executable, "-m", "tests.hostile", url, str(MAX_BYTES), str(deadline)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    return dict(json.loads(done.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=float, default=30.0)
    args = parser.parse_args()
    print(f"{'scenario':32} {'peak MiB':>9} {'seconds':>8}  error")
    with tempfile.TemporaryDirectory() as cache, hostile.hostile_server() as server:
        for number, (name, behaviour) in enumerate(scenarios(Path(cache)).items()):
            server.route(f"/{number}", behaviour)
            outcome = measure(server.url(f"/{number}"), args.deadline)
            reason = str(outcome["error"]).split(": ", 1)[-1]
            print(f"{name:32} {outcome['peak_mib']:>9} {outcome['seconds']:>8}  {reason}", flush=True)


if __name__ == "__main__":
    main()
