"""Who is speaking: the subject of a cue verb, resolved to an entity or a pronoun's antecedent.

A speaker is a person under their canonical name, a title referring back to a
person ("the governor" → the person introduced as "Gov. Eric Holcomb"), a
pronoun's antecedent (kept as written in ``text``), or a group or organisation
as the article names it ("Russia’s Foreign Ministry", "His office" → "Eric
Holcomb's office").
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from spacy.tokens import Doc, Span, Token

from pipeline.facts.entities import ResolvedMention
from pipeline.facts.names import title_noun
from pipeline.facts.sentences import sentence_of

SPEECH_CUES = frozenset(
    """
    say tell add state remark note suggest ask write explain warn insist claim argue declare
    announce acknowledge admit respond reply comment continue conclude recall describe observe
    stress emphasize emphasise indicate report told quip testify tweet post caution predict
    promise vow concede confirm deny urge reiterate joke beg call dub label brand term plead
    complain lament scoff boast allege assert contend maintain muse recount shout tout hail
    assure reassure remember chant cheer
    """.split()
)
INDIRECT_CUES = frozenset(
    """
    say tell add state indicate report claim announce explain note remark write argue confirm
    acknowledge admit warn testify reiterate insist deny allege assert contend maintain suggest
    predict concede stress emphasize emphasise joke complain recall reveal disclose estimate
    """.split()
)
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})
CLIMB_DEPS = frozenset({"conj", "xcomp", "advcl"})
RELATIVE_PRONOUNS = frozenset({"who", "that", "which", "whom"})
PERSON_PRONOUNS = frozenset({"he", "she", "him", "her", "his"})
GROUP_PRONOUNS = frozenset({"they", "we", "their", "it", "its"})
POSSESSIVE_PRONOUNS = frozenset({"his", "her", "their", "its"})
PHRASE_PREPOSITIONS = frozenset({"for", "of", "at", "in", "with", "from"})
MAX_PHRASE_TOKENS = 12
PREDETERMINERS = frozenset({"both", "all", "each", "either", "neither"})
DOCUMENT_NOUNS = frozenset({"report", "statement", "release", "note", "letter", "filing", "study", "survey"})


@dataclass(frozen=True)
class Speaker:
    name: str | None
    text: str
    start: int
    end: int
    is_person: bool = True


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

    def titled_before(self, noun: str, char_offset: int) -> ResolvedMention | None:
        """The nearest earlier person given this title ("governor" for "Gov. Eric Holcomb")."""
        titled = [m for m in self.persons_before(char_offset) if noun in m.titles]
        return titled[-1] if titled else None


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
        current = _reporting_head(current.head) if current.tag_ == "VBG" else current.head
    return None


def _reporting_head(verb: Token) -> Token:
    """ "X said that Y concluded …, saying …": the participle belongs to the reporting verb, not Y's."""
    if verb.dep_ == "ccomp" and verb.head.lemma_.lower() in SPEECH_CUES:
        return verb.head
    return verb


def speaker_for(subject: Token, mentions: MentionIndex, *, last_speaker: Speaker | None) -> Speaker:
    """A speaker from a subject token: an entity, a pronoun's antecedent, a titled person or the noun phrase."""
    if any(c.dep_ == "conj" for c in subject.children) and any(c.dep_ == "cc" for c in subject.children):
        return _joint_speaker(subject)
    if subject.lemma_.lower() in DOCUMENT_NOUNS:
        source = _document_source(subject)
        if source is not None:
            return speaker_for(source, mentions, last_speaker=last_speaker)
    mention = mentions.at(subject) or _mention_in_compound(subject, mentions) or _person_in_phrase(subject, mentions)
    if mention is not None and mention.type == "PERSON":
        return Speaker(mention.name, mention.text, mention.start, mention.end)
    if subject.lower_ in PERSON_PRONOUNS | GROUP_PRONOUNS:
        antecedent = _antecedent(subject, mentions, last_speaker=last_speaker)
        is_person = subject.lower_ in PERSON_PRONOUNS
        return Speaker(antecedent, subject.text, subject.idx, subject.idx + len(subject.text), is_person)
    phrase = noun_phrase(subject)
    titled = _titled_person(subject, mentions)
    if titled is not None:
        return Speaker(titled.name, phrase.text, phrase.start_char, phrase.end_char)
    name = _with_possessor(phrase, mentions, last_speaker=last_speaker)
    return Speaker(name, phrase.text, phrase.start_char, phrase.end_char, is_person=False)


