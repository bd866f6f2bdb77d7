"""Score ``newsflow extract`` output against hand-made gold annotations (``tests/gold/``).

Pure functions over the Document JSON (the public shape) and the gold JSON, so
the scores are the ones a user of the CLI would get. Texts are compared after
normalising quotation marks, apostrophes, dashes, whitespace and trailing
punctuation. Gold entries marked ``optional`` are neither rewarded nor
penalised. Direct quotes are scored with ``partial`` ones, since the gold calls
every quoted piece of speech direct.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pipeline.ingest import extract_documents
from pipeline.models import Failure
from pipeline.settings import Settings

Json = Mapping[str, Any]

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‛": "'", "–": "-", "—": "-"})
_EDGE = " \t\n\"'.,;:!?…-"
_ARTICLE = re.compile(r"^(the|a|an)\s+")


def normalise(text: str | None) -> str:
    """Comparison form: NFKC, straight quotes, single spaces, casefolded, no edge punctuation."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    return re.sub(r"\s+", " ", folded).strip(_EDGE).casefold()


def normalise_name(name: str | None) -> str:
    """Names also drop a leading article and a possessive: "the Kremlin's" ~ "Kremlin"."""
    text = _ARTICLE.sub("", normalise(name))
    return re.sub(r"'s?$", "", text)


@dataclass
class Score:
    """Counts for one metric; precision and recall are None when they do not apply."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    misses: list[str] = field(default_factory=list)

    def add(self, other: Score) -> None:
        self.true_positives += other.true_positives
        self.false_positives += other.false_positives
        self.false_negatives += other.false_negatives
        self.misses.extend(other.misses)

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        expected = self.true_positives + self.false_negatives
        return self.true_positives / expected if expected else 1.0

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


@dataclass(frozen=True)
class Target:
    metric: str
    measure: str  # "precision", "recall" or "f1"
    minimum: float


TARGETS = (
    Target("headings", "f1", 1.0),
    Target("direct quotes", "f1", 0.95),
    Target("speaker attribution", "recall", 0.90),
    Target("indirect quotes", "recall", 0.70),
    Target("people", "recall", 1.0),
    Target("non-people typed PERSON", "precision", 1.0),
    Target("dates resolved", "recall", 0.80),
    Target("quantities", "recall", 0.75),
)


def score_document(gold: Json, predicted: Json) -> dict[str, Score]:
    """Every metric for one document."""
    direct = _quote_pairs(gold, predicted, kinds=("direct", "partial"), gold_kind="direct")
    indirect = _quote_pairs(gold, predicted, kinds=("indirect",), gold_kind="indirect")
    return {
        "headings": score_headings(gold, predicted),
        "section spans": score_section_spans(gold, predicted),
        "boilerplate removed": score_boilerplate(gold, predicted),
        "metadata": score_metadata(gold, predicted),
        "direct quotes": direct.score,
        "indirect quotes": indirect.score,
        "speaker attribution": score_speakers(gold, direct.matches + indirect.matches),
        "people": score_people(gold, predicted),
        "people by surname only": score_surname_only_people(gold, predicted),
        "non-people typed PERSON": score_not_people(gold, predicted),
        "places": score_names(gold.get("places", ()), predicted, types=("GPE", "LOC", "FAC")),
        "organizations": score_names(gold.get("organizations", ()), predicted, types=("ORG", "NORP")),
        "dates resolved": score_dates(gold, predicted),
        "quantities": score_quantities(gold, predicted),
    }


def score_headings(gold: Json, predicted: Json) -> Score:
    """Headings as a multiset, exact after normalisation; the lead's null heading is not counted."""
    expected = [normalise(s["heading"]) for s in gold.get("sections", ()) if s.get("heading")]
    found = [normalise(s["heading"]) for s in predicted.get("sections", ()) if s.get("heading")]
    return _match_strings(expected, found)


def score_section_spans(gold: Json, predicted: Json) -> Score:
    """A gold section counts when a predicted one has its heading and starts and ends with its words."""
    text = predicted.get("text", "")
    bodies = {
        normalise(s.get("heading")): normalise(text[s["start"] : s["end"]]) for s in predicted.get("sections", ())
    }
    score = Score()
    for section in gold.get("sections", ()):
        body = bodies.get(normalise(section.get("heading")))
        ok = body is not None and body.startswith(normalise(section["starts_with"]))
        ok = ok and body is not None and body.endswith(normalise(section["ends_with"]))
        _count(score, ok, f"section {section.get('heading')!r}")
    return score


