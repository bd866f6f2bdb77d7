"""Rich tables for the command line: what a run or an evaluation found."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.db.feeds import FeedHealth
from pipeline.quality.evaluation import TARGETS, DocumentResult, Score, failed_targets, total

console = Console()


def print_evaluation(results: Sequence[DocumentResult], *, show_misses: bool) -> None:
    """Per-metric precision, recall and F1 over all documents, the targets, and optionally every miss."""
    pooled = total(r.scores for r in results)
    failed = {t.metric for t in failed_targets(pooled)}
    table = Table(title=f"evaluation on {len(results)} gold documents (micro-averaged)")
    for column in ("metric", "gold", "precision", "recall", "F1", "target"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for metric, score in pooled.items():
        table.add_row(
            metric, str(score.true_positives + score.false_negatives), *_figures(score), _target(metric, failed)
        )
    console.print(table)
    for result in results:
        if result.error:
            console.print(f"[red]failed[/] {result.gold.path.name}: {result.error}")
        elif show_misses:
            _print_misses(result)
    console.print("[red]targets missed: " + ", ".join(sorted(failed)) if failed else "[green]all targets met")


def _figures(score: Score) -> tuple[str, str, str]:
    return f"{score.precision:.3f}", f"{score.recall:.3f}", f"{score.f1:.3f}"


def _target(metric: str, failed: set[str]) -> str:
    target = next((t for t in TARGETS if t.metric == metric), None)
    if target is None:
        return ""
    mark = "[red]✗[/]" if metric in failed else "[green]✓[/]"
    return f"{target.measure} ≥ {target.minimum:.2f} {mark}"


def _print_misses(result: DocumentResult) -> None:
    misses = [(metric, miss) for metric, score in result.scores.items() for miss in score.misses]
    if misses:
        console.print(f"[bold]{result.gold.path.name}[/]")
    for metric, miss in misses:
        console.print(f"  {metric}: {miss}", highlight=False)


STATE_STYLES = {"disabled": "red", "failing": "yellow", "new": "dim", "ok": "green"}


def feed_health_table(rows: Sequence[FeedHealth]) -> Table:
    """``newsflow feeds health``: one row per feed, worst first, as ``v_feed_health`` has them."""
    table = Table(title=f"feed health: {len(rows)} feeds, worst first")
    for column in ("feed", "state", "failures", "last error", "last error at", "last success", "last new entry",
                   "entries/day", "next poll"):  # fmt: skip
        table.add_column(column, justify="right" if column in {"failures", "entries/day"} else "left")
    for row in rows:
        error = f"[{row.last_error_stage}] {row.last_error}" if row.last_error else ""
        why = f"\n{row.disabled_reason}" if row.disabled_reason else ""
        state = f"[{STATE_STYLES.get(row.state, '')}]{row.state}[/]"
        next_poll = _when(row.next_poll_at) if row.state == "failing" else ""
        table.add_row(escape(row.feed_url), state, str(row.consecutive_failures), escape(error + why),
                      _when(row.last_error_at), _when(row.last_success_at), _when(row.last_new_entry_at),
                      f"{row.entries_per_day:.2f}", next_poll)  # fmt: skip
    return table


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if moment is not None else ""
