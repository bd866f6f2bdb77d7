"""Known people: the full name behind a surname an article uses alone ("Trump" → "Donald Trump").

Articles often name a well-known person by surname only; the canonical full
name then has to come from other articles. The known-people file is a
tab-separated list of ``surname<TAB>full name``, built from a corpus with
``python -m pipeline.quality.people build CORPUS... > people.tsv`` (the rule is
there). The packaged file comes from the seeds and the 181
pages of the article-extraction benchmark, reviewed by hand afterwards to drop
products and groups the model took for people ("Nintendo Switch");
``NEWSFLOW_PEOPLE`` names a file of your own, read after it (its lines win).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pipeline.models import name_key

PACKAGED_PEOPLE = Path(__file__).parent / "data" / "people.tsv"
PACKAGED_ORGANISATIONS = Path(__file__).parent / "data" / "organisations.txt"


@dataclass(frozen=True)
class KnownPeople:
    """Surname (normalised) → canonical full name."""

    by_surname: Mapping[str, str] = field(default_factory=dict)

    def full_name(self, surname: str) -> str | None:
        return self.by_surname.get(name_key(surname))


@lru_cache(maxsize=8)
def load_known_people(extra: Path | None = None) -> KnownPeople:
    """The packaged file plus ``extra`` (a user's own, whose lines win)."""
    entries: dict[str, str] = {}
    for path in (PACKAGED_PEOPLE, extra):
        if path is not None and path.is_file():
            entries.update(parse_people(path.read_text(encoding="utf-8")))
    return KnownPeople(entries)


@lru_cache(maxsize=1)
def known_organisations() -> frozenset[str]:
    """Names (normalised) that are organisations however the model labels them: news outlets and
    wire services above all, which articles make the subject of "reported" like a person."""
    lines = PACKAGED_ORGANISATIONS.read_text(encoding="utf-8").splitlines()
    return frozenset(name_key(line) for line in lines if line.strip() and not line.startswith("#"))


def parse_people(text: str) -> dict[str, str]:
    """``surname<TAB>full name`` lines; blank lines and ``#`` comments are skipped."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#") and "\t" in line:
            surname, full = line.split("\t", 1)
            entries[name_key(surname)] = full.strip()
    return entries
