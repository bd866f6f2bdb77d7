"""Document metadata from YAML (a file's ``NAME.meta.yaml`` sidecar, Markdown front matter) as string fields.

YAML is loaded with the base loader, which makes every scalar a string as written (no dates, numbers or tags
to construct, so "2025-13-45" or "!!python/…" cannot raise), and within limits, so that a small file cannot
grow into a huge value: at most ``MAX_METADATA_BYTES`` of YAML, nested at most ``MAX_DEPTH`` deep, with at
most ``MAX_ALIASES`` aliases (each alias repeats what its anchor names: 8,000 aliases of a 32 KiB scalar are
a 256 MB title), and at most ``MAX_METADATA_BYTES`` of values in all. Only scalar fields are kept (a list of
scalars is joined). Anything else is a ``MetadataError`` with the reason; over a limit, a
``MetadataLimitError``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

import yaml
from yaml.nodes import Node

CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SCALARS = (str, int, float, bool, date)
MAX_METADATA_BYTES = 64 * 1024  # of YAML read, and of field values produced
MAX_DEPTH = 32  # levels of nested lists and mappings
MAX_ALIASES = 16  # ``*name`` uses in one document


class MetadataError(ValueError):
    """YAML metadata that cannot be used; the message says why."""


class MetadataLimitError(MetadataError):
    """YAML metadata over one of the limits (size, depth, aliases, total size of the values)."""


class BoundedLoader(yaml.BaseLoader):
    """The base loader, refusing to compose a document deeper than ``MAX_DEPTH`` or with more than
    ``MAX_ALIASES`` aliases; it counts in the event stream, before anything is expanded."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.aliases = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise MetadataLimitError(f"more than {MAX_ALIASES} YAML aliases (*name)")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise MetadataLimitError(f"YAML nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_metadata(text: str) -> dict[str, str]:
    """The fields of a YAML mapping, as lower-case keys and string values."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_METADATA_BYTES:
        raise MetadataLimitError(f"YAML metadata is over the {MAX_METADATA_BYTES:,}-byte limit")
    try:
        loaded = yaml.load(text, Loader=BoundedLoader)  # the base loader: strings only
    except MetadataError:
        raise
    except RecursionError as error:
        raise MetadataLimitError(f"YAML nested deeper than {MAX_DEPTH} levels") from error
    except Exception as error:
        raise MetadataError(f"not valid YAML: {_first_line(error)}") from error
    if not isinstance(loaded, dict):
        raise MetadataError("must be a mapping of key: value")
    return metadata_strings(loaded)


def metadata_strings(loaded: Mapping[object, object]) -> dict[str, str]:
    """YAML metadata as lower-case keys and string values; lists of scalars are joined, anything nested is
    dropped; ``MetadataLimitError`` when the values come to more than ``MAX_METADATA_BYTES`` characters."""
    fields: dict[str, str] = {}
    total = 0
    for key, value in loaded.items():
        text = _as_text(value)
        if text is None or not isinstance(key, SCALARS):
            continue
        total += len(text) + len(str(key))
        if total > MAX_METADATA_BYTES:
            raise MetadataLimitError(f"YAML metadata values come to over {MAX_METADATA_BYTES:,} characters")
        fields[clean_text(str(key).lower())] = clean_text(text)
    return fields


def clean_text(text: str) -> str:
    """Text as it can be stored and printed: no control characters, no lone surrogates."""
    return CONTROL_CHARS.sub("", text).encode("utf-8", "replace").decode("utf-8")


def _as_text(value: object) -> str | None:
    """A scalar as text, a list as its scalars joined; None for nothing or anything nested."""
    if isinstance(value, list):
        scalars = [str(item) for item in value if isinstance(item, SCALARS)]
        return ", ".join(scalars) if scalars or not value else None
    return str(value) if isinstance(value, SCALARS) else None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
