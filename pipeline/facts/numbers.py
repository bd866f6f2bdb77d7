"""Numbers written with digits or words: "14,000", "1.2", "sixteen", "two hundred"."""

from __future__ import annotations

import re

from text_to_num import text2num

MULTIPLIERS = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12, "bn": 1e9, "m": 1e6, "k": 1e3}
DIGITS = re.compile(r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")


def parse_number(text: str) -> float | None:
    """The value of a number written in digits, words or both ("1.2 billion")."""
    words = text.lower().replace("-", " ").split()
    if not words:
        return None
    multiplier = 1.0
    if len(words) > 1 and words[-1] in MULTIPLIERS:
        multiplier = MULTIPLIERS[words.pop()]
    joined = " ".join(words)
    if DIGITS.match(joined):
        return float(joined.replace(",", "")) * multiplier
    try:
        return float(text2num(joined, "en")) * multiplier
    except ValueError:
        return None
