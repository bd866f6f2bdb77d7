"""Claims: (actor, predicate, object) from stance verbs in the dependency parse.

"Moscow demands control over five Ukrainian territories" →
(Moscow, demand, control over five Ukrainian territories).
"""

from __future__ import annotations

from collections.abc import Iterator

from spacy.tokens import Doc, Span, Token

from pipeline.facts.entities import ResolvedMention
from pipeline.facts.sentences import sentence_of
from pipeline.facts.speakers import MentionIndex, speaker_for, subject_of
from pipeline.models import Claim, Outline

STANCE_VERBS = frozenset(
    "demand insist reject refuse agree propose pledge offer seek accept decline oppose vow promise "
    "threaten urge call support deny".split()
)
OBJECT_DEPS = ("dobj", "xcomp", "ccomp", "prep", "attr")
MAX_OBJECT_TOKENS = 30


def extract_claims(doc: Doc, mentions: tuple[ResolvedMention, ...], outline: Outline) -> list[Claim]:
    index = MentionIndex(mentions)
    return list(_claims(doc, index, outline))


def _claims(doc: Doc, index: MentionIndex, outline: Outline) -> Iterator[Claim]:
    for token in doc:
        if token.pos_ != "VERB" or token.lemma_.lower() not in STANCE_VERBS:
            continue
        subject = subject_of(token)
        target = _object_of(token)
        if subject is None or target is None:
            continue
        actor = speaker_for(subject, index, last_speaker=None)
        if not actor.name:
            continue
        start = min(actor.start, token.idx) if actor.start >= sentence_of(token).start_char else token.idx
        yield Claim(
            actor=actor.name,
            predicate=token.lemma_.lower(),
            object=target.text,
            start=start,
            end=target.end_char,
            section=outline.position_at(token.idx),
        )


def _object_of(verb: Token) -> Span | None:
    """What the stance is about: direct object, infinitive, content clause or "to …" phrase."""
    doc = verb.doc
    for dep in OBJECT_DEPS:
        for child in verb.children:
            if child.dep_ != dep or child.i < verb.i:
                continue
            if dep == "prep" and child.lower_ not in {"to", "for", "on", "over"}:
                continue
            span = doc[child.left_edge.i : child.right_edge.i + 1]
            if dep == "prep":
                span = doc[child.i + 1 : child.right_edge.i + 1] if child.i + 1 <= child.right_edge.i else span
            if dep == "dobj":
                span = _with_following_prep(verb, span)
            trimmed = _trim(span)
            if trimmed is not None:
                return trimmed
    return None


def _with_following_prep(verb: Token, span: Span) -> Span:
    """The verb's prepositional phrase right after its object ("demands control over five territories")."""
    doc = verb.doc
    for child in verb.children:
        if child.dep_ == "prep" and child.i == span.end and child.lower_ in {"over", "of", "for", "on"}:
            return doc[span.start : child.right_edge.i + 1]
    return span


def _trim(span: Span) -> Span | None:
    doc = span.doc
    start, end = span.start, min(span.end, span.start + MAX_OBJECT_TOKENS)
    while start < end and (doc[start].is_punct or doc[start].dep_ == "mark" or doc[start].lower_ == "to"):
        start += 1
    while end > start and doc[end - 1].is_punct:
        end -= 1
    return doc[start:end] if end > start else None
