"""Soak: ingest 10,000 documents made from the benchmark pages, and watch errors and memory.

Each document is one of the 181 pages of ../shared/data/article-extraction-benchmark
with a unique variation: its copy number written into the title, the first
paragraph and a closing comment, so every copy is a new article with its own
text. The documents are ingested with ``--workers`` processes into a fresh
database; the resident memory of every process is sampled as it goes.

Prints the figures, writes ``bench/soak.json``; docs/reliability.md quotes them.

    python bench/soak.py [--documents 10000] [--workers 2] [--database-url URL]
    python bench/soak.py --report     # the figures of the last run again
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import PAGES, default_admin_url, fresh_database  # noqa: E402
from pipeline.db.digest import content_digest  # noqa: E402
from pipeline.db.engine import create_engine  # noqa: E402
from pipeline.ingest.parallel import ingest_parallel  # noqa: E402
from pipeline.settings import Settings  # noqa: E402

RESULTS = ROOT / "bench" / "soak.json"
FIRST_PARAGRAPH = re.compile(rb"(<p[^>]*>)", re.IGNORECASE)
TITLE = re.compile(rb"(<title[^>]*>)", re.IGNORECASE)


def build_documents(count: int, folder: Path) -> list[str]:
    """``count`` unique gzipped pages, cycling through the benchmark pages."""
    pages = [gzip.decompress(p.read_bytes()) for p in sorted(PAGES.glob("*.html.gz"))]
    paths = []
    for number in range(count):
        marker = f"Soak copy {number}. ".encode()
        html = TITLE.sub(rb"\g<1>" + marker, pages[number % len(pages)], count=1)
        html = FIRST_PARAGRAPH.sub(rb"\g<1>" + marker, html, count=1)
        path = folder / f"{number:05d}.html.gz"
        path.write_bytes(gzip.compress(html + f"\n<!-- soak {number} -->\n".encode(), 1))
        paths.append(str(path))
    return paths


class MemorySampler(threading.Thread):
    """Resident memory of this process and its children, every ``interval`` seconds."""

    def __init__(self, interval: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.interval, self.samples, self.stopped = interval, [], threading.Event()
        self.progress = 0

    def run(self) -> None:
        me = psutil.Process()
        while not self.stopped.wait(self.interval):
            processes = [me, *me.children(recursive=True)]
            rss = [p.memory_info().rss / 2**20 for p in processes if p.is_running()]
            self.samples.append({"done": self.progress, "max_process_mb": max(rss), "total_mb": sum(rss)})


def soak(arguments: argparse.Namespace) -> dict[str, Any]:
    admin_url = arguments.database_url or default_admin_url()
    url = fresh_database(admin_url, "newsflow_soak")
    settings = replace(Settings.from_env(), database_url=url)
    engine = create_engine(url)
    with tempfile.TemporaryDirectory(prefix="newsflow-soak-") as scratch:
        paths = build_documents(arguments.documents, Path(scratch))
        sampler = MemorySampler()
        sampler.start()

        def advance(count: int) -> None:
            sampler.progress += count

        started = time.perf_counter()
        summary = ingest_parallel(settings, engine, paths, workers=arguments.workers, on_batch=advance)
        seconds = time.perf_counter() - started
        sampler.stopped.set()
    with engine.connect() as conn:
        errors = conn.execute(sa.text("SELECT stage, error FROM ingest_errors")).all()
    return {
        "date": time.strftime("%Y-%m-%d"),
        "documents": arguments.documents,
        "workers": arguments.workers,
        "cpus": os.cpu_count(),
        "seconds": seconds,
        "loaded": summary.loaded,
        "failed": summary.failed,
        "errors": [f"{stage}: {error}" for stage, error in errors],
        "digest": content_digest(engine),
        "memory": sampler.samples,
    }


def report(results: dict[str, Any]) -> list[str]:
    samples = results["memory"]
    tenths = [samples[i * len(samples) // 10 : (i + 1) * len(samples) // 10] for i in range(10)]
    medians = [statistics.median(s["max_process_mb"] for s in tenth) for tenth in tenths if tenth]
    slope = _slope([s["done"] / 1000 for s in samples], [s["max_process_mb"] for s in samples])
    return [
        f"{results['documents']:,} documents, {results['workers']} workers, {results['cpus']} CPUs: "
        f"{results['seconds'] / 60:.1f} min, {results['documents'] / results['seconds']:.2f} docs/s",
        f"loaded {results['loaded']:,}, failed {results['failed']}, error rows {len(results['errors'])}",
        f"articles: {results['digest']['articles']}",
        f"largest process RSS: peak {max(s['max_process_mb'] for s in samples):.0f} MB; median per tenth of the run "
        + " ".join(f"{m:.0f}" for m in medians)
        + f" MB; trend {slope:+.1f} MB per 1,000 documents",
        f"all processes together, peak: {max(s['total_mb'] for s in samples):.0f} MB",
    ]


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread if spread else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--report", action="store_true", help="print the figures of the last soak.json again")
    arguments = parser.parse_args()
    if arguments.report:
        results = json.loads(RESULTS.read_text(encoding="utf-8"))
    else:
        results = soak(arguments)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print("\n".join(report(results)))


if __name__ == "__main__":
    main()
