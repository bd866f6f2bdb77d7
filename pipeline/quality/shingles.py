"""The article-extraction benchmark's metric: 4-gram shingles of ``\\w+`` tokens.

Per page, the true positives, false positives and false negatives over the
shingle sets are normalised to sum to 1; precision and recall are averaged
over pages, and F1 is taken of the two averages (as the benchmark's own
evaluation does).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

SHINGLE_SIZE = 4


def shingles(text: str, size: int = SHINGLE_SIZE) -> set[tuple[str, ...]]:
    tokens = re.findall(r"\w+", text.lower())
    return {tuple(tokens[i : i + size]) for i in range(max(1, len(tokens) - size + 1))} if tokens else set()


@dataclass(frozen=True)
class PageScore:
    precision: float
    recall: float


def score_page(expected: str, found: str) -> PageScore:
    """Precision and recall of one page's extracted text against its true body."""
    truth, got = shingles(expected), shingles(found)
    true_positive = len(truth & got)
    false_positive = len(got - truth)
    false_negative = len(truth - got)
    total = true_positive + false_positive + false_negative
    if total == 0:
        return PageScore(1.0, 1.0)
    tp, fp, fn = true_positive / total, false_positive / total, false_negative / total
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return PageScore(precision, recall)


def f1_of_averages(pages: Iterable[PageScore]) -> tuple[float, float, float]:
    """(precision, recall, F1): the averages over pages and the F1 of those averages."""
    scores = list(pages)
    if not scores:
        return 0.0, 0.0, 0.0
    precision = sum(s.precision for s in scores) / len(scores)
    recall = sum(s.recall for s in scores) / len(scores)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
