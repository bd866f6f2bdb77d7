"""The seed article end to end through extract → sections → facts, checked against the gold file."""

from __future__ import annotations

import re
from typing import Any

import pytest

from pipeline.extract import extract
from pipeline.facts.batch import Analyser
from pipeline.models import Document
from pipeline.sections import lay_out
from pipeline.sources.files import read_file

from .conftest import SEED


def normalise(text: str) -> str:
    text = text.replace("’", "'").replace("“", '"').replace("”", '"')
    return re.sub(r"\s+", " ", text).strip().strip(".,").strip()


@pytest.fixture(scope="module")
def seed_document(nlp: Any) -> Document:
    raw = read_file(SEED)
    laid = lay_out(raw.source, extract(raw), plain_text=True)
    analyser = Analyser(nlp)
    return analyser.document(laid, next(analyser.parse([laid.text])))


def test_sections_match_gold(seed_document: Document, gold: dict[str, Any]) -> None:
    text = seed_document.text
    assert [s.heading for s in seed_document.sections] == [g["heading"] for g in gold["sections"]]
    for section, expected in zip(seed_document.sections, gold["sections"], strict=True):
        body = text[section.start : section.end]
        assert body.startswith(expected["starts_with"])
        assert body.endswith(expected["ends_with"])
    for line in gold["boilerplate"]:
        assert line not in text


def test_people_under_full_names(seed_document: Document, gold: dict[str, Any]) -> None:
    people = {e.name for e in seed_document.facts.entities if e.type == "PERSON"}
    assert people == {p["name"] for p in gold["people"]}
    assert not people & set(gold["not_people"])


def test_every_offset_points_at_its_text(seed_document: Document) -> None:
    text, facts = seed_document.text, seed_document.facts
    for entity in facts.entities:
        for mention in entity.mentions:
            assert text[mention.start : mention.end] == mention.text
    for item in (*facts.quotes, *facts.dates, *facts.quantities):
        assert text[item.start : item.end] == item.text


def test_direct_quotes_have_gold_speakers(seed_document: Document, gold: dict[str, Any]) -> None:
    found = {normalise(q.text): q.speaker for q in seed_document.facts.quotes if q.kind == "direct"}
    required = [q for q in gold["quotes"] if q["kind"] == "direct" and not q.get("optional")]
    for expected in required:
        assert found.get(normalise(expected["text"])) == expected["speaker"], expected["text"]


def test_indirect_quotes_found(seed_document: Document, gold: dict[str, Any]) -> None:
    found = [(normalise(q.text), q.speaker) for q in seed_document.facts.quotes if q.kind == "indirect"]
    for expected in (q for q in gold["quotes"] if q["kind"] == "indirect" and not q.get("optional")):
        assert any(normalise(expected["text"]) in text and speaker == expected["speaker"] for text, speaker in found), (
            expected["text"]
        )


def test_dates_resolved(seed_document: Document, gold: dict[str, Any]) -> None:
    found = {(d.text, d.value) for d in seed_document.facts.dates}
    for expected in gold["dates"]:
        assert any(expected["text"] in text and value == expected["value"] for text, value in found), expected


def test_quantities(seed_document: Document, gold: dict[str, Any]) -> None:
    found = {q.text: q for q in seed_document.facts.quantities}
    for expected in gold["quantities"]:
        quantity = found[expected["text"]]
        assert quantity.value == expected["value"]
        assert quantity.unit == expected.get("unit")


def test_claims_from_russias_demands(seed_document: Document) -> None:
    demands = [c for c in seed_document.facts.claims if c.predicate == "demand" and c.section == 2]
    assert any(c.actor in {"Moscow", "Russia"} and "five Ukrainian territories" in c.object for c in demands)
