"""The ``newsflow`` command line: a thin shell over the pipeline package.

Exit status: 0 when every document succeeded, 1 when some failed (the rest
are still loaded), 2 for usage errors, 3 when something systemic stopped the run
(the database or the intake queue cannot be used, the disk is full, the model is missing), 130 when interrupted
(Ctrl-C).
"""

from __future__ import annotations

import io
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.engine import Engine

from pipeline.db import feeds as feed_store
from pipeline.db import open_database
from pipeline.db.engine import database_url, libpq_url, psql_command
from pipeline.errors import DatabaseConnectionLostError, SystemicError
from pipeline.ingest import RunSummary, extract_documents, ingest
from pipeline.ingest.feeds import ingest_feeds
from pipeline.ingest.parallel import ingest_parallel
from pipeline.ingest.queue import enqueue
from pipeline.ingest.websub import queue_publisher
from pipeline.ingest.websub_server import serve, subscribe_feeds
from pipeline.models import Document, Failure
from pipeline.quality import report
from pipeline.quality.evaluation import evaluate, failed_targets, load_gold, total
from pipeline.settings import Settings
from pipeline.sources import expand_inputs
from pipeline.sources.feeds import FeedListError, read_feed_list

EXIT_SOME_FAILED = 1
EXIT_DATABASE = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it

app = typer.Typer(
    help="Newsflow: ingest news into Postgres as sections and facts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a traceback never prints the settings (the database URL) it held
)
db_app = typer.Typer(help="Database commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
feeds_app = typer.Typer(help="Feed health: which feeds fail, back off or are disabled.", no_args_is_help=True)
app.add_typer(feeds_app, name="feeds")
console = Console(stderr=True)


class OutputFormat(StrEnum):
    jsonl = "jsonl"
    json = "json"


@app.command("ingest")
def ingest_command(
    inputs: Annotated[list[str] | None, typer.Argument(help="Files, directories or URLs; default: seeds/.")] = None,
    feed: Annotated[list[str] | None, typer.Option("--feed", help="An RSS/Atom feed URL (repeatable).")] = None,
    feeds: Annotated[bool, typer.Option("--feeds", help="Poll every feed in the feed list (NEWSFLOW_FEEDS).")] = False,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Processes for files and pages (one model each).")
    ] = 1,
) -> None:
    """Load documents into Postgres: one transaction per document, idempotent."""
    settings = Settings.from_env()
    feed_urls = [*(feed or []), *(_feed_list(settings) if feeds else [])]
    sources = list(expand_inputs(inputs or ([] if feed_urls else [str(settings.seeds_dir)])))
    engine = _ready_engine(settings)
    summaries: list[RunSummary] = []
    request = _Request(sources, feed_urls, workers)
    try:
        summaries.extend(_run_ingest(settings, engine, request))
    except SystemicError as error:
        for summary in summaries:
            _print_summary(summary)
        console.print(f"[red]stopped:[/] {_stop_message(error, request)}", highlight=False)
        raise typer.Exit(EXIT_DATABASE) from error
    except KeyboardInterrupt as error:
        console.print(f"[red]interrupted:[/] {_interrupt_message(error)}", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from error
    for summary in summaries:
        _print_summary(summary)
    hidden = '  (password not shown; psql "$(newsflow db url)" passes it)' if engine.url.password else ""
    console.print(f"Look at the data: {psql_command(engine)}{hidden}", soft_wrap=True, highlight=False)
    if any(summary.failures for summary in summaries):
        raise typer.Exit(EXIT_SOME_FAILED)


@dataclass(frozen=True)
class _Request:
    """What one ``newsflow ingest`` was asked for."""

    sources: list[str]
    feed_urls: list[str]
    workers: int
    done: list[int] = field(default_factory=lambda: [0])  # sources with an outcome so far
    feeds_done: list[bool] = field(default_factory=lambda: [False])  # the feed run ended

    def count(self, documents: int = 1) -> None:
        self.done[0] += documents


def _stop_message(error: SystemicError, request: _Request) -> str:
    """Why the run stopped; a lost database connection says how many documents were not loaded, in plain words."""
    if isinstance(error, DatabaseConnectionLostError):
        feeds_left = 0 if request.feeds_done[0] else len(request.feed_urls)
        not_loaded = max(0, len(request.sources) - request.done[0])
        return str(DatabaseConnectionLostError.for_documents(not_loaded, feeds_left))
    return str(error)


def _interrupt_message(error: KeyboardInterrupt) -> str:
    """What an interrupted run left: its notes (the run's record not written), else the ordinary outcome."""
    notes = getattr(error, "__notes__", None) or ["the run's record says it was stopped; what was stored stays"]
    return "; ".join(notes) + "; run the same command again to finish"


def _run_ingest(settings: Settings, engine: Engine, request: _Request) -> Iterator[RunSummary]:
    """Each run's summary as it ends (feeds first); a systemic error stops the rest."""
    with _progress() as progress:
        if request.feed_urls:
            task = progress.add_task("polling feeds", total=None)
            summary = ingest_feeds(settings, engine, request.feed_urls, on_document=lambda _s: progress.advance(task))
            request.feeds_done[0] = True
            yield summary
        if request.sources:
            task = progress.add_task("ingesting", total=len(request.sources))
            advance = partial(_advance, progress, task, request)
            if request.workers > 1:
                yield ingest_parallel(settings, engine, request.sources, workers=request.workers, on_batch=advance)
            else:
                yield ingest(settings, engine, request.sources, on_document=lambda _s: advance(1))


def _advance(progress: Progress, task: TaskID, request: _Request, documents: int) -> None:
    progress.advance(task, documents)
    request.count(documents)


def _feed_list(settings: Settings) -> list[str]:
    path = settings.feeds_path or settings.seeds_dir / "feeds.yaml"
    try:
        return read_feed_list(path)
    except FeedListError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from error


@app.command("extract")
def extract_command(
    inputs: Annotated[list[str], typer.Argument(help="Files, directories or URLs.")],
    published: Annotated[str | None, typer.Option(help="Anchor date YYYY-MM-DD when a document has none.")] = None,
    output_format: Annotated[OutputFormat, typer.Option("--format", help="jsonl: one object per line.")] = (
        OutputFormat.jsonl
    ),
) -> None:
    """Print the Document JSON of each input, in input order; no database needed."""
    anchor = _parse_anchor(published)
    indent = 2 if output_format is OutputFormat.json else None
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="backslashreplace")  # a lone surrogate in a page never ends the output
    try:
        failed = _print_documents(extract_documents(Settings.from_env(), inputs, anchor=anchor), anchor, indent)
    except SystemicError as error:
        console.print(f"[red]stopped:[/] {error}", highlight=False)
        raise typer.Exit(EXIT_DATABASE) from error
    if failed:
        raise typer.Exit(EXIT_SOME_FAILED)


