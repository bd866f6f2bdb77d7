from datetime import date

import pytest

from pipeline.facts.calendar import resolve
from pipeline.facts.numbers import parse_number

THURSDAY = date(2025, 5, 15)


@pytest.mark.parametrize(
    ("expression", "future", "value", "granularity"),
    [
        ("Thursday", False, "2025-05-15", "day"),
        ("Wednesday evening", False, "2025-05-14", "day"),
        ("Friday", True, "2025-05-16", "day"),
        ("Friday", False, "2025-05-09", "day"),
        ("last Thursday", False, "2025-05-08", "day"),
        ("next Monday", False, "2025-05-19", "day"),
        ("yesterday", False, "2025-05-14", "day"),
        ("last weekend", False, "2025-05-10", "day"),
        ("last month", False, "2025-04", "month"),
        ("February 12", False, "2025-02-12", "day"),
        ("December 24", False, "2024-12-24", "day"),
        ("December 24", True, "2025-12-24", "day"),
        ("12 February 2024", False, "2024-02-12", "day"),
        ("March 2022", False, "2022-03", "month"),
        ("the end of February", False, "2025-02", "month"),
        ("early this year", False, "2025", "year"),
        ("the previous year", False, "2024", "year"),
        ("2022", False, "2022", "year"),
        ("three days ago", False, "2025-05-12", "day"),
        ("two years ago", False, "2023", "year"),
    ],
)
def test_resolves_against_the_anchor(expression: str, future: bool, value: str, granularity: str) -> None:
    resolved = resolve(expression, THURSDAY, future=future)
    assert resolved is not None
    assert (resolved.value, resolved.granularity) == (value, granularity)


@pytest.mark.parametrize("expression", ["sixteen months", "two weeks", "the coming days", "years", "February 30"])
def test_durations_and_impossible_dates_are_not_dates(expression: str) -> None:
    assert resolve(expression, THURSDAY) is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("14,000", 14000), ("1.2 billion", 1.2e9), ("sixteen", 16), ("thirty-five", 35), ("two hundred", 200)],
)
def test_numbers(text: str, value: float) -> None:
    assert parse_number(text) == value


def test_not_a_number() -> None:
    assert parse_number("dozens") is None
