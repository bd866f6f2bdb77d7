"""Entity canonicalisation rules, each on a small text of its own."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.facts.entities import resolve_entities
from pipeline.facts.gazetteer import KnownPeople


def entities(nlp: Any, text: str, known: KnownPeople | None = None) -> dict[str, str]:
    found, _ = resolve_entities(nlp(text), known)
    return {entity.name: entity.type for entity in found}


def test_surnames_resolve_to_the_full_name(nlp: Any) -> None:
    found = entities(nlp, "Vladimir Putin stayed in Moscow. Putin's spokesman said Putin had no plans to travel.")
    assert found.get("Vladimir Putin") == "PERSON"
    assert "Putin" not in found


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Economy Minister Sophie Hermans said the plan works.", "Sophie Hermans"),
        ("Superintendent Jennifer McCormick spoke to teachers.", "Jennifer McCormick"),
        ("Gov. Eric Holcomb stayed in Florida.", "Eric Holcomb"),
    ],
)
def test_titles_are_not_part_of_the_name(nlp: Any, text: str, name: str) -> None:
    assert entities(nlp, text).get(name) == "PERSON"


def test_a_full_name_the_model_missed_is_completed_from_its_surname(nlp: Any) -> None:
    text = "Director of Public Prosecution Eva-Marie Persson took the decision.\n\nMs Persson said the case was closed."
    assert entities(nlp, text).get("Eva-Marie Persson") == "PERSON"


def test_name_suffixes_do_not_hide_the_surname(nlp: Any) -> None:
    text = "James P. Kennedy Jr., the U.S. attorney, spoke. Kennedy said the case was serious."
    found = entities(nlp, text)
    assert found.get("James P. Kennedy Jr.") == "PERSON"
    assert "Kennedy" not in found


def test_a_place_the_model_calls_a_person_is_a_place(nlp: Any) -> None:
    text = "Kyiv rejected the plan. Officials in Kyiv said Kyiv would not give up land."
    assert entities(nlp, text).get("Kyiv") != "PERSON"


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("SpaceX won a contract and SpaceX will fly first.", "SpaceX"),
        ("Masten Space Systems said it would bid.", "Masten Space Systems"),
        ("The aid was paused, Politico reported.", "Politico"),
        ("Refugees live near the Berm. The Berm is a sand wall.", "Berm"),
    ],
)
def test_organisations_and_things_are_not_people(nlp: Any, text: str, name: str) -> None:
    assert entities(nlp, text).get(name, "absent") != "PERSON"


def test_an_acronym_joins_the_name_it_was_introduced_with(nlp: Any) -> None:
    text = (
        "The Chinese Center for Disease Control and Prevention (CDC) issued a warning. The CDC said the risk was low."
    )
    _, mentions = resolve_entities(nlp(text))
    cdc = [m for m in mentions if m.text == "CDC"]
    assert cdc and {m.name for m in cdc} == {"Chinese Center for Disease Control and Prevention"}


def test_known_people_fill_in_a_surname_the_article_never_expands(nlp: Any) -> None:
    known = KnownPeople({"trump": "Donald Trump"})
    found = entities(nlp, "President Trump said on Tuesday that the talks would go on.", known)
    assert found.get("Donald Trump") == "PERSON"


def test_a_name_the_model_missed_after_a_role_is_a_person(nlp: Any) -> None:
    text = "Parise opened the scoring by stripping Sabres center Casey Mittelstadt in the neutral zone."
    assert entities(nlp, text).get("Casey Mittelstadt") == "PERSON"


def test_examples_of_a_kind_of_thing_are_not_people(nlp: Any) -> None:
    text = "Stadia launches with franchises such as Assassin's Creed, Tomb Raider, Red Dead Redemption and more."
    assert entities(nlp, text).get("Tomb Raider", "absent") != "PERSON"
