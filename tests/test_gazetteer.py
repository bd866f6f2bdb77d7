"""The known-people file: how it is read and how it is built from a corpus."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipeline.facts.gazetteer import known_organisations, load_known_people, parse_people
from pipeline.quality.people import everyday_words, naming_documents, surname_owners


def test_parse_skips_comments_and_blank_lines() -> None:
    assert parse_people("# header\n\ntrump\tDonald Trump\nschiff\tAdam Schiff\n") == {
        "trump": "Donald Trump",
        "schiff": "Adam Schiff",
    }


def test_a_surname_needs_one_owner_and_two_documents() -> None:
    people = [["Donald Trump"], ["Donald Trump", "Tom Brown"], ["Gordon Brown"], ["Jim Bridenstine"]]
    naming = Counter({"trump": 5, "brown": 4, "bridenstine": 1})
    owners = surname_owners(people, common_words=frozenset(), naming=naming)
    assert owners == {"trump": "Donald Trump"}  # Brown is contested, Bridenstine named once


def test_everyday_words_never_make_a_name() -> None:
    texts = ["Flip the switch.", "A switch broke.", "Nintendo Switch sold well."]
    common = everyday_words(texts)
    assert "switch" in common
    owners = surname_owners(
        [["Nintendo Switch"], ["Nintendo Switch"]], common_words=common, naming=naming_documents(texts)
    )
    assert owners == {}


def test_user_file_is_read_after_the_packaged_one(tmp_path: Path) -> None:
    mine = tmp_path / "people.tsv"
    mine.write_text("trump\tDonald J. Trump\nzoghlin\tSonya Zoghlin\n", encoding="utf-8")
    known = load_known_people(mine)
    assert known.full_name("Trump") == "Donald J. Trump"
    assert known.full_name("Zoghlin") == "Sonya Zoghlin"
    assert load_known_people(None).full_name("Trump") == "Donald Trump"


def test_news_outlets_are_known_organisations() -> None:
    assert {"politico", "reuters", "associated press"} <= known_organisations()
