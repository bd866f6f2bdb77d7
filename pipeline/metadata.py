"""Document metadata from YAML (a file's ``NAME.meta.yaml`` sidecar, Markdown front matter) as string fields.

YAML is loaded with the safe loader, and only scalar fields are kept (a list of scalars is joined), so a
small file of aliases or deep nesting cannot grow into a huge value. Anything that is not a mapping of
fields is a ``MetadataError`` with the reason.
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
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise MetadataError(f"not valid YAML: {_first_line(error)}") from error
    except RecursionError as error:
        raise MetadataTooDeepError("YAML nested too deeply") from error
    if not isinstance(loaded, dict):
        raise MetadataError("must be a mapping of key: value")
    return metadata_strings(loaded)


def metadata_strings(loaded: Mapping[object, object]) -> dict[str, str]:
    """YAML metadata as lower-case keys and string values; lists are joined, anything nested is dropped."""
    return {
        CONTROL_CHARS.sub("", str(key).lower()): CONTROL_CHARS.sub("", _as_text(value))
        for key, value in loaded.items()
        if value is not None and isinstance(key, SCALARS)
    }


def _as_text(value: object) -> str:
    """A scalar as text, a list as its scalars joined; anything nested is dropped (YAML aliases could nest
    a small file into an exponentially large string)."""
    if isinstance(value, list):
        return ", ".join(str(item) for item in value if isinstance(item, SCALARS))
    return str(value) if isinstance(value, SCALARS) else ""


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
