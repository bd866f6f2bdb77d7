"""The spaCy pipeline: loaded once per process, by a configurable name."""

from __future__ import annotations

import warnings
from functools import lru_cache
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from pipeline.errors import ModelNotFoundError

PARAGRAPH_COMPONENT = "newsflow_paragraph_boundaries"


@Language.component(PARAGRAPH_COMPONENT)
def paragraph_boundaries(doc: Doc) -> Doc:
    """Start a sentence after every blank line, so a heading never joins the next sentence."""
    for token in doc[1:]:
        previous = doc[token.i - 1]
        if "\n" in previous.text or "\n" in previous.whitespace_:
            token.is_sent_start = True
    return doc


@lru_cache(maxsize=2)
def load_model(name: str) -> Language:
    """Load a spaCy model by package name or path, once per process."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nlp = spacy.load(name)
    except OSError as error:
        raise ModelNotFoundError(
            f"spaCy model {name!r} is not installed; run `make install` or set NEWSFLOW_SPACY_MODEL"
        ) from error
    if PARAGRAPH_COMPONENT not in nlp.pipe_names:
        nlp.add_pipe(PARAGRAPH_COMPONENT, before="parser")
    return nlp


def check_model(name: str) -> None:
    """``ModelNotFoundError`` unless the model is installed (a package or a path), without loading it."""
    if not (spacy.util.is_package(name) or Path(name).exists()):
        raise ModelNotFoundError(
            f"spaCy model {name!r} is not installed; run `make install` or set NEWSFLOW_SPACY_MODEL"
        )
