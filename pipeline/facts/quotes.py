"""Quotes: direct (quoted words with a speaker) and indirect (reported speech).

A direct quote's speaker is the subject of the nearest cue verb outside the
marks in the sentences the quote touches ("…,” Zelensky said. “…”), or of an
"according to X" phrase. A quote with no cue of its own continues the previous
speaker when it follows in the same paragraph, or opens the next paragraph.
Quoted words nobody is reported to have said (scare quotes, titles,
nicknames) and quotes in heading lines are not quotes. Indirect speech is a
cue verb's content clause on either side of it ("X said that …", "…, X said")
or the rest of an "according to X" sentence, unless the clause is mostly
quoted already.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from spacy.tokens import Doc, Span, Token

from pipeline.facts.entities import ResolvedMention
from pipeline.facts.marks import QuotedSpan, quoted_spans
from pipeline.facts.sentences import sentence_of, sentences, text_of
from pipeline.facts.speakers import (
    INDIRECT_CUES,
    SPEECH_CUES,
    MentionIndex,
    Speaker,
    speaker_for,
    subject_of,
)
from pipeline.models import Outline, Quote

MAX_BRIDGE_CHARS = 200
MAX_QUOTED_SHARE = 0.6  # an indirect clause mostly inside quotation marks is the direct quote again
MIN_CLAUSE_TOKENS = 3
MAX_TERM_WORDS = 3  # a verbless quoted fragment this short modifying a noun is a term, not speech
MODIFIER_DEPS = frozenset({"amod", "compound", "nmod", "poss", "appos", "nummod"})


CUE_WINDOW_TOKENS = 100  # tokens around the marks where a speech verb or "according to" may be


@dataclass(frozen=True)
class _Attribution:
    speaker: Speaker | None
    cue: str | None


def extract_quotes(doc: Doc, mentions: tuple[ResolvedMention, ...], outline: Outline) -> list[Quote]:
    """All quotes of the article, in text order."""
    index = MentionIndex(mentions)
    spans = [span for span in quoted_spans(text_of(doc)) if outline.in_body(span.start)]
    direct = list(_direct_quotes(doc, spans, index, outline))
    indirect = list(_indirect_quotes(doc, index, outline, quoted=spans))
    return sorted(direct + indirect, key=lambda q: (q.start, q.kind))


def _direct_quotes(doc: Doc, spans: list[QuotedSpan], index: MentionIndex, outline: Outline) -> Iterator[Quote]:
    previous: tuple[QuotedSpan, _Attribution] | None = None
    for span in spans:
        if _is_term(doc, span):
            continue
        attribution = _attribute(doc, span, index, last_speaker=previous[1].speaker if previous else None)
        if attribution.speaker is None and previous and _continues(text_of(doc), previous[0], span):
            attribution = _Attribution(previous[1].speaker, None)
        if attribution.speaker is None:
            last = previous[1].speaker if previous else None
            attribution = _previous_paragraph_speaker(doc, span, index, last_speaker=last)
        if attribution.speaker is None:
            continue
        previous = (span, attribution)
        yield _quote(doc, "direct", (span.start, span.end), attribution, outline)


def _is_term(doc: Doc, span: QuotedSpan) -> bool:
    """Quoted words that name or label rather than report speech: a Title Case name ("Three Amigos",
    a song, a sign) or a short verbless fragment modifying a noun ("an “irregular” channel")."""
    tokens = doc.char_span(span.start, span.end, alignment_mode="expand")
    if tokens is None:
        return False
    words = [t for t in tokens if t.is_alpha]
    if len(words) >= 2 and words[0].text[0].isupper() and all(w.text[0].isupper() or w.is_stop for w in words):
        return sum(w.text[0].isupper() for w in words) >= 2
    if len(words) > MAX_TERM_WORDS or any(t.pos_ in {"VERB", "AUX"} for t in tokens):
        return False
    root = tokens.root
    if root.dep_ == "pobj":
        return root.head.head.pos_ not in {"VERB", "AUX"}
    return root.dep_ in MODIFIER_DEPS


def _quote(doc: Doc, kind: str, offsets: tuple[int, int], attribution: _Attribution, outline: Outline) -> Quote:
    start, end = offsets
    speaker = attribution.speaker
    return Quote(
        kind="direct" if kind == "direct" else "indirect",
        text=text_of(doc)[start:end],
        start=start,
        end=end,
        speaker=speaker.name if speaker else None,
        speaker_text=speaker.text if speaker else None,
        cue=attribution.cue,
        section=outline.position_at(start),
    )


def _attribute(doc: Doc, span: QuotedSpan, index: MentionIndex, *, last_speaker: Speaker | None) -> _Attribution:
    for cue in _cues_near(doc, span):
        for subject in (subject_of(cue), _person_right_after(cue, index)):
            if subject is not None and not span.outer_start <= subject.idx < span.outer_end:
                return _Attribution(speaker_for(subject, index, last_speaker=last_speaker), cue.text)
    for sentence in _sentences_touching(doc, span):
        source = _according_to(sentence)
        if source is not None and not span.outer_start <= source.idx < span.outer_end:
            return _Attribution(speaker_for(source, index, last_speaker=last_speaker), "according to")
    return _Attribution(None, None)


def _person_right_after(cue: Token, index: MentionIndex) -> Token | None:
    """ "…,” says Early." where the model parsed the name as an adverb: a person named right after the cue."""
    following = cue.doc[cue.i + 1] if cue.i + 1 < len(cue.doc) else None
    mention = index.at(following) if following is not None else None
    return following if mention is not None and mention.type == "PERSON" else None


def _cues_near(doc: Doc, span: QuotedSpan) -> list[Token]:
    """Speech verbs outside the marks in the sentences the quote touches, nearest first."""
    cues = [
        token
        for sentence in _sentences_touching(doc, span)
        for token in sentence
        if token.lemma_.lower() in SPEECH_CUES
        and token.pos_ in {"VERB", "AUX"}
        and not span.outer_start <= token.idx < span.outer_end
    ]
    return sorted(cues, key=lambda t: min(abs(t.idx - span.outer_start), abs(t.idx - span.outer_end)))


def _sentences_touching(doc: Doc, span: QuotedSpan) -> list[Span]:
    """The sentences the marks fall in, plus an attribution sentence right after the closing mark
    ("?" Schiff asked.) and an introducing one ending in a colon (Ms Persson said: "…), each clipped to
    ``CUE_WINDOW_TOKENS`` around the marks (a text without sentence ends must not cost each quote all of it)."""
    first = doc.char_span(span.outer_start, span.outer_start + 1, alignment_mode="expand")
    last = doc.char_span(max(span.outer_end - 1, span.outer_start), span.outer_end, alignment_mode="expand")
    if first is None or last is None:
        return []
    sentences = [sentence_of(first[0]), sentence_of(last[-1])]
    after = sentence_of(last[-1]).end
    if after < len(doc) and _adjacent(text_of(doc)[span.outer_end : doc[after].idx]):
        sentences.append(sentence_of(doc[after]))
    before = sentence_of(first[0]).start
    if before > 0 and text_of(doc)[: span.outer_start].rstrip().endswith(":"):
        sentences.append(sentence_of(doc[before - 1]))
    low, high = first[0].i - CUE_WINDOW_TOKENS, last[-1].i + CUE_WINDOW_TOKENS
    clipped = (doc[max(s.start, low) : min(s.end, high)] for s in sentences)
    return list({s.start: s for s in clipped if len(s)}.values())


def _adjacent(gap: str) -> bool:
    return "\n" not in gap and len(gap.strip()) <= 1


def _previous_paragraph_speaker(
    doc: Doc, span: QuotedSpan, index: MentionIndex, *, last_speaker: Speaker | None
) -> _Attribution:
    """A paragraph that is one quote continues whoever spoke at the end of the paragraph before it."""
    text = text_of(doc)
    opens_paragraph = span.outer_start == 0 or text[span.outer_start - 1] == "\n"
    if not opens_paragraph or text[span.outer_end : text.find("\n", span.outer_end) % (len(text) + 1)].strip():
        return _Attribution(None, None)
    start = text.rfind("\n\n", 0, max(0, span.outer_start - 2))
    previous = doc.char_span(start + 2 if start >= 0 else 0, span.outer_start, alignment_mode="contract")
    if previous is None:
        return _Attribution(None, None)
    for token in reversed(previous):
        if token.lemma_.lower() in SPEECH_CUES and token.pos_ == "VERB" and (subject := subject_of(token)):
            return _Attribution(speaker_for(subject, index, last_speaker=last_speaker), None)
    return _Attribution(None, None)


def _continues(text: str, earlier: QuotedSpan, later: QuotedSpan) -> bool:
    """The later quote follows in the same paragraph, or opens the paragraph right after the earlier one's."""
    bridge = text[earlier.outer_end : later.outer_start]
    if "\n" not in bridge:
        return len(bridge) <= MAX_BRIDGE_CHARS
    opens_paragraph = later.outer_start == 0 or text[later.outer_start - 1] == "\n"
    return opens_paragraph and bridge.count("\n\n") <= 1 and "\n" not in bridge.split("\n\n")[0].strip()


def _according_to(sentence: Span) -> Token | None:
    """The source noun of an "according to X" phrase in the sentence."""
    for token in sentence:
        if token.lower_ == "according" and token.i + 1 < len(token.doc) and token.doc[token.i + 1].lower_ == "to":
            source = next((c for c in token.doc[token.i + 1].children if c.dep_ == "pobj"), None)
            if source is not None:
                return source
    return None


def _indirect_quotes(doc: Doc, index: MentionIndex, outline: Outline, *, quoted: list[QuotedSpan]) -> Iterator[Quote]:
    for sentence in sentences(doc):
        if not outline.in_body(sentence.start_char):
            continue
        for content, subject, cue in _reported_clauses(sentence):
            if _quoted_share(content, quoted) > MAX_QUOTED_SHARE:
                continue
            attribution = _Attribution(speaker_for(subject, index, last_speaker=None), cue)
            yield _quote(doc, "indirect", (content.start_char, content.end_char), attribution, outline)


def _reported_clauses(sentence: Span) -> Iterator[tuple[Span, Token, str]]:
    """(content, subject, cue) for every piece of reported speech in the sentence."""
    for token in sentence:
        if token.lemma_.lower() not in INDIRECT_CUES or token.pos_ != "VERB":
            continue
        subject = subject_of(token)
        clause = _content_clause(token)
        if subject is not None and clause is not None and not clause[0].i <= subject.i < clause[-1].i + 1:
            yield clause, subject, token.text
    source = _according_to(sentence)
    if source is not None:
        rest = _outside_according(sentence, source)
        if rest is not None:
            yield rest, source, "according to"


def _content_clause(cue: Token) -> Span | None:
    """The clause a cue verb reports: its ccomp after it, or the clause it is attached to before it."""
    doc = cue.doc
    after = next((c for c in cue.children if c.dep_ == "ccomp" and c.i > cue.i), None)
    if after is not None:
        return _trim_clause(doc, after.left_edge.i, after.right_edge.i + 1)
    before = next((c for c in cue.children if c.dep_ == "ccomp" and c.i < cue.i), None)
    if before is not None:
        return _trim_clause(doc, before.left_edge.i, before.right_edge.i + 1)
    if cue.dep_ in {"parataxis", "ccomp"} and cue.head.i < cue.i and cue.head.pos_ in {"VERB", "AUX"}:
        head = cue.head
        return _trim_clause(doc, head.left_edge.i, min(cue.left_edge.i, head.right_edge.i + 1))
    return None


def _outside_according(sentence: Span, source: Token) -> Span | None:
    """The sentence without its "according to X" phrase: the longer side of it."""
    doc = sentence.doc
    according = source.head.head  # pobj → "to" → "according"
    phrase_start, phrase_end = according.i, source.right_edge.i + 1
    before = _trim_clause(doc, sentence.start, phrase_start)
    after = _trim_clause(doc, phrase_end, sentence.end)
    candidates = [c for c in (before, after) if c is not None]
    return max(candidates, key=len) if candidates else None


def _trim_clause(doc: Doc, start: int, end: int) -> Span | None:
    """A clause without its "that", edge punctuation and quotation marks."""
    while start < end and (doc[start].dep_ == "mark" or doc[start].is_punct or doc[start].is_space):
        start += 1
    while end > start and (doc[end - 1].is_punct or doc[end - 1].is_space):
        end -= 1
    if end - start < MIN_CLAUSE_TOKENS:
        return None
    return doc[start:end]


def _quoted_share(content: Span, quoted: list[QuotedSpan]) -> float:
    covered = sum(max(0, min(content.end_char, q.outer_end) - max(content.start_char, q.outer_start)) for q in quoted)
    return covered / max(1, content.end_char - content.start_char)
