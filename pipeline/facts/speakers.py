"""Who is speaking: the subject of a cue verb, resolved to an entity or a pronoun's antecedent."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from spacy.tokens import Doc, Token

from pipeline.facts.entities import ResolvedMention

SPEECH_CUES = frozenset(
    """
    say tell add state remark note suggest ask write explain warn insist claim argue declare
    announce acknowledge admit respond reply comment continue conclude recall describe observe
    stress emphasize emphasise indicate report told quip testify tweet post caution predict
    promise vow concede confirm deny urge
    """.split()
)
INDIRECT_CUES = frozenset(
    "say tell add state indicate report claim announce explain note remark write argue confirm "
    "acknowledge admit warn".split()
)
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})
CLIMB_DEPS = frozenset({"conj", "xcomp", "advcl"})
RELATIVE_PRONOUNS = frozenset({"who", "that", "which", "whom"})
PERSON_PRONOUNS = frozenset({"he", "she", "him", "her"})
GROUP_PRONOUNS = frozenset({"they", "we"})
SPEAKER_TYPES = frozenset({"PERSON", "ORG", "GPE", "NORP"})


@dataclass(frozen=True)
class Speaker:
    name: str | None
    text: str
    start: int
    end: int


class MentionIndex:
    """Resolved entity mentions, looked up by token."""

    def __init__(self, mentions: tuple[ResolvedMention, ...]) -> None:
        self.mentions = mentions
        self._starts = [m.token_start for m in mentions]

    def at(self, token: Token) -> ResolvedMention | None:
        index = bisect_right(self._starts, token.i) - 1
        if index >= 0 and self.mentions[index].token_start <= token.i < self.mentions[index].token_end:
            return self.mentions[index]
        return None

    def persons_before(self, char_offset: int) -> list[ResolvedMention]:
        return [m for m in self.mentions if m.type == "PERSON" and m.end <= char_offset]


def subject_of(verb: Token) -> Token | None:
    """The grammatical subject of a verb, climbing through conjuncts and relative clauses."""
    current = verb
    for _ in range(5):
        subjects = [child for child in current.children if child.dep_ in SUBJECT_DEPS]
        if subjects:
            subject = subjects[0]
            if subject.lower_ in RELATIVE_PRONOUNS and current.dep_ == "relcl":
                return current.head
            return subject
        if current.dep_ not in CLIMB_DEPS or current.head is current:
            return None
        current = current.head
    return None


def speaker_for(subject: Token, mentions: MentionIndex, *, last_speaker: Speaker | None) -> Speaker:
    """A speaker from a subject token: an entity, a pronoun's antecedent, or the noun phrase."""
    doc: Doc = subject.doc
    mention = mentions.at(subject) or _mention_in_compound(subject, mentions)
    if mention is not None and mention.type == "PERSON":
        return Speaker(mention.name, mention.text, mention.start, mention.end)
    if subject.lower_ in PERSON_PRONOUNS | GROUP_PRONOUNS:
        antecedent = _antecedent(subject, mentions, last_speaker=last_speaker)
        return Speaker(antecedent, subject.text, subject.idx, subject.idx + len(subject.text))
    phrase = doc[subject.left_edge.i : subject.i + 1]
    return Speaker(phrase.text, phrase.text, phrase.start_char, phrase.end_char)


def _mention_in_compound(subject: Token, mentions: MentionIndex) -> ResolvedMention | None:
    """The appositive or compound name of the subject, as in "Putin’s spokesperson Dmitri Peskov"."""
    for child in subject.children:
        if child.dep_ in {"appos", "compound"}:
            mention = mentions.at(child)
            if mention is not None and mention.type == "PERSON":
                return mention
    return None


def _antecedent(pronoun: Token, mentions: MentionIndex, *, last_speaker: Speaker | None) -> str | None:
    """The nearest compatible earlier referent: a person for he/she, else the last speaker."""
    if pronoun.lower_ in GROUP_PRONOUNS:
        return _plural_subject_before(pronoun)
    candidates = mentions.persons_before(pronoun.idx)
    if not candidates:
        return last_speaker.name if last_speaker else None
    sentence_start = pronoun.sent.start_char
    previous_sentence = pronoun.doc[pronoun.sent.start - 1].sent if pronoun.sent.start > 0 else None
    subjects = [
        m
        for m in candidates
        if previous_sentence is not None
        and m.start >= previous_sentence.start_char
        and m.end <= sentence_start
        and _is_subject(pronoun.doc, m)
    ]
    if subjects:
        return subjects[-1].name
    if (
        last_speaker is not None
        and last_speaker.name
        and last_speaker.start >= (previous_sentence or pronoun.sent).start_char
    ):
        return last_speaker.name
    return candidates[-1].name


def _plural_subject_before(pronoun: Token) -> str | None:
    """The nearest plural subject earlier in the sentence ("When Russian leaders discuss …, they …")."""
    for token in reversed(pronoun.doc[pronoun.sent.start : pronoun.i]):
        if token.dep_ in SUBJECT_DEPS and token.tag_ in {"NNS", "NNPS"}:
            return pronoun.doc[token.left_edge.i : token.i + 1].text
    return None


def _is_subject(doc: Doc, mention: ResolvedMention) -> bool:
    return any(token.dep_ in SUBJECT_DEPS for token in doc[mention.token_start : mention.token_end]) or any(
        token.head.dep_ in SUBJECT_DEPS and token.dep_ in {"appos", "compound"}
        for token in doc[mention.token_start : mention.token_end]
    )
