"""Throughput, memory and re-run cost of the whole pipeline against the floors of its stages (``make bench``).

Corpus: the 181 pages of ../shared/data/article-extraction-benchmark plus the seed, scaled xN with each copy
made unique (a comment with its copy number, so every copy is a new document). Prints a table, writes
bench/results.json, appends a dated row to docs/benchmarks.md and redraws docs/images/benchmark.png.

Usage: python bench/run.py [--scales 1,4,16] [--workers 2] [--database-url URL] [--no-airflow]
Without --database-url, the local server at 127.0.0.1:5432 is used when it answers, else the embedded one.
"""

from __future__ import annotations

import argparse
import gzip
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
import trafilatura

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.db import loader, raw_store  # noqa: E402
from pipeline.db.engine import create_engine, embedded_database_url  # noqa: E402
from pipeline.db.migrations import apply_migrations  # noqa: E402
from pipeline.facts.batch import NLP_BATCH_SIZE  # noqa: E402
from pipeline.facts.model import load_model  # noqa: E402
from pipeline.ingest import ingest  # noqa: E402
from pipeline.ingest.parallel import ingest_parallel  # noqa: E402
from pipeline.ingest.step import extract_and_lay_out  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.sources.files import read_file  # noqa: E402

PAGES = ROOT.parent / "shared" / "data" / "article-extraction-benchmark" / "html"
SEED = ROOT / "seeds" / "000_1bc6a02370071b09.txt"
RESULTS = ROOT / "bench" / "results.json"
REPORT = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "images" / "benchmark.png"
AIRFLOW_MAX = 1.3
TARGETS = {
    "end_to_end_vs_floors": 0.8,
    "workers_speedup": 1.6,
    "reingest_speedup": 20.0,
    "load_vs_copy": 0.5,
}


def build_corpus(scale: int, folder: Path) -> list[Path]:
    """The pages and the seed, ``scale`` times, each copy unique by a comment carrying its number."""
    folder.mkdir(parents=True, exist_ok=True)
    originals = sorted(PAGES.glob("*.html.gz"))
    paths: list[Path] = []
    for copy in range(scale):
        for page in originals:
            target = folder / f"{copy:03d}_{page.name}"
            html = gzip.decompress(page.read_bytes()) + f"\n<!-- newsflow bench copy {copy} -->\n".encode()
            target.write_bytes(gzip.compress(html, 1))
            paths.append(target)
        seed = folder / f"{copy:03d}_{SEED.name}"
        seed.write_text(SEED.read_text(encoding="utf-8") + f"\n\nCopy {copy}.\n", encoding="utf-8")
        paths.append(seed)
    return paths


def fresh_database(admin_url: str, name: str) -> str:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    apply_migrations(url, ROOT / "sql")
    return url


def floors(settings: Settings, paths: list[Path], admin_url: str, loaded_url: str) -> dict[str, float]:
    """Seconds for the unavoidable work, each measured alone: extraction, the model, COPY of the stored rows."""
    pages = [gzip.decompress(p.read_bytes()) for p in paths if p.suffix == ".gz"]
    started = time.perf_counter()
    for page in pages:
        trafilatura.extract(page)
    extract_seconds = time.perf_counter() - started
    texts = [extract_and_lay_out(read_file(p), str(p)).text for p in paths]
    nlp = load_model(settings.spacy_model)
    started = time.perf_counter()
    for _ in nlp.pipe(texts, batch_size=NLP_BATCH_SIZE):
        pass
    nlp_seconds = time.perf_counter() - started
    return {"extract": extract_seconds, "nlp": nlp_seconds, "copy": copy_seconds(admin_url, loaded_url)}


# Every table the load stage writes, in foreign-key order, with the columns it sends (not generated ones).
LOADED_TABLES = {
    table: ", ".join(columns)
    for table, columns in {
        "ingest_runs": ("id", "trigger", "started_at", "status"),
        "raw_documents": ("id", *raw_store.RAW_COLUMNS),
        "articles": ("id", *loader.ARTICLE_COLUMNS),
        "sections": loader.SECTION_COLUMNS,
        "entities": ("id", "key", "type", "name"),
        **loader.FACT_COLUMNS,
    }.items()
}


