"""Benchmarks that print figures (``make bench``); targets live here, never in timed unit tests.

``facts``: the facts stage against bare ``nlp.pipe`` over the same texts. The
texts are the article bodies the pipeline extracts from the 181 pages of the
article-extraction benchmark (or any files given). The facts stage must run at
no less than 0.9 times the speed of the bare model, since it runs the model
once per document and adds only rule passes over the parsed docs.
"""

from __future__ import annotations

import gzip
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.extract import ExtractError, extract
from pipeline.nlp import load_model
from pipeline.process import NLP_BATCH_SIZE, FactsError, Laid, lay_out, process_batch
from pipeline.settings import Settings
from pipeline.sources import SourceError, read_file

FACTS_SPEED_TARGET = 0.9
DEFAULT_CORPUS = Path("../shared/data/article-extraction-benchmark/html")
ROUNDS = 3


@dataclass(frozen=True)
class Timing:
    seconds: float
    documents: int
    words: int

    @property
    def words_per_second(self) -> float:
        return self.words / self.seconds if self.seconds else 0.0


def laid_corpus(paths: Iterable[Path]) -> list[Laid]:
    """Extracted and laid-out documents; unreadable pages are skipped, as ingest would record them."""
    laid: list[Laid] = []
    for path in paths:
        try:
            raw = read_file(path)
            laid.append(lay_out(str(path), extract(raw), plain_text=raw.media_type == "text/plain"))
        except (SourceError, ExtractError, gzip.BadGzipFile):
            continue
    return laid


def best_of(rounds: int, run: Callable[[], int], words: int) -> Timing:
    """The fastest of several rounds, which is the least disturbed by the machine's other work."""
    best = float("inf")
    documents = 0
    for _ in range(rounds):
        started = time.perf_counter()
        documents = run()
        best = min(best, time.perf_counter() - started)
    return Timing(best, documents, words)


def facts_speed(settings: Settings, laid: list[Laid]) -> tuple[Timing, Timing]:
    """(bare nlp.pipe, full facts stage) over the same texts, best of ``ROUNDS``."""
    nlp = load_model(settings.spacy_model)
    texts = [item.text for item in laid]
    words = sum(len(text.split()) for text in texts)
    list(nlp.pipe(texts[:NLP_BATCH_SIZE]))  # warm up

    def bare() -> int:
        return sum(1 for _ in nlp.pipe(texts, batch_size=NLP_BATCH_SIZE))

    def facts() -> int:
        return sum(1 for doc in process_batch(nlp, laid) if not isinstance(doc, FactsError))

    return best_of(ROUNDS, bare, words), best_of(ROUNDS, facts, words)


def main(arguments: list[str]) -> int:
    corpus = [Path(a) for a in arguments] or sorted(DEFAULT_CORPUS.glob("*.html.gz"))
    laid = laid_corpus(corpus)
    if not laid:
        print(f"no documents in {corpus[:1] or DEFAULT_CORPUS}", file=sys.stderr)
        return 2
    bare, facts = facts_speed(Settings.from_env(), laid)
    ratio = facts.words_per_second / bare.words_per_second
    print(f"documents: {len(laid)}, words: {bare.words:,}, best of {ROUNDS} rounds")
    print(f"bare nlp.pipe: {bare.seconds:.2f} s, {bare.words_per_second:,.0f} words/s")
    print(f"facts stage:   {facts.seconds:.2f} s, {facts.words_per_second:,.0f} words/s")
    verdict = "ok" if ratio >= FACTS_SPEED_TARGET else "BELOW TARGET"
    print(f"facts / bare speed: {ratio:.3f} (target ≥ {FACTS_SPEED_TARGET}) {verdict}")
    return 0 if ratio >= FACTS_SPEED_TARGET else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