def _print_documents(items: Iterable[Document | Failure], anchor: date | None, indent: int | None) -> int:
    """Write each document's JSON (or its error) as it comes; the number that failed."""
    failed = 0
    for item in items:
        if isinstance(item, Failure):
            failed += 1
            payload = {"source": item.source, "error": f"{item.stage}: {item.error}"}
        else:
            payload = item.to_json()
            if payload["published_at"] is None and anchor is not None:
                payload["published_at"] = anchor.isoformat()
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=indent) + "\n")
    return failed


@app.command("evaluate")
def evaluate_command(
    gold_dir: Annotated[Path, typer.Argument(help="Directory of gold annotations (*.json).")] = Path("tests/gold"),
    show_misses: Annotated[bool, typer.Option("--show-misses", help="List what each document got wrong.")] = False,
) -> None:
    """Score extraction against hand-made gold annotations; exit 1 when a target is missed."""
    try:
        gold_documents = load_gold(gold_dir)
    except (OSError, ValueError) as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from error
    results = []
    with _progress() as progress:
        task = progress.add_task("evaluating", total=len(gold_documents))
        for result in evaluate(Settings.from_env(), gold_documents):
            results.append(result)
            progress.advance(task)
    report.print_evaluation(results, show_misses=show_misses)
    if failed_targets(total(r.scores for r in results)) or any(r.error for r in results):
        raise typer.Exit(EXIT_SOME_FAILED)


@app.command("enqueue")
def enqueue_command(
    inputs: Annotated[list[str], typer.Argument(help="URLs, files or directories to publish.")],
    origin: Annotated[str | None, typer.Option(help="Who publishes (kept with each message).")] = None,
) -> None:
    """Publish URLs and documents to the durable intake queue (NEWSFLOW_QUEUE_URL) that news_events drains."""
    settings = Settings.from_env()
    try:
        done = enqueue(settings, inputs, origin=origin)
    except SystemicError as error:
        console.print(f"[red]stopped:[/] {error}; nothing was published", highlight=False)
        raise typer.Exit(EXIT_DATABASE) from error
    for value, message_id in done.published.items():
        typer.echo(f"{message_id}\t{value}")
    for failure in done.failures:
        console.print(f"[red]not published[/] {failure.source} ({failure.stage}): {failure.error}", highlight=False)
    console.print(f"published {len(done.published)} message(s) to {settings.queue_stream}", highlight=False)
    if done.failures:
        raise typer.Exit(EXIT_SOME_FAILED)