def copy_seconds(admin_url: str, loaded_url: str) -> float:
    """COPY of exactly the rows the pipeline stored, into the same schema (indexes, constraints, generated
    columns) in a fresh database, in one transaction: the floor for writing those rows."""
    dumps = {table: _dump(loaded_url, table, columns) for table, columns in LOADED_TABLES.items()}
    url = fresh_database(admin_url, "newsflow_bench_copy")
    engine = create_engine(url)
    raw = engine.raw_connection()
    try:
        started = time.perf_counter()
        with raw.cursor() as cursor:
            for table, columns in LOADED_TABLES.items():
                cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", io.BytesIO(dumps[table]))
        raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()
        engine.dispose()


def _dump(url: str, table: str, columns: str) -> bytes:
    engine = create_engine(url)
    raw = engine.raw_connection()
    buffer = io.BytesIO()
    try:
        with raw.cursor() as cursor:
            cursor.copy_expert(f"COPY (SELECT {columns} FROM {table} ORDER BY 1) TO STDOUT", buffer)
    finally:
        raw.close()
        engine.dispose()
    return buffer.getvalue()


def stored_row_count(url: str) -> int:
    """Rows the load stage wrote: raw pages, articles, sections, entities and facts."""
    engine = create_engine(url)
    with engine.connect() as conn:
        total = sum(int(conn.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0) for table in LOADED_TABLES)
    engine.dispose()
    return total


