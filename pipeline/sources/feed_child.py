"""The program that parses one feed in a process of its own (``feedparse`` starts it): feedparser under a memory
limit, the feed's bytes on stdin, plain data as JSON on stdout.

It is run by path with ``python -I`` so it imports nothing of Newsflow (only the standard library and
feedparser) and nothing from the environment. ``argv[1]`` is JSON with the response ``headers`` and the
``memory_bytes`` limit, set as the process's address-space limit (``RLIMIT_AS``) before anything is read.
It prints ``{"title", "problem", "entries"}`` (each entry a dict of the fields Newsflow reads, dates as
9-tuples), or ``{"failed": reason}`` when feedparser raised; it exits with ``MEMORY_EXIT`` when it ran out of
memory.

Before parsing, numeric character references that name no character XML allows to stand alone (NUL, a lone
surrogate, beyond U+10FFFF; decimal or hex, any number of leading zeros) become ``&#xFFFD;``: feedparser's
loose parser would raise on a surrogate and lose the whole feed, and a NUL cannot be stored.
"""

from __future__ import annotations

import json
import re
import resource
import sys
from typing import Any

MEMORY_EXIT = 3
ENTRY_FIELDS = ("id", "title", "link", "author", "published_parsed", "updated_parsed")
DETAIL_FIELDS = ("value", "type", "src")
LINK_FIELDS = ("rel", "href", "type")
CHARACTER_REFERENCE = re.compile(r"&#([xX][0-9a-fA-F]+|[0-9]+);?")
WIDE_ENCODINGS = (  # byte-order marks, then how "<?" starts a document without one
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<\x00?", "utf-16-be"),
    (b"<\x00?\x00", "utf-16-le"),
)


def unparseable_references_replaced(body: bytes) -> bytes:
    """``body`` with each reference to NUL, a surrogate or a code point past U+10FFFF written ``&#xFFFD;``, in
    the document's own encoding (UTF-16 and UTF-32 as such, anything else as ASCII-compatible bytes)."""
    encoding = next((name for mark, name in WIDE_ENCODINGS if body.startswith(mark)), None)
    if encoding is None:
        text = body.decode("latin-1")  # one character per byte: references are ASCII in any such encoding
        return CHARACTER_REFERENCE.sub(_replacement, text).encode("latin-1")
    wide = body.decode(encoding, "surrogatepass")
    return CHARACTER_REFERENCE.sub(_replacement, wide).encode(encoding, "surrogatepass")


def _replacement(match: re.Match[str]) -> str:
    digits = match.group(1)
    value = int(digits[1:], 16) if digits[0] in "xX" else int(digits)
    return "&#xFFFD;" if value == 0 or 0xD800 <= value <= 0xDFFF or value > 0x10FFFF else match.group(0)


def parsed(body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The feed as plain data, or why feedparser failed on it."""
    import feedparser  # imported under the memory limit, as everything it does is

    try:
        feed = feedparser.parse(unparseable_references_replaced(body), response_headers=headers)
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the parser raises is this feed's problem
        return {"failed": f"{type(error).__name__}: {error}"}
    entries = [_entry(entry) for entry in feed.entries]
    return {"title": _plain(feed.feed.get("title")), "problem": _bozo(feed), "entries": entries}


def _bozo(feed: Any) -> str | None:
    """feedparser's reason for a malformed feed, or None."""
    if not feed.get("bozo"):
        return None
    error = feed.get("bozo_exception")
    return f"malformed feed: {type(error).__name__}: {error}" if error else "malformed feed"


def _entry(entry: Any) -> dict[str, Any]:
    plain = {key: _plain(entry.get(key)) for key in ENTRY_FIELDS if entry.get(key) is not None}
    plain["links"] = [_pick(link, LINK_FIELDS) for link in entry.get("links") or []]
    plain["content"] = [_pick(detail, DETAIL_FIELDS) for detail in entry.get("content") or []]
    plain["summary_detail"] = _pick(entry.get("summary_detail") or {}, DETAIL_FIELDS)
    return plain


def _pick(detail: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {key: _plain(detail.get(key)) for key in fields if detail.get(key) is not None}


def _plain(value: Any) -> Any:
    """Strings as they are, dates (``time.struct_time``) as 9-tuples, anything else as text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return [int(part) for part in value[:9]]
    return str(value)


def main(argv: list[str]) -> int:
    options = json.loads(argv[1])
    limit = int(options["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        body = sys.stdin.buffer.read()
        result = json.dumps(parsed(body, options["headers"]))
    except MemoryError:
        return MEMORY_EXIT
    sys.stdout.write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