def _joint_speaker(subject: Token) -> Speaker:
    """ "Vindman and Williams testified …": the subjects together, as written."""
    last = max((c for c in subject.children if c.dep_ == "conj"), key=lambda c: c.i)
    start = subject.left_edge.i
    while start < subject.i and subject.doc[start].lower_ in PREDETERMINERS:
        start += 1
    phrase = subject.doc[start : noun_phrase(last).end]
    return Speaker(phrase.text, phrase.text, phrase.start_char, phrase.end_char, is_person=False)


def _document_source(subject: Token) -> Token | None:
    """The one behind a report or statement: "a report from Kotak said …", or, for "the statement
    said", whoever "said in a statement" in the sentences before."""
    for child in subject.children:
        if child.dep_ == "prep" and child.lower_ in {"from", "by", "of"}:
            source = next((c for c in child.children if c.dep_ == "pobj"), None)
            if source is not None:
                return source
    earlier = subject.doc[max(0, sentence_of(subject).start - 80) : sentence_of(subject).start]
    for token in reversed(earlier):
        if token.lemma_ == subject.lemma_ and token.dep_ == "pobj" and token.head.lower_ == "in":
            verb = token.head.head
            if verb.lemma_.lower() in SPEECH_CUES:
                return subject_of(verb)
    return None


def noun_phrase(head: Token) -> Span:
    """The head's phrase with its modifiers and "for/of …" attachments, without relative clauses."""
    doc = head.doc
    end = head.i + 1
    for child in head.rights:
        if child.dep_ == "prep" and child.lower_ in PHRASE_PREPOSITIONS and child.i == end:
            end = child.right_edge.i + 1
        elif child.dep_ in {"compound", "amod"} and child.i == end:
            end = child.i + 1
        else:
            break
    start = head.left_edge.i
    return doc[start : min(end, start + MAX_PHRASE_TOKENS)]


def _mention_in_compound(subject: Token, mentions: MentionIndex) -> ResolvedMention | None:
    """The appositive or compound name of the subject, as in "Putin’s spokesperson Dmitri Peskov"."""
    for child in subject.children:
        if child.dep_ in {"appos", "compound"}:
            mention = mentions.at(child)
            if mention is not None and mention.type == "PERSON":
                return mention
    return None


def _person_in_phrase(subject: Token, mentions: MentionIndex) -> ResolvedMention | None:
    """ "Chris Early, senior vp partnerships, says": the one person named in the subject's phrase,
    leaving out possessors ("Nisan Ahmado's source" is not Ahmado)."""
    doc = subject.doc
    people = {
        m.start: m
        for token in doc[subject.left_edge.i : subject.i]
        if (m := mentions.at(token)) is not None and m.type == "PERSON" and not _is_possessor(doc, m)
    }
    return next(iter(people.values())) if len(people) == 1 else None


def _is_possessor(doc: Doc, mention: ResolvedMention) -> bool:
    end = mention.token_end
    return (end < len(doc) and doc[end].tag_ == "POS") or doc[end - 1].dep_ == "poss"


def _titled_person(subject: Token, mentions: MentionIndex) -> ResolvedMention | None:
    """ "The governor said": the nearest earlier person introduced with that title (singular nouns only)."""
    if (
        subject.pos_ != "NOUN"
        or subject.tag_ != "NN"
        or not any(c.dep_ == "det" and c.lower_ == "the" for c in subject.children)
    ):
        return None
    return mentions.titled_before(title_noun(subject.lemma_), subject.idx)


def _with_possessor(phrase: Span, mentions: MentionIndex, *, last_speaker: Speaker | None) -> str:
    """ "His office" → "Eric Holcomb's office" when the pronoun resolves; the phrase as written otherwise."""
    first = phrase[0]
    if first.lower_ not in POSSESSIVE_PRONOUNS or len(phrase) < 2:
        return phrase.text
    owner = _antecedent(first, mentions, last_speaker=last_speaker)
    return f"{owner}'s {phrase[1:].text}" if owner else phrase.text