def peak_rss_mb(scale: int, admin_url: str, folder: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of a separate process ingesting the corpus at ``scale``."""
    url = fresh_database(admin_url, f"newsflow_bench_rss_{scale}")
    code = (
        "import resource, sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from pathlib import Path\n"
        "from dataclasses import replace\n"
        "from pipeline.settings import Settings\n"
        "from pipeline.db.engine import create_engine\n"
        "from pipeline.ingest import ingest\n"
        f"paths = sorted(str(p) for p in Path({str(folder)!r}).iterdir())\n"
        f"settings = replace(Settings.from_env(), database_url={url!r})\n"
        "started = time.perf_counter()\n"
        "ingest(settings, create_engine(settings.database_url), paths)\n"
        "print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=7200)
    seconds, rss = out.stdout.strip().splitlines()[-1].split()
    return float(seconds), float(rss)


class _PageHandler(http.server.BaseHTTPRequestHandler):
    """Serves the corpus pages (decompressed, as text/html) and an RSS feed listing them."""

    pages: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        if name == "feed.xml":
            self._send(_feed_xml(self.server.server_address[1], sorted(self.pages)), "application/rss+xml")
        elif name in self.pages:
            self._send(self.pages[name], "text/html; charset=utf-8")
        else:
            self.send_error(404)

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        return


def _feed_xml(port: int, names: list[str]) -> bytes:
    items = "".join(f"<item><title>{n}</title><link>http://127.0.0.1:{port}/{n}</link></item>" for n in names)
    return f'<rss version="2.0"><channel><title>bench</title>{items}</channel></rss>'.encode()


def airflow_overhead(admin_url: str) -> dict[str, float]:
    """Wall seconds of `newsflow ingest --feed` and of news_daily + news_process (dag.test) on a local feed
    of the corpus pages, each in a fresh process and a fresh database."""
    _PageHandler.pages = {p.name.removesuffix(".gz"): gzip.decompress(p.read_bytes()) for p in PAGES.glob("*.html.gz")}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    feed = f"http://127.0.0.1:{server.server_address[1]}/feed.xml"
    try:
        with tempfile.TemporaryDirectory() as scratch:
            feeds = Path(scratch) / "feeds.txt"
            feeds.write_text(feed + "\n", encoding="utf-8")
            env = {**os.environ, "NEWSFLOW_ALLOW_PRIVATE_HOSTS": "true", "NEWSFLOW_FETCH_HOST_INTERVAL": "0"}
            env["NEWSFLOW_DATABASE_URL"] = fresh_database(admin_url, "newsflow_bench_cli")
            cli = _timed_run([str(Path(sys.executable).parent / "newsflow"), "ingest", "--feed", feed], env)
            env.update(
                _airflow_env(Path(scratch) / "airflow", feeds, fresh_database(admin_url, "newsflow_bench_airflow"))
            )
            subprocess.run(
                [str(Path(sys.executable).parent / "airflow"), "db", "migrate"],
                env=env,
                capture_output=True,
                check=True,
            )
            code = (
                "from airflow.dag_processing.dagbag import BundleDagBag\n"
                f"dags = {str(ROOT / 'dags')!r}\n"
                "bag = BundleDagBag(dag_folder=dags, bundle_path=__import__('pathlib').Path(dags))\n"
                "for dag_id in ('news_daily', 'news_process'):\n"
                "    assert str(bag.get_dag(dag_id).test().state) == 'success', dag_id\n"
            )
            airflow = _timed_run([sys.executable, "-c", code], env)
    finally:
        server.shutdown()
    return {"cli_seconds": cli, "airflow_seconds": airflow}


def _airflow_env(home: Path, feeds: Path, database_url: str) -> dict[str, str]:
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "NEWSFLOW_FEEDS": str(feeds),
        "NEWSFLOW_DATABASE_URL": database_url,
    }


def _timed_run(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, capture_output=True, check=True, timeout=3600)
    return time.perf_counter() - started


def default_admin_url() -> str:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return "postgresql://postgres@127.0.0.1:5432/postgres"
    except OSError:
        settings = Settings.from_env()
        url = sa.engine.make_url(embedded_database_url(settings.data_dir / "bench-pgdata"))
        return url.set(database="postgres").render_as_string(hide_password=False)


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    admin_url = arguments.database_url or default_admin_url()
    settings = Settings.from_env()
    results: dict[str, Any] = {"date": date.today().isoformat(), "cpus": os.cpu_count(), "scales": {}}
    with tempfile.TemporaryDirectory() as scratch:
        corpus = build_corpus(1, Path(scratch) / "x1")
        inputs = [str(p) for p in corpus]
        url = fresh_database(admin_url, "newsflow_bench_single")
        single_settings = replace(settings, database_url=url)
        engine = create_engine(url)
        load_model(settings.spacy_model)
        started = time.perf_counter()
        first = ingest(single_settings, engine, inputs)
        single = time.perf_counter() - started
        started = time.perf_counter()
        again = ingest(single_settings, engine, inputs)
        reingest = time.perf_counter() - started
        rows = stored_row_count(url)
        floor = floors(settings, corpus, admin_url, url)
        parallel_url = fresh_database(admin_url, "newsflow_bench_parallel")
        parallel_engine = create_engine(parallel_url)
        started = time.perf_counter()
        parallel = ingest_parallel(
            replace(settings, database_url=parallel_url), parallel_engine, inputs, workers=arguments.workers
        )
        workers_seconds = time.perf_counter() - started
        for scale in arguments.scales:
            folder = Path(scratch) / f"rss{scale}"
            build_corpus(scale, folder)
            seconds, rss = peak_rss_mb(scale, admin_url, folder)
            results["scales"][str(scale)] = {"documents": len(corpus) * scale, "seconds": seconds, "peak_rss_mb": rss}
    overhead = airflow_overhead(admin_url) if arguments.airflow else None
    floor_total = floor["extract"] + floor["nlp"] + floor["copy"]
    results.update(
        documents=len(corpus),
        failed=first.failed,
        unchanged_on_rerun=again.unchanged,
        stored_rows=rows,
        floors_seconds=floor,
        single_seconds=single,
        stages_seconds=dict(first.stage_seconds),
        reingest_seconds=reingest,
        workers=arguments.workers,
        workers_seconds=workers_seconds,
        workers_loaded=parallel.loaded,
        airflow=overhead,
        ratios={
            "end_to_end_vs_floors": floor_total / single,
            "workers_speedup": single / workers_seconds,
            "reingest_speedup": single / reingest,
            "load_vs_copy": (rows / first.stage_seconds["load"]) / (rows / floor["copy"]),
            **({"airflow_vs_cli": overhead["airflow_seconds"] / overhead["cli_seconds"]} if overhead else {}),
        },
    )
    return results


def report(results: dict[str, Any]) -> list[str]:
    """Printable lines, and whether each target is met."""
    ratios = results["ratios"]
    lines = [
        f"corpus: {results['documents']} documents, {results['stored_rows']:,} stored rows, {results['cpus']} CPUs",
        "floors (s): " + ", ".join(f"{k} {v:.2f}" for k, v in results["floors_seconds"].items()),
        f"single process: {results['single_seconds']:.1f} s = {_rate(results):.2f} docs/s; stages (s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in results["stages_seconds"].items()),
        f"load stage {results['stored_rows'] / results['stages_seconds']['load']:,.0f} rows/s, COPY of the same rows "
        f"into the same schema {results['stored_rows'] / results['floors_seconds']['copy']:,.0f} rows/s",
        f"--workers {results['workers']}: {results['workers_seconds']:.1f} s; "
        f"re-ingest: {results['reingest_seconds']:.2f} s",
    ]
    for scale, figures in results["scales"].items():
        documents, seconds, rss_mb = figures["documents"], figures["seconds"], figures["peak_rss_mb"]
        lines.append(f"x{scale}: {documents} documents in {seconds:.0f} s, peak RSS {rss_mb:.0f} MB")
    for name, minimum in TARGETS.items():
        verdict = "ok" if ratios[name] >= minimum else "BELOW TARGET"
        lines.append(f"{name}: {ratios[name]:.2f} (target >= {minimum}) {verdict}")
    if results.get("airflow"):
        airflow = results["airflow"]
        verdict = "ok" if ratios["airflow_vs_cli"] <= AIRFLOW_MAX else "ABOVE TARGET"
        lines.append(
            f"airflow (news_daily + news_process) {airflow['airflow_seconds']:.1f} s vs newsflow ingest --feed "
            f"{airflow['cli_seconds']:.1f} s: {ratios['airflow_vs_cli']:.2f} (target <= {AIRFLOW_MAX}) {verdict}"
        )
    rss = [figures["peak_rss_mb"] for figures in results["scales"].values()]
    if len(rss) > 1:
        flat = max(rss) <= 1536 and max(rss) <= 1.15 * rss[0]
        verdict = "ok" if flat else "BELOW TARGET"
        lines.append(f"peak RSS largest/smallest: {max(rss) / rss[0]:.2f} (target <= 1.15, <= 1536 MB) {verdict}")
    return lines


def _rate(results: dict[str, Any]) -> float:
    return float(results["documents"]) / float(results["single_seconds"])


def _airflow_ratio(ratios: dict[str, float]) -> str:
    return f"{ratios['airflow_vs_cli']:.2f}" if "airflow_vs_cli" in ratios else "not run"


def write_outputs(results: dict[str, Any]) -> None:
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    ratios = results["ratios"]
    row = (
        f"| {results['date']} | {results['documents']} | {_rate(results):.2f} | "
        f"{ratios['end_to_end_vs_floors']:.2f} | {ratios['workers_speedup']:.2f} | {ratios['reingest_speedup']:.0f} | "
        f"{ratios['load_vs_copy']:.2f} | {_airflow_ratio(ratios)} | "
        + ", ".join(f"x{s}: {f['peak_rss_mb']:.0f} MB" for s, f in results["scales"].items())
        + " |\n"
    )
    with REPORT.open("a", encoding="utf-8") as handle:
        handle.write(row)
    plot(results)


def plot(results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = results["scales"]
    documents = [f["documents"] for f in scales.values()]
    throughput = [f["documents"] / f["seconds"] for f in scales.values()]
    rss = [f["peak_rss_mb"] for f in scales.values()]
    figure, left = plt.subplots(figsize=(7, 4))
    left.plot(documents, throughput, "o-", color="tab:blue")
    left.set_xlabel("documents ingested (corpus x1, x4, x16)")
    left.set_ylabel("documents/s, one process", color="tab:blue")
    right = left.twinx()
    right.plot(documents, rss, "s--", color="tab:red")
    right.set_ylabel("peak RSS (MB)", color="tab:red")
    right.set_ylim(0, max(rss) * 1.3)
    left.set_ylim(0, max(throughput) * 1.3)
    figure.suptitle(f"newsflow ingest, {results['date']}")
    figure.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(PLOT, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,4,16", type=lambda v: [int(x) for x in v.split(",")])
    parser.add_argument("--workers", default=2, type=int)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--no-airflow", dest="airflow", action="store_false", help="skip the Airflow-overhead run")
    results = run(parser.parse_args())
    for line in report(results):
        print(line)
    write_outputs(results)
    met = all(results["ratios"][k] >= v for k, v in TARGETS.items())
    return 0 if met and results["ratios"].get("airflow_vs_cli", 0) <= AIRFLOW_MAX else 1


if __name__ == "__main__":
    sys.exit(main())
