"""Dates in running text: spaCy's DATE mentions plus the pattern scan, resolved with the clause's tense."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from pipeline.facts.dates import extract_dates

ANCHOR = date(2019, 11, 19)  # a Tuesday


def dates(nlp: Any, text: str) -> list[tuple[str, str]]:
    return [(d.text, d.value) for d in extract_dates(nlp(text), ANCHOR)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Israel seized it in the 1967 Six-Day War.", ("1967", "1967")),
        ("They invaded after the September 11, 2001 attacks.", ("September 11, 2001", "2001-09-11")),
        ("He gave $5.9 million toward Holcomb’s 2016 election campaign.", ("2016", "2016")),
        ("It cannot act until 2021, or after 1999.", ("1999", "1999")),
        ("The investigation was re-opened earlier this year.", ("earlier this year", "2019")),
    ],
)
def test_dates_inside_other_entities_are_found(nlp: Any, text: str, expected: tuple[str, str]) -> None:
    assert expected in dates(nlp, text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Their session starts in early January.", ("early January", "2020-01")),
        ("A hearing is due to take place in February.", ("February", "2020-02")),
        ("The commission he appointed in February reported.", ("February", "2019-02")),
        ("Voters will decide on Friday.", ("Friday", "2019-11-22")),
        ("Voters decided on Friday.", ("Friday", "2019-11-15")),
    ],
)
def test_tense_decides_past_or_future(nlp: Any, text: str, expected: tuple[str, str]) -> None:
    assert expected in dates(nlp, text)


@pytest.mark.parametrize(
    "text",
    ["Protesters may march on the capital.", "About 2016 people came.", "It cost 2,019 dollars.", "Call 555-2019 now."],
)
def test_verbs_counts_and_numbers_are_not_dates(nlp: Any, text: str) -> None:
    assert dates(nlp, text) == []