@db_app.command("url")
def db_url_command() -> None:
    """Print the connection URL in use, so `psql "$(newsflow db url)"` works."""
    typer.echo(libpq_url(database_url(Settings.from_env())))


@db_app.command("migrate")
def db_migrate_command() -> None:
    """Apply the SQL migrations in sql/."""
    settings = Settings.from_env()
    _ready_engine(settings, announce=True)


@feeds_app.command("health")
def feeds_health_command(
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Show only the N worst feeds.")] = None,
) -> None:
    """Show every feed's health (v_feed_health), worst first."""
    rows = feed_store.feed_health(_ready_engine(Settings.from_env()), limit=limit)
    Console(soft_wrap=False).print(report.feed_health_table(rows))


@feeds_app.command("enable")
def feeds_enable_command(url: Annotated[str, typer.Argument(help="The feed's URL, as in the feed list.")]) -> None:
    """Enable a disabled feed again, resetting its failure count and backoff."""
    if not feed_store.enable_feed(_ready_engine(Settings.from_env()), url):
        console.print(f"[red]error:[/] no feed {escape(url)} was ever polled (newsflow feeds health lists them)")
        raise typer.Exit(2)
    console.print(f"enabled {escape(url)}: polled again from the next run", highlight=False)


def _ready_engine(settings: Settings, *, announce: bool = False) -> Engine:
    try:
        engine, applied = open_database(settings)
    except SystemicError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(EXIT_DATABASE) from error
    if applied or announce:
        console.print(f"migrations applied: {', '.join(applied) if applied else 'none pending'}")
    return engine


def _parse_anchor(published: str | None) -> date | None:
    if published is None:
        return None
    try:
        return date.fromisoformat(published)
    except ValueError as error:
        raise typer.BadParameter(f"{published!r} is not a date in YYYY-MM-DD form", param_hint="--published") from error


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _print_summary(summary: RunSummary) -> None:
    table = Table(title=f"ingest run {summary.run_id}")
    row = summary.table_row()
    for column in row:
        table.add_column(column, justify="right")
    table.add_row(*(str(value) for value in row.values()))
    console.print(table)
    if row["documents"] and row["unchanged"] == row["documents"]:
        console.print("Nothing changed: every document was already stored.")
    for failure in summary.failures:
        console.print(f"[red]failed[/] {failure.source} ({failure.stage}): {failure.error}")
    for url, why in summary.feeds_skipped.items():
        console.print(f"[yellow]skipped[/] {escape(url)}: {escape(why)}", highlight=False)


websub_app = typer.Typer(help="WebSub push: subscribe feeds at their hubs, receive what the hubs deliver.")
app.add_typer(websub_app, name="websub", no_args_is_help=True)


@websub_app.command("subscribe")
def websub_subscribe_command(
    feeds: Annotated[list[str], typer.Argument(help="Feed URLs; each is subscribed at the hub it advertises.")],
) -> None:
    """Subscribe feeds at their WebSub hubs (the receiver, `newsflow websub serve`, answers the hubs)."""
    settings = Settings.from_env()
    if settings.websub_callback_url is None:
        console.print("[red]error:[/] set NEWSFLOW_WEBSUB_CALLBACK_URL to the receiver's public https:// address")
        raise typer.Exit(2)
    outcomes = subscribe_feeds(settings, _ready_engine(settings), feeds, settings.websub_callback_url)
    for outcome in outcomes:
        said = f" at {outcome.hub}" if outcome.hub else ""
        reason = f" ({outcome.reason})" if outcome.reason else ""
        console.print(f"{outcome.feed_url}: {outcome.state}{said}{reason}", soft_wrap=True, markup=False)
    if any(outcome.state == "failed" for outcome in outcomes):
        raise typer.Exit(EXIT_SOME_FAILED)


@websub_app.command("serve")
def websub_serve_command() -> None:
    """Run the WebSub receiver: answer hubs' verifications, take their signed deliveries, renew leases."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = Settings.from_env()
    engine, stop = _ready_engine(settings), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # docker stop: stop listening, then end
    try:
        ready = partial(_say, "WebSub receiver on {}")
        serve(settings, engine, queue_publisher(settings), ready, stop)
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _say(template: str, value: str) -> None:
    console.print(template.format(value), soft_wrap=True, markup=False)


def main() -> None:
    app()