def score_boilerplate(gold: Json, predicted: Json) -> Score:
    text = normalise(predicted.get("text"))
    score = Score()
    for line in gold.get("boilerplate", ()):
        _count(score, normalise(line) not in text, f"boilerplate kept: {line!r}")
    return score


def score_metadata(gold: Json, predicted: Json) -> Score:
    """Title, author and published date, where the gold states them."""
    score = Score()
    for key in ("title", "author"):
        if gold.get(key):
            miss = f"{key}: {predicted.get(key)!r}, gold {gold[key]!r}"
            _count(score, normalise(gold[key]) == normalise(predicted.get(key)), miss)
    if gold.get("published_at"):
        found = str(predicted.get("published_at") or "")[:10]
        _count(score, found == gold["published_at"], f"published_at: {found!r}, gold {gold['published_at']!r}")
    return score


@dataclass
class _QuoteMatches:
    score: Score
    matches: list[tuple[Json, Json]]


def _quote_pairs(gold: Json, predicted: Json, *, kinds: Sequence[str], gold_kind: str) -> _QuoteMatches:
    """Greedy one-to-one matching of gold quotes to predicted ones of the given kinds."""
    expected = [q for q in gold.get("quotes", ()) if q["kind"] == gold_kind]
    found = [q for q in predicted.get("quotes", ()) if q["kind"] in kinds]
    same = _same_text if gold_kind == "direct" else _overlapping_text
    used: set[int] = set()
    result = _QuoteMatches(Score(), [])
    for quote in sorted(expected, key=lambda q: bool(q.get("optional"))):
        index = next((i for i, q in enumerate(found) if i not in used and same(quote["text"], q["text"])), None)
        if index is not None:
            used.add(index)
            if not quote.get("optional"):
                result.score.true_positives += 1
                result.matches.append((quote, found[index]))
        elif not quote.get("optional"):
            result.score.false_negatives += 1
            result.score.misses.append(f"{gold_kind} quote missed: {quote['text'][:70]!r}")
    for index, quote in enumerate(found):
        if index not in used:
            result.score.false_positives += 1
            result.score.misses.append(f"{gold_kind} quote extra: {quote['text'][:70]!r}")
    return result


def _same_text(gold_text: str, found_text: str) -> bool:
    return normalise(gold_text) == normalise(found_text)


def _overlapping_text(gold_text: str, found_text: str) -> bool:
    """Indirect speech has fuzzy edges: one text contains the other, or they share most words."""
    expected, found = normalise(gold_text), normalise(found_text)
    if expected in found or (found in expected and len(found) >= len(expected) / 2):
        return True
    expected_words, found_words = set(expected.split()), set(found.split())
    return len(expected_words & found_words) >= 0.6 * len(expected_words)


def score_speakers(gold: Json, matches: Iterable[tuple[Json, Json]]) -> Score:
    """Of the matched quotes, those whose speaker is the gold one (a person by canonical name)."""
    score = Score()
    for expected, found in matches:
        ok = normalise_name(expected["speaker"]) == normalise_name(found.get("speaker"))
        miss = f"speaker of {expected['text'][:40]!r}: {found.get('speaker')!r}, gold {expected['speaker']!r}"
        _count(score, ok, miss)
    return score


def score_people(gold: Json, predicted: Json) -> Score:
    """Recall: each gold person is a PERSON entity under its full name; precision: PERSON entities are gold people."""
    people = _entity_names(predicted, types=("PERSON",))
    score = Score()
    known: set[str] = set()
    for person in gold.get("people", ()):
        name = normalise_name(person["name"])
        known.add(name)
        known.update(normalise_name(alias) for alias in person.get("aliases", ()))
        if not person.get("optional"):
            _count(score, name in people, f"person missed: {person['name']!r}")
    for name in people - known:
        score.false_positives += 1
        score.misses.append(f"PERSON not in gold: {name!r}")
    return score


def score_surname_only_people(gold: Json, predicted: Json) -> Score:
    """People the article names only by surname (optional in the gold): found under their full name?"""
    people = _entity_names(predicted, types=("PERSON",))
    score = Score()
    for person in gold.get("people", ()):
        if person.get("optional") and person.get("note"):
            _count(score, normalise_name(person["name"]) in people, f"full name not found: {person['name']!r}")
    return score


def score_not_people(gold: Json, predicted: Json) -> Score:
    """Places, organisations and other non-people must never be typed PERSON (false positives here)."""
    people = _entity_names(predicted, types=("PERSON",))
    score = Score()
    for name in {*gold.get("not_people", ()), *gold.get("places", ()), *gold.get("organizations", ())}:
        if normalise_name(name) in people:
            score.false_positives += 1
            score.misses.append(f"typed PERSON: {name!r}")
        else:
            score.true_positives += 1
    return score


