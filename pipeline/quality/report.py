"""Rich tables for the command line: what a run or an evaluation found."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

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
