"""Known people: the full name behind a surname an article uses alone ("Trump" → "Donald Trump").

Articles often name a well-known person by surname only; the canonical full
name then has to come from other articles. The known-people file is a
tab-separated list of ``surname<TAB>full name``, built from a corpus with
``python -m pipeline.facts.gazetteer build CORPUS... > people.tsv``: a surname
enters when one full name owns it (no other full name with that surname is as
much as a fifth as common), at least two documents name it, and no word of the
name is an everyday word. The packaged file comes from the seeds and the 181
pages of the article-extraction benchmark, reviewed by hand afterwards to drop
products and groups the model took for people ("Nintendo Switch");
``NEWSFLOW_PEOPLE`` names a file of your own, read after it (its lines win).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pipeline.facts.names import name_key

PACKAGED_PEOPLE = Path(__file__).parent / "data" / "people.tsv"
PACKAGED_ORGANISATIONS = Path(__file__).parent / "data" / "organisations.txt"
MIN_DOCUMENTS = 2
MIN_SHARE = 0.8


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


def surname_owners(
    people_per_document: Iterable[Iterable[str]], *, common_words: frozenset[str], naming: Counter[str]
) -> dict[str, str]:
    """Surnames one full name owns across documents (see the module docstring for the rule).

    ``naming`` counts, per surname key, the documents the word appears in capitalised."""
    owners: dict[str, Counter[str]] = defaultdict(Counter)
    for people in people_per_document:
        for full in set(people):
            words = full.split()
            if len(words) >= 2 and _is_name(words) and not {name_key(w) for w in words} & common_words:
                owners[name_key(words[-1])][full] += 1
    known: dict[str, str] = {}
    for surname, counts in owners.items():
        full, documents = counts.most_common(1)[0]
        if naming[surname] >= MIN_DOCUMENTS and documents >= MIN_SHARE * sum(counts.values()):
            known[surname] = full
    return known


def _is_name(words: list[str]) -> bool:
    return len(words[-1]) > 2 and all(
        word[:1].isupper() and re.fullmatch(r"[\w.'’-]+", word) and "_" not in word for word in words
    )


def everyday_words(texts: Iterable[str]) -> frozenset[str]:
    """Words written in lower case at least as often as capitalised: "switch", "pro", "he"."""
    lower: Counter[str] = Counter()
    capitalised: Counter[str] = Counter()
    for text in texts:
        for word in re.findall(r"\b[A-Za-z][a-z'-]+\b", text):
            (lower if word[0].islower() else capitalised)[word.lower()] += 1
    return frozenset(word for word, count in lower.items() if count >= capitalised[word])


def naming_documents(texts: Iterable[str]) -> Counter[str]:
    """Per capitalised word (as a name key), the number of documents it appears in."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update({name_key(word) for word in re.findall(r"\b[A-Z][\w'’-]+", text)})
    return counts


def _corpus_texts(paths: Iterable[Path]) -> Iterable[str]:
    """Plain-text files, or the benchmark's ``ground-truth.json`` (its article bodies)."""
    for path in paths:
        if path.suffix == ".json":
            yield from (entry["articleBody"] for entry in json.loads(path.read_text(encoding="utf-8")).values())
        else:
            yield path.read_text(encoding="utf-8")


def _build(paths: list[Path]) -> None:
    from pipeline.facts.entities import resolve_entities
    from pipeline.nlp import load_model
    from pipeline.settings import Settings

    nlp = load_model(Settings.from_env().spacy_model)
    texts = list(_corpus_texts(paths))
    people = (
        [entity.name for entity in resolve_entities(doc)[0] if entity.type == "PERSON"]
        for doc in nlp.pipe(texts, batch_size=16)
    )
    owners = surname_owners(people, common_words=everyday_words(texts), naming=naming_documents(texts))
    sys.stdout.write("# surname<TAB>full name; built by: python -m pipeline.facts.gazetteer build CORPUS...\n")
    for surname, full in sorted(owners.items()):
        sys.stdout.write(f"{surname}\t{full}\n")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "build":
        sys.exit("usage: python -m pipeline.facts.gazetteer build CORPUS_FILE... > people.tsv")
    _build([Path(arg) for arg in sys.argv[2:]])
