"""Entities: spaCy NER, then canonicalisation inside the article.

- mentions are trimmed of titles, determiners and possessives
  ("Economy Minister Sophie Hermans" → "Sophie Hermans", "Russia’s" → "Russia");
- a surname or first name alone resolves to the full name used elsewhere in the
  article ("Putin" → "Vladimir Putin"), and such a group is a PERSON; the
  model's missed mentions of those names are added ("Volker said");
- the titles a person is given are kept, so "the governor" can find "Gov. Eric Holcomb";
- otherwise a name takes the label it mostly has in the article, ties going
  away from PERSON, and a lone place name (GeoNames) is never a PERSON.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from spacy.tokens import Doc, Span, Token

from pipeline.facts.gazetteer import KnownPeople, known_organisations
from pipeline.facts.names import PERSON_TITLES, name_key, place_names, strip_possessive, title_noun
from pipeline.models import Entity, Mention

ENTITY_LABELS = frozenset(
    {"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC", "EVENT", "PRODUCT", "WORK_OF_ART", "LAW", "LANGUAGE"}
)
NAME_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv"})
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})
# Roles besides titles that introduce a person by name ("Sabres center Casey Mittelstadt").
ROLE_NOUNS = frozenset(
    """
    center centre forward defenseman defender goalie goalkeeper goaltender quarterback receiver linebacker
    striker midfielder winger pitcher catcher guard rookie captain lawyer attorney aide adviser advisor
    spokesman spokeswoman spokesperson analyst economist professor researcher scientist
    """.split()
)
# Plural nouns whose examples are people ("leaders such as …", "players like …").
PEOPLE_NOUNS = frozenset(
    """
    people person player athlete star celebrity artist actor actress musician singer politician lawmaker
    figure candidate executive member fan critic expert writer author director rival opponent colleague
    """.split()
)
DATE_WORDS = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april may june july "
    "august september october november december today yesterday tomorrow".split()
)
ORGANISATION_WORDS = frozenset(
    """
    systems space group inc corp corporation company co llc ltd plc capital partners holdings technologies
    technology labs media news bank fund institute university college school association council committee
    agency ministry department party forces force army airlines motors energy resources international
    foundation trust network times post journal checker clinic hospital center centre court works studio
    studios games entertainment interactive software productions pictures records ultra pro max plus mini
    lite edition series
    """.split()
)
NON_NAME_POS = frozenset({"VERB", "ADP", "DET", "ADV", "CCONJ", "SCONJ", "PRON", "AUX", "PART", "PUNCT", "NUM"})
LABEL_PREFERENCE = ("GPE", "ORG", "LOC", "NORP", "FAC", "EVENT", "PRODUCT", "LAW", "WORK_OF_ART", "LANGUAGE", "PERSON")


@dataclass(frozen=True)
class ResolvedMention:
    """A mention with the canonical entity it belongs to."""

    start: int
    end: int
    text: str
    name: str
    type: str
    token_start: int
    token_end: int
    titles: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _RawMention:
    span: Span
    label: str
    name: str
    titles: frozenset[str] = frozenset()


def resolve_entities(
    doc: Doc, known: KnownPeople | None = None
) -> tuple[tuple[Entity, ...], tuple[ResolvedMention, ...]]:
    """Canonical entities of the article and every mention resolved to one."""
    raw = [m for m in (_raw_mention(ent) for ent in doc.ents if ent.label_ in ENTITY_LABELS) if m]
    raw = _complete_names(doc, raw, [m for m in map(_raw_mention, doc.ents) if m and m.label == "DATE"])
    raw = sorted(raw + _names_after_roles(doc, raw), key=lambda m: m.span.start)
    full_names = [m for m in raw if m.label == "PERSON" and len(m.name.split()) >= 2]
    raw.extend(_missed_name_mentions(doc, full_names, known))
    grouped: dict[str, list[tuple[_RawMention, str, bool]]] = defaultdict(list)
    by_word = _full_names_by_word(full_names)
    acronyms = _acronyms(raw)
    for mention in raw:
        full = _full_name(mention, by_word) or _known_full_name(mention, known)
        canonical = full or acronyms.get(mention.name) or mention.name
        grouped[name_key(canonical)].append((mention, canonical, full is not None))
    resolved: list[ResolvedMention] = []
    for members in grouped.values():
        resolved.extend(_resolve_group(members, full_names))
    resolved.sort(key=lambda m: m.start)
    return _entities(resolved), tuple(resolved)


def _raw_mention(ent: Span) -> _RawMention | None:
    span = _trim(ent)
    if span is None:
        return None
    name = strip_possessive(span.text.strip())
    if not any(ch.isalpha() for ch in name):
        return None
    titles = _titles_before(span) if ent.label_ == "PERSON" else frozenset()
    return _RawMention(span=span, label=ent.label_, name=name, titles=titles)


def _titles_before(span: Span) -> frozenset[str]:
    """Title words just before a name, inside or outside the entity ("Gov. Eric Holcomb")."""
    titles: set[str] = set()
    index = span.start - 1
    while index >= 0 and index >= span.start - 4:
        word = span.doc[index].lower_
        if word not in PERSON_TITLES and word.rstrip(".") + "." not in PERSON_TITLES:
            break
        titles.add(title_noun(word))
        index -= 1
    return frozenset(titles)


def _complete_names(doc: Doc, raw: list[_RawMention], dates: list[_RawMention]) -> list[_RawMention]:
    """Full names the model missed or buried in another entity, found from a surname it did label.

    "Ms Persson said" plus an unlabelled "… Prosecution Eva-Marie Persson took …" gives
    "Eva-Marie Persson"; "Volker said" plus the ORG "Ukraine Kurt Volker" gives "Kurt Volker".
    """
    known = {_surname(m.name) for m in raw if m.label == "PERSON" and len(m.name.split()) >= 2}
    surnames = {m.span[0].text for m in raw + dates if len(m.span) == 1 and _could_be_surname(m)} - known
    added: list[_RawMention] = []
    for token in doc:
        if token.text in surnames and (span := _given_name_before(token)) is not None:
            added.append(_RawMention(span=span, label="PERSON", name=span.text, titles=_titles_before(span)))
            surnames.discard(token.text)
    if not added:
        return raw
    kept = [m for m in raw if not any(m.span.start < a.span.end and a.span.start < m.span.end for a in added)]
    return sorted(kept + added, key=lambda m: m.span.start)


def _could_be_surname(mention: _RawMention) -> bool:
    token = mention.span[0]
    if not token.text[:1].isupper() or name_key(token.text) in place_names():
        return False
    if mention.label == "DATE":  # "Australian Timothy Weeks" comes out as the DATE "Weeks"
        return token.pos_ == "PROPN" and not token.is_sent_start and token.lower_ not in DATE_WORDS
    return mention.label == "PERSON" or (mention.label == "ORG" and token.dep_ in SUBJECT_DEPS)


def _given_name_before(surname: Token) -> Span | None:
    """The given name (hyphenated or not) and initials right before a surname: "Eva-Marie", "Patrick W."."""
    doc, start = surname.doc, surname.i
    while start > 0 and re.fullmatch(r"[A-Z]\.", doc[start - 1].text):
        start -= 1
    given = start
    while given > 0 and doc[given - 1].pos_ == "PROPN" and _is_given_name(doc[given - 1]):
        given -= 1
        if given > 1 and doc[given - 1].text == "-" and doc[given - 2].pos_ == "PROPN":
            given -= 2
        break
    if given == start or (doc[surname.i].ent_type_ == "PERSON" and doc[given].ent_type_ == "PERSON"):
        return None
    return doc[given : surname.i + 1]


def _is_given_name(token: Token) -> bool:
    word = token.lower_
    return (
        token.text[:1].isupper()
        and token.is_alpha
        and word not in PERSON_TITLES
        and word.rstrip(".") + "." not in PERSON_TITLES
        and name_key(token.text) not in place_names()
    )


def _surname(name: str) -> str:
    """The last word of a name that is not a suffix: "James P. Kennedy Jr." → "Kennedy"."""
    words = [w for w in name.replace(",", " ").split() if w.lower().rstrip(".") not in NAME_SUFFIXES]
    return words[-1] if words else name


def _names_after_roles(doc: Doc, raw: list[_RawMention]) -> list[_RawMention]:
    """Names the model missed right after a role: "Sabres center Casey Mittelstadt", "attorney Sonya Zoghlin"."""
    taken = {token.i for m in raw for token in m.span} | {t.i for ent in doc.ents for t in ent}
    found: list[_RawMention] = []
    for token in doc[:-2]:
        if token.lower_.rstrip(".") not in ROLE_NOUNS and token.lower_ not in PERSON_TITLES:
            continue
        end = token.i + 1
        while end < len(doc) and end - token.i <= 3 and _is_name_token(doc[end]) and end not in taken:
            end += 1
        if end - token.i >= 3:  # at least a first name and a surname
            span = doc[token.i + 1 : end]
            found.append(
                _RawMention(span=span, label="PERSON", name=span.text, titles=frozenset({title_noun(token.text)}))
            )
    return found


def _is_name_token(token: Token) -> bool:
    return token.pos_ == "PROPN" and token.is_title and token.is_alpha and token.lower_ not in PERSON_TITLES


def _missed_name_mentions(doc: Doc, full_names: list[_RawMention], known: KnownPeople | None) -> list[_RawMention]:
    """Surnames and first names of the article's people (or of known people acting in it,
    "Schiff asked") that the model left unlabelled."""
    words = {word for full in full_names for word in (full.span[0].text, _surname(full.name)) if word[:1].isupper()}
    if known is not None:
        words.update(t.text for t in doc if t.dep_ in SUBJECT_DEPS and t.text[:1].isupper() and known.full_name(t.text))
    labelled = {token.i for ent in doc.ents for token in ent}
    return [
        _RawMention(
            span=doc[token.i : token.i + 1],
            label="PERSON",
            name=token.text,
            titles=_titles_before(doc[token.i : token.i + 1]),
        )
        for token in doc
        if token.text in words and token.i not in labelled and (token.pos_ == "PROPN" or not token.is_sent_start)
    ]


def _trim(ent: Span) -> Span | None:
    """Drop titles, determiners and possessives around the name itself."""
    tokens: list[Token] = list(ent)
    if ent.label_ == "PERSON":
        for index, token in enumerate(tokens[1:], start=1):
            if token.tag_ == "POS" and index < len(tokens) - 1:
                tokens = tokens[:index]  # "Putin’s Victory Day" → "Putin"
                break
    while tokens and (tokens[-1].tag_ == "POS" or tokens[-1].is_punct):
        tokens.pop()
    while tokens and _is_leading_noise(tokens[0], ent.label_, remaining=len(tokens)):
        tokens.pop(0)
    if not tokens:
        return None
    return ent.doc[tokens[0].i : tokens[-1].i + 1]


def _is_leading_noise(token: Token, label: str, *, remaining: int) -> bool:
    if token.lower_ in {"the", "a", "an"} or token.is_punct:
        return True
    if label != "PERSON" or remaining == 1:
        return False
    return (
        token.pos_ in NON_NAME_POS
        or token.is_lower
        or token.lower_.rstrip(".") + "." in PERSON_TITLES
        or (token.lower_ in PERSON_TITLES)
        or _is_sentence_initial_participle(token)
    )


def _is_sentence_initial_participle(token: Token) -> bool:
    """ "Hosting Cook, Benioff said …": the model folds an opening -ing verb into the name."""
    return token.is_sent_start is True and token.lower_.endswith("ing") and len(token) > 5


def _full_names_by_word(full_names: list[_RawMention]) -> dict[str, list[_RawMention]]:
    """Full names by their first name and surname keys, in text order."""
    by_word: dict[str, list[_RawMention]] = defaultdict(list)
    for full in full_names:
        for word in _first_and_last(full.name):
            by_word[word].append(full)
    return by_word


def _full_name(mention: _RawMention, by_word: dict[str, list[_RawMention]]) -> str | None:
    """The multi-word PERSON name a one-word mention stands for, nearest first."""
    key = name_key(mention.name)
    if " " in key:
        return None
    matches = by_word.get(key, [])
    if not matches:
        return None
    before = [f for f in matches if f.span.start_char <= mention.span.start_char]
    chosen = before[-1] if before else Counter(f.name for f in matches).most_common(1)[0][0]
    return chosen if isinstance(chosen, str) else chosen.name


def _known_full_name(mention: _RawMention, known: KnownPeople | None) -> str | None:
    """A lone surname the article never expands, from the known-people file ("Trump" → "Donald Trump")."""
    if known is None or mention.label != "PERSON" or " " in mention.name or name_key(mention.name) in place_names():
        return None
    return known.full_name(mention.name)


def _first_and_last(name: str) -> set[str]:
    words = name_key(name).split()
    return {words[0], name_key(_surname(name))} if words else set()


def _resolve_group(
    members: list[tuple[_RawMention, str, bool]], full_names: list[_RawMention]
) -> list[ResolvedMention]:
    name = Counter(canonical for _, canonical, _ in members).most_common(1)[0][0]
    titles = frozenset(title for m, _, _ in members for title in m.titles)
    label = "PERSON" if any(forced for _, _, forced in members) else _vote([m.label for m, _, _ in members])
    if label == "PERSON" and " " not in name.strip() and name_key(name) in place_names():
        label = "GPE"
    if label == "PERSON" and not _looks_like_a_person([m for m, _, _ in members], name, titles):
        if not name[:1].isupper():
            return []  # a lowercase word the model took for a name
        label = _vote([m.label for m, _, _ in members if m.label != "PERSON"] or ["ORG"])
    return [
        ResolvedMention(
            start=m.span.start_char,
            end=m.span.end_char,
            text=m.span.text,
            name=name,
            type=label,
            token_start=m.span.start,
            token_end=m.span.end,
            titles=titles,
        )
        for m, _, _ in members
    ]


def _looks_like_a_person(members: list[_RawMention], name: str, titles: frozenset[str]) -> bool:
    """Evidence beyond the model's label: capitalised, no company words, never "the X", and a lone
    word must have a title or act as someone ("Schiff asked"); a lone CamelCase word is a brand."""
    words = name.split()
    if not name[:1].isupper() or any(word.lower() in ORGANISATION_WORDS for word in words):
        return False
    if any(_is_definite_noun(m.span) for m in members) or name.lower().rstrip(".") + "." in PERSON_TITLES:
        return False
    if _is_known_organisation(name) or _only_an_employer(members) or any(_acronym_after(m.span) for m in members):
        return False
    if all(_listed_among_things(m.span) for m in members):
        return False
    if len(words) > 1:
        return True
    if re.search(r"[a-z][A-Z]", name):
        return False
    return bool(titles) or any(token.dep_ in SUBJECT_DEPS | {"poss"} for m in members for token in m.span)


def _acronym_after(span: Span) -> str | None:
    """The acronym a name is introduced with: "… Prevention (CDC)", "Maghawir al Thawra, or MaT"."""
    doc = span.doc
    following = [t.text for t in doc[span.end : span.end + 3]]
    if len(following) == 3 and following[0] == "(" and following[2] == ")" and _is_acronym(following[1]):
        return following[1]
    if len(following) >= 3 and following[0] == "," and following[1] == "or" and _is_acronym(following[2]):
        return following[2]
    return None


def _is_acronym(word: str) -> bool:
    return 2 <= len(word) <= 8 and sum(ch.isupper() for ch in word) >= 2 and word.isalpha()


def _acronyms(raw: list[_RawMention]) -> dict[str, str]:
    """Acronym → the full name it was introduced with, so later "CDC" mentions join that entity."""
    found: dict[str, str] = {}
    for mention in raw:
        acronym = _acronym_after(mention.span) if len(mention.span) > 1 else None
        if acronym is not None:
            found.setdefault(acronym, mention.name)
    return found


def _only_an_employer(members: list[_RawMention]) -> bool:
    """Named only as where someone works: "a spokesperson for Inherent Resolve", "an analyst at Stratfor"."""
    return all(
        m.span.root.dep_ == "pobj"
        and m.span.root.head.lower_ in {"for", "at", "of", "with"}
        and m.span.root.head.head.lemma_.lower() in PERSON_TITLES
        for m in members
    )


def _listed_among_things(span: Span) -> bool:
    """ "franchises such as Assassin's Creed, Tomb Raider …": an example of a kind of thing, not of people."""
    first = min([span.root, *span.root.conjuncts], key=lambda t: t.i)
    marker = first.head
    if first.dep_ != "pobj" or marker.lower_ not in {"as", "like", "including"}:
        return False
    kind = marker.head.head if marker.head.lower_ == "such" else marker.head
    return kind.tag_ == "NNS" and kind.lemma_.lower() not in PERSON_TITLES | PEOPLE_NOUNS


def _is_known_organisation(name: str) -> bool:
    return name_key(name) in known_organisations()


def _is_definite_noun(span: Span) -> bool:
    """ "the Berm", "the Mujahideen" — but not "the Trump administration", where the name is a modifier."""
    before = span.doc[span.start - 1] if span.start > 0 else None
    return before is not None and before.lower_ == "the" and span[-1].dep_ not in {"compound", "amod", "nmod", "poss"}


def _vote(labels: list[str]) -> str:
    """The most frequent label; ties are broken away from PERSON."""
    counts = Counter(labels)
    best = max(counts.values())
    tied = [label for label in LABEL_PREFERENCE if counts.get(label) == best]
    return tied[0] if tied else counts.most_common(1)[0][0]


def _entities(resolved: list[ResolvedMention]) -> tuple[Entity, ...]:
    by_name: dict[tuple[str, str], list[Mention]] = defaultdict(list)
    for mention in resolved:
        by_name[(mention.name, mention.type)].append(Mention(mention.start, mention.end, mention.text))
    return tuple(Entity(name=name, type=label, mentions=tuple(ms)) for (name, label), ms in by_name.items())
