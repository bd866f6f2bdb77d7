"""The gold scorer on small hand-made inputs: what counts as a match, and what does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.quality.evaluation import (
    Score,
    failed_targets,
    load_gold,
    normalise,
    normalise_name,
    score_dates,
    score_document,
    score_headings,
    score_not_people,
    score_people,
    score_quantities,
    total,
)

GOLD_DIR = Path(__file__).parent / "gold"


def quote(kind: str, text: str, speaker: str | None, **extra: object) -> dict[str, object]:
    return {"kind": kind, "text": text, "speaker": speaker, **extra}


def test_normalise_folds_marks_space_and_edge_punctuation() -> None:
    assert normalise("  “It’s  difficult,”\n") == "it's difficult"
    assert normalise_name("the Kremlin’s") == "kremlin"


def test_direct_quotes_match_partial_and_ignore_optional() -> None:
    gold = {
        "quotes": [
            quote("direct", "We all want it to happen,", "Marco Rubio"),
            quote("direct", "deep-rooted causes", "Russian leaders", optional=True),
            quote("direct", "Never,", "Donald Trump"),
        ]
    }
    predicted = {
        "quotes": [
            quote("direct", "We all want it to happen", "Marco Rubio"),
            quote("partial", "deep-rooted causes", None),
            quote("direct", "an extra quote", "Someone"),
        ]
    }
    scores = score_document(gold, predicted)
    direct = scores["direct quotes"]
    assert (direct.true_positives, direct.false_positives, direct.false_negatives) == (1, 1, 1)
    assert scores["speaker attribution"].recall == 1.0


def test_speaker_must_be_the_canonical_name() -> None:
    gold = {"quotes": [quote("direct", "Never.", "Donald Trump")]}
    predicted = {"quotes": [quote("direct", "Never.", "Trump")]}
    assert score_document(gold, predicted)["speaker attribution"].recall == 0.0


def test_indirect_quotes_match_by_overlap() -> None:
    gold = {"quotes": [quote("indirect", "Putin had no plans to visit Turkey", "Dmitri Peskov")]}
    predicted = {
        "quotes": [quote("indirect", "Putin had no plans to visit Turkey in the coming days", "Dmitri Peskov")]
    }
    assert score_document(gold, predicted)["indirect quotes"].recall == 1.0


def test_headings_are_exact() -> None:
    gold = {"sections": [{"heading": None}, {"heading": "Russia’s Demands"}]}
    assert score_headings(gold, {"sections": [{"heading": "Russia's Demands"}]}).f1 == 1.0
    assert score_headings(gold, {"sections": [{"heading": "Russia’s Demands and More"}]}).f1 == 0.0


def test_people_need_full_names_and_places_are_never_people() -> None:
    gold = {"people": [{"name": "Vladimir Putin", "aliases": ["Putin"]}], "places": ["Kyiv"]}
    predicted = {"entities": [{"name": "Putin", "type": "PERSON"}, {"name": "Kyiv", "type": "PERSON"}]}
    people = score_people(gold, predicted)
    assert people.recall == 0.0
    assert people.false_positives == 1  # Kyiv is not a gold person
    assert score_not_people(gold, predicted).precision == 0.0


def test_dates_need_the_resolved_value() -> None:
    gold = {"dates": [{"text": "Thursday", "value": "2025-05-15"}, {"text": "March 2022", "value": "2022-03"}]}
    predicted = {"dates": [{"text": "Thursday", "value": "2025-05-08"}, {"text": "March 2022", "value": "2022-03"}]}
    assert score_dates(gold, predicted).recall == 0.5


def test_quantities_need_value_and_unit() -> None:
    gold = {"quantities": [{"text": "30-day", "value": 30, "unit": "day"}, {"text": "€1.2 billion", "value": 1.2e9}]}
    predicted = {
        "quantities": [{"text": "30-day", "value": 30, "unit": "month"}, {"text": "€1.2 billion", "value": 1.2e9}]
    }
    assert score_quantities(gold, predicted).recall == 0.5


def test_targets_fail_below_their_minimum() -> None:
    pooled = total([{"direct quotes": Score(true_positives=9, false_negatives=1)}])
    assert [t.metric for t in failed_targets(pooled)] == ["direct quotes"]


def test_gold_set_is_loadable_and_points_at_real_documents() -> None:
    gold = load_gold(GOLD_DIR)
    assert len(gold) >= 13
    assert {g.annotation["format"] for g in gold} == {"txt", "md", "html"}
    for item in gold:
        assert item.document.is_file(), item.path.name
        assert item.anchor is not None, item.path.name


def test_load_gold_refuses_an_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_gold(tmp_path)