def score_names(names: Iterable[str], predicted: Json, *, types: Sequence[str]) -> Score:
    found = _entity_names(predicted, types=types)
    score = Score()
    for name in names:
        _count(score, normalise_name(name) in found, f"{'/'.join(types)} missed: {name!r}")
    return score


def score_dates(gold: Json, predicted: Json) -> Score:
    """A gold date is resolved when a predicted date overlapping its text has its value."""
    score = Score()
    for expected in gold.get("dates", ()):
        found = predicted.get("dates", ())
        ok = any(_texts_overlap(expected["text"], d["text"]) and d["value"] == expected["value"] for d in found)
        if not expected.get("optional"):
            _count(score, ok, f"date {expected['text']!r} → {expected['value']} not resolved")
    return score


def score_quantities(gold: Json, predicted: Json) -> Score:
    """A gold quantity is found when an overlapping predicted one has its value (and its unit, if any)."""
    score = Score()
    for expected in gold.get("quantities", ()):
        ok = any(_same_quantity(expected, q) for q in predicted.get("quantities", ()))
        if not expected.get("optional"):
            _count(score, ok, f"quantity {expected['text']!r} = {expected['value']} {expected.get('unit') or ''}")
    return score


def _same_quantity(expected: Json, found: Json) -> bool:
    if not _texts_overlap(expected["text"], found["text"]):
        return False
    if abs(float(found["value"]) - float(expected["value"])) > 1e-6 * max(1.0, abs(float(expected["value"]))):
        return False
    unit = expected.get("unit")
    return not unit or normalise(unit) == normalise(found.get("unit"))


def _texts_overlap(expected: str, found: str) -> bool:
    a, b = normalise(expected), normalise(found)
    return bool(a and b) and (a in b or b in a)


def _entity_names(predicted: Json, *, types: Sequence[str]) -> set[str]:
    return {normalise_name(e["name"]) for e in predicted.get("entities", ()) if e["type"] in types}


def _match_strings(expected: list[str], found: list[str]) -> Score:
    score = Score()
    remaining = list(found)
    for item in expected:
        if item in remaining:
            remaining.remove(item)
            score.true_positives += 1
        else:
            score.false_negatives += 1
            score.misses.append(f"missed: {item!r}")
    score.false_positives = len(remaining)
    score.misses.extend(f"extra: {item!r}" for item in remaining)
    return score


def _count(score: Score, ok: bool, miss: str) -> None:
    if ok:
        score.true_positives += 1
    else:
        score.false_negatives += 1
        score.misses.append(miss)


def total(scores: Iterable[Mapping[str, Score]]) -> dict[str, Score]:
    """Micro-averaged scores: the counts of every document pooled per metric."""
    pooled: dict[str, Score] = {}
    for document in scores:
        for metric, score in document.items():
            pooled.setdefault(metric, Score()).add(score)
    return pooled


def failed_targets(pooled: Mapping[str, Score]) -> list[Target]:
    return [t for t in TARGETS if getattr(pooled.get(t.metric, Score()), t.measure) < t.minimum]


@dataclass(frozen=True)
class GoldDocument:
    """One annotation file and the input it describes."""

    path: Path
    annotation: Json

    @property
    def document(self) -> Path:
        return (self.path.parent / str(self.annotation["document"])).resolve()

    @property
    def anchor(self) -> date | None:
        published = self.annotation.get("published_at")
        return date.fromisoformat(published[:10]) if published else None


def load_gold(directory: Path) -> list[GoldDocument]:
    """Every ``*.json`` annotation in ``directory``, in name order."""
    paths = sorted(directory.glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"no gold annotations (*.json) in {directory}")
    return [GoldDocument(path, json.loads(path.read_text(encoding="utf-8"))) for path in paths]


@dataclass(frozen=True)
class DocumentResult:
    gold: GoldDocument
    scores: Mapping[str, Score]
    error: str | None = None


def evaluate(settings: Settings, gold_documents: Iterable[GoldDocument]) -> Iterator[DocumentResult]:
    """Extract each gold document (its ``published_at`` as the anchor) and score it."""
    for gold in gold_documents:
        [item] = extract_documents(settings, [str(gold.document)], anchor=gold.anchor)
        if isinstance(item, Failure):
            yield DocumentResult(gold, {}, error=f"{item.stage}: {item.error}")
        else:
            yield DocumentResult(gold, score_document(gold.annotation, item.to_json()))
