"""Resolve a date expression against the article's anchor date.

Pure functions over strings and dates, so they are easy to test alone.
Handles weekdays (tense decides past or future), yesterday/today/tomorrow,
last/this/next weekend, month and year, "February 12" (year inferred),
"March 2022", "the end of February", bare years and "N units ago".
Durations ("sixteen months", "the coming days") are not dates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from dateutil.relativedelta import relativedelta

from pipeline.facts.numbers import parse_number
from pipeline.models import Granularity

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = {
    name: index
    for index, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
MONTH = r"(?P<month>" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
LEADING_NOISE = re.compile(
    r"^(?:(?:at least|at most|as early as|as late as|as of|so far|earlier|later|on|in|since|by|until|till|from"
    r"|during|before|after|of|at|around|about|through|throughout)\s+)*(?:the\s+)?"
    r"(?:(?:end|start|beginning|middle|first half|second half|rest|remainder) of\s+)?(?:the\s+)?"
)
DAY_PARTS = r"(?:\s+(?:morning|afternoon|evening|night|midday|noon))?"
MAX_FUTURE_DAYS = 7
LATEST_YEAR, EARLIEST_YEAR = 2200, 1000


@dataclass(frozen=True)
class Resolved:
    value: str
    granularity: Granularity


def resolve(expression: str, anchor: date, *, future: bool = False) -> Resolved | None:
    """The calendar value of ``expression`` seen from ``anchor``, or None for durations and vague times."""
    text = LEADING_NOISE.sub("", expression.lower().strip().replace("’", "'")).strip(" ,.")
    for rule in (
        _relative_day,
        _weekday,
        _weekend,
        _relative_period,
        _month_day,
        _month_year,
        _month_part,
        _year,
        _ago,
    ):
        try:
            result = rule(text, anchor, future)
        except (OverflowError, ValueError):  # "3000 years ago", "tomorrow" from 9999-12-31: off the calendar
            return None
        if result is not None:
            return result
    return None


def _day(value: date) -> Resolved:
    return Resolved(value.isoformat(), "day")


def _month(year: int, month: int) -> Resolved | None:
    return Resolved(f"{year:04d}-{month:02d}", "month") if EARLIEST_YEAR <= year <= LATEST_YEAR else None


def _year_value(year: int) -> Resolved | None:
    return Resolved(f"{year:04d}", "year") if EARLIEST_YEAR <= year <= LATEST_YEAR else None


def _relative_day(text: str, anchor: date, future: bool) -> Resolved | None:
    offsets = {
        "today": 0,
        "tonight": 0,
        "this morning": 0,
        "this afternoon": 0,
        "this evening": 0,
        "yesterday": -1,
        "tomorrow": 1,
        "last night": -1,
    }
    base = (
        re.sub(r"\s+(morning|afternoon|evening|night)$", "", text)
        if text.startswith(("yesterday", "tomorrow"))
        else text
    )
    return _day(anchor + timedelta(days=offsets[base])) if base in offsets else None


def _weekday(text: str, anchor: date, future: bool) -> Resolved | None:
    match = re.fullmatch(
        r"(?:(?P<rel>last|next|this|past|coming)\s+)?(?P<day>" + "|".join(WEEKDAYS) + r")" + DAY_PARTS, text
    )
    if not match:
        return None
    target = WEEKDAYS.index(match.group("day"))
    relation = match.group("rel")
    back = (anchor.weekday() - target) % 7
    ahead = (target - anchor.weekday()) % 7
    if relation in {"next", "coming"} or (relation is None and future):
        return _day(anchor + timedelta(days=ahead or (7 if relation else 0)))
    if relation in {"last", "past"}:
        return _day(anchor - timedelta(days=back or 7))
    return _day(anchor - timedelta(days=back))


def _weekend(text: str, anchor: date, future: bool) -> Resolved | None:
    match = re.fullmatch(r"(?P<rel>last|this|next|past|coming)\s+weekend", text)
    if not match:
        return None
    saturday_back = (anchor.weekday() - 5) % 7 or 7
    last_saturday = anchor - timedelta(days=saturday_back)
    if match.group("rel") in {"last", "past"} or (
        match.group("rel") == "this" and not future and anchor.weekday() <= 1
    ):
        return _day(last_saturday)
    return _day(last_saturday + timedelta(days=7))


def _relative_period(text: str, anchor: date, future: bool) -> Resolved | None:
    match = re.fullmatch(
        r"(?:(?:early|late|mid|the early months of|the first half of|the end of|the start of|the beginning of)[\s-]+)?"
        r"(?P<rel>last|this|next|previous|past|coming|current|following)\s+(?P<unit>month|year)",
        text,
    )
    if not match:
        return None
    step = {"last": -1, "previous": -1, "past": -1, "next": 1, "coming": 1, "following": 1}.get(match.group("rel"), 0)
    if match.group("unit") == "year":
        return _year_value(anchor.year + step)
    shifted = anchor + relativedelta(months=step)
    return _month(shifted.year, shifted.month)


def _month_day(text: str, anchor: date, future: bool) -> Resolved | None:
    match = re.fullmatch(
        MONTH + r"\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(?P<year>\d{4}))?" + DAY_PARTS, text
    ) or re.fullmatch(r"(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + MONTH + r"(?:,?\s+(?P<year>\d{4}))?", text)
    if not match:
        return None
    month, day = MONTHS[match.group("month")], int(match.group("day"))
    year = int(match.group("year")) if match.group("year") else _infer_year(anchor, month, day, future=future)
    try:
        return _day(date(year, month, day))
    except ValueError:
        return None


def _infer_year(anchor: date, month: int, day: int, *, future: bool) -> int:
    """The year that puts the date nearest the anchor, in the tense's direction."""
    try:
        candidate = date(anchor.year, month, min(day, 28) if month == 2 and day == 29 else day)
    except ValueError:
        return anchor.year
    if not future and candidate > anchor + timedelta(days=MAX_FUTURE_DAYS):
        return anchor.year - 1
    if future and candidate < anchor - timedelta(days=MAX_FUTURE_DAYS):
        return anchor.year + 1
    return anchor.year


