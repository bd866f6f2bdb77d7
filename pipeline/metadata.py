"""Document metadata from YAML (a file's ``NAME.meta.yaml`` sidecar, Markdown front matter) as string fields.

YAML is loaded with the base loader, which makes every scalar a string as written (no dates, numbers or tags
to construct, so "2025-13-45" or "!!python/…" cannot raise), and only scalar fields are kept (a list of
scalars is joined), so a small file of aliases or deep nesting cannot grow into a huge value. Anything that
is not a mapping of fields is a ``MetadataError`` with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

import yaml

CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SCALARS = (str, int, float, bool, date)


class MetadataError(ValueError):
    """YAML metadata that cannot be used; the message says why."""


class MetadataTooDeepError(MetadataError):
    """YAML that is nested deeper than the parser goes: metadata, but none of it usable."""


def load_metadata(text: str) -> dict[str, str]:
    """The fields of a YAML mapping, as lower-case keys and string values."""
    try:
        loaded = yaml.load(text, Loader=yaml.BaseLoader)
    except RecursionError as error:
        raise MetadataTooDeepError("YAML nested too deeply") from error
    except Exception as error:
        raise MetadataError(f"not valid YAML: {_first_line(error)}") from error
    if not isinstance(loaded, dict):
        raise MetadataError("must be a mapping of key: value")
    return metadata_strings(loaded)


def metadata_strings(loaded: Mapping[object, object]) -> dict[str, str]:
    """YAML metadata as lower-case keys and string values; lists are joined, anything nested is dropped."""
    return {
        clean_text(str(key).lower()): clean_text(_as_text(value))
        for key, value in loaded.items()
        if value is not None and isinstance(key, SCALARS)
    }


def clean_text(text: str) -> str:
    """Text as it can be stored and printed: no control characters, no lone surrogates."""
    return CONTROL_CHARS.sub("", text).encode("utf-8", "replace").decode("utf-8")


def _as_text(value: object) -> str:
    """A scalar as text, a list as its scalars joined; anything nested is dropped (YAML aliases could nest
    a small file into an exponentially large string)."""
    if isinstance(value, list):
        return ", ".join(str(item) for item in value if isinstance(item, SCALARS))
    return str(value) if isinstance(value, SCALARS) else ""


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
