"""Build the known-people file from a corpus: ``python -m pipeline.quality.people build CORPUS... > people.tsv``.

A surname enters when one full name owns it (no other full name with that surname is as much as a fifth as
common), at least two documents name it, and no word of the name is an everyday word. The packaged
``pipeline/facts/data/people.tsv`` was built from the seeds and the 181 pages of the article-extraction
benchmark, then reviewed by hand (see ``pipeline.facts.gazetteer``, which reads it at run time).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from pipeline.facts.entities import resolve_entities
from pipeline.facts.model import load_model
from pipeline.models import name_key
from pipeline.settings import Settings

MIN_DOCUMENTS = 2
MIN_SHARE = 0.8


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
    nlp = load_model(Settings.from_env().spacy_model)
    texts = list(_corpus_texts(paths))
    people = (
        [entity.name for entity in resolve_entities(doc)[0] if entity.type == "PERSON"]
        for doc in nlp.pipe(texts, batch_size=16)
    )
    owners = surname_owners(people, common_words=everyday_words(texts), naming=naming_documents(texts))
    sys.stdout.write("# surname<TAB>full name; built by: python -m pipeline.quality.people build CORPUS...\n")
    for surname, full in sorted(owners.items()):
        sys.stdout.write(f"{surname}\t{full}\n")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "build":
        sys.exit("usage: python -m pipeline.quality.people build CORPUS_FILE... > people.tsv")
    _build([Path(arg) for arg in sys.argv[2:]])
