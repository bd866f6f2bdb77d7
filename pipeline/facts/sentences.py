"""Sentence and text lookups that do not rebuild the document on every call.

spaCy's ``Token.sent`` walks the document's sentences and ``Doc.text`` joins
every token on each access, which made them the facts stage's main cost; the
rules use ``sentence_of`` and ``text_of`` instead, cached on the Doc.
"""

from __future__ import annotations

from bisect import bisect_right

from spacy.tokens import Doc, Span, Token

_CACHE_KEY = "newsflow_sentences"
_TEXT_KEY = "newsflow_text"


def text_of(doc: Doc) -> str:
    """``doc.text``, computed once."""
    text = doc.user_data.get(_TEXT_KEY)
    if text is None:
        text = doc.text
        doc.user_data[_TEXT_KEY] = text
    return str(text)


def _sentences(doc: Doc) -> tuple[list[int], list[Span]]:
    cached = doc.user_data.get(_CACHE_KEY)
    if cached is None:
        spans = list(doc.sents)
        cached = ([span.start for span in spans], spans)
        doc.user_data[_CACHE_KEY] = cached
    return cached


def sentence_of(token: Token) -> Span:
    """The sentence a token belongs to."""
    starts, spans = _sentences(token.doc)
    return spans[bisect_right(starts, token.i) - 1]


def sentences(doc: Doc) -> list[Span]:
    return _sentences(doc)[1]