def _month_year(text: str, anchor: date, future: bool) -> Resolved | None:
    match = re.fullmatch(r"(?:(?:early|late|mid)[\s-]+)?" + MONTH + r",?\s+(?:of\s+)?(?P<year>\d{4})", text)
    return _month(int(match.group("year")), MONTHS[match.group("month")]) if match else None


def _month_part(text: str, anchor: date, future: bool) -> Resolved | None:
    match = re.fullmatch(
        r"(?:(?:early|late|mid|the end of|the start of|the beginning of|the middle of|end of|start of)[\s-]+)?"
        + MONTH
        + r"(?:\s+(?:this|last|next) year)?",
        text,
    )
    if not match:
        return None
    month = MONTHS[match.group("month")]
    year = anchor.year
    if "last year" in text:
        year -= 1
    elif "next year" in text:
        year += 1
    elif "this year" not in text:
        candidate_end = date(year, month, 1) + relativedelta(months=1, days=-1)
        if not future and date(year, month, 1) > anchor + timedelta(days=MAX_FUTURE_DAYS):
            year -= 1
        elif future and candidate_end < anchor:
            year += 1
    return _month(year, month)


def _year(text: str, anchor: date, future: bool) -> Resolved | None:
    match = re.fullmatch(r"(?:(?:early|late|mid)[\s-]+)?(?P<year>\d{4})", text)
    return _year_value(int(match.group("year"))) if match else None


def _ago(text: str, anchor: date, future: bool) -> Resolved | None:
    match = re.fullmatch(r"(?P<count>[\w-]+(?:\s[\w-]+)?)\s+(?P<unit>day|week|month|year)s?\s+ago", text)
    if not match:
        return None
    count = 1 if match.group("count") in {"a", "an", "one"} else parse_number(match.group("count"))
    if count is None or count != int(count):
        return None
    unit = match.group("unit")
    if unit in {"day", "week"}:
        return _day(anchor - timedelta(days=int(count) * (7 if unit == "week" else 1)))
    shifted = anchor - relativedelta(months=int(count) * (12 if unit == "year" else 1))
    return _month(shifted.year, shifted.month) if unit == "month" else _year_value(shifted.year)