def _antecedent(pronoun: Token, mentions: MentionIndex, *, last_speaker: Speaker | None) -> str | None:
    """The nearest compatible earlier referent: a person for he/she, a group or organisation for it/they."""
    if pronoun.lower_ in GROUP_PRONOUNS:
        return _plural_subject_before(pronoun) or _group_before(pronoun, mentions, last_speaker=last_speaker)
    candidates = _compatible(pronoun, mentions)
    if not candidates:
        return last_speaker.name if last_speaker and last_speaker.is_person else None
    sentence_start = sentence_of(pronoun).start_char
    same_sentence = [m for m in candidates if m.start >= sentence_start and _is_subject(pronoun.doc, m)]
    if same_sentence:
        return same_sentence[-1].name
    previous_sentence = _previous_sentence(pronoun)
    subjects = [
        m
        for m in candidates
        if previous_sentence is not None
        and m.start >= previous_sentence.start_char
        and m.end <= sentence_of(pronoun).start_char
        and _is_subject(pronoun.doc, m)
    ]
    if subjects:
        return subjects[-1].name
    if _spoke_recently(last_speaker, since=(previous_sentence or sentence_of(pronoun)).start_char):
        assert last_speaker is not None
        return last_speaker.name
    return candidates[-1].name


def _spoke_recently(speaker: Speaker | None, *, since: int) -> bool:
    return speaker is not None and bool(speaker.name) and speaker.is_person and speaker.start >= since


def _compatible(pronoun: Token, mentions: MentionIndex) -> list[ResolvedMention]:
    """People mentioned before the pronoun, less those named later in its own sentence:
    in "he called Omar a terrorist", he is not Omar."""
    sentence_end = sentence_of(pronoun).end_char
    later = {m.name for m in mentions.persons_before(sentence_end) if m.start > pronoun.idx}
    return [m for m in mentions.persons_before(pronoun.idx) if m.name not in later]


def _previous_sentence(token: Token) -> Span | None:
    """The sentence before, skipping fragments without words (a stray closing mark)."""
    start = sentence_of(token).start
    while start > 0:
        sentence = sentence_of(token.doc[start - 1])
        if any(t.is_alpha for t in sentence):
            return sentence
        start = sentence.start
    return None


def _plural_subject_before(pronoun: Token) -> str | None:
    """The nearest plural subject earlier in the sentence ("When Russian leaders discuss …, they …")."""
    if pronoun.lower_ not in {"they", "we", "their"}:
        return None
    for token in reversed(pronoun.doc[sentence_of(pronoun).start : pronoun.i]):
        if token.dep_ in SUBJECT_DEPS and token.tag_ in {"NNS", "NNPS"}:
            return pronoun.doc[token.left_edge.i : token.i + 1].text
    return None


def _group_before(pronoun: Token, mentions: MentionIndex, *, last_speaker: Speaker | None) -> str | None:
    """ "It said …": the last group speaker, else a group that spoke or was the subject just before."""
    if last_speaker is not None and last_speaker.name and not last_speaker.is_person:
        return last_speaker.name
    sentences = [s for s in (sentence_of(pronoun), _previous_sentence(pronoun)) if s is not None]
    for speaking in (True, False):
        for sentence in sentences:
            subject = _non_person_subject(sentence, before=pronoun.i, mentions=mentions, speaking=speaking)
            if subject is not None:
                return subject
    return None


def _non_person_subject(sentence: Span, *, before: int, mentions: MentionIndex, speaking: bool) -> str | None:
    """The first subject in the sentence that is a group or organisation (of a speech verb, if ``speaking``)."""
    for token in sentence:
        if token.i >= before or token.dep_ not in SUBJECT_DEPS or token.pos_ == "PRON":
            continue
        if speaking and token.head.lemma_.lower() not in SPEECH_CUES:
            continue
        speaker = speaker_for(token, mentions, last_speaker=None)
        if not speaker.is_person and speaker.name:
            return speaker.name
    return None


def _is_subject(doc: Doc, mention: ResolvedMention) -> bool:
    return any(token.dep_ in SUBJECT_DEPS for token in doc[mention.token_start : mention.token_end]) or any(
        token.head.dep_ in SUBJECT_DEPS and token.dep_ in {"appos", "compound"}
        for token in doc[mention.token_start : mention.token_end]
    )
