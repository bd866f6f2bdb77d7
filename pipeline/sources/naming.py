"""The names one input may be known by: as typed, as a normalised URL, as an absolute or real path.

An article is stored under its canonical source (``pages.canonical_url``, ``files``' real path); a person types
what they fed in. Both sides go through ``source_names`` so that either finds the other."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.sources.pages import is_well_formed_url, normalise_url


def source_names(source: str) -> list[str]:
    """The names a source may be stored or asked for under: as given, normalised as a URL (host lower-cased,
    fragment and tracking parameters dropped), or resolved as a path; in that order, without repeats."""
    if is_well_formed_url(source):
        return list(dict.fromkeys([source, normalise_url(source)]))
    if "\x00" in source:
        return [source]
    path = Path(source).expanduser()
    return list(dict.fromkeys([source, str(path.absolute()), os.path.realpath(path)]))
