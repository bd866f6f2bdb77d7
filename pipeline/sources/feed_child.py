"""The program that parses one feed in a process of its own (``feed_parsing`` starts it): feedparser under a
memory and a CPU limit, the feed's bytes on stdin, plain data as JSON on stdout.

It is run by path with ``python -I`` so it imports nothing of Newsflow (only the standard library, feedparser
and ``pipeline/processes.py``, loaded by its path) and nothing from the environment. ``argv[1]`` is JSON with
the response ``headers``, the ``memory_bytes`` limit (the address space, ``RLIMIT_AS``), the ``seconds`` limit
(``RLIMIT_CPU`` is that and a second, so the child ends even if its poller cannot end it), ``entry_bytes`` (the
largest inline content sent back) and ``parent_pid``. The child asks the kernel to kill it when its poller
dies (``PR_SET_PDEATHSIG``), and exits at once if its poller is already gone.

It prints ``{"title", "problem", "entries", "links"}`` (``links``: the feed's own ``hub`` and ``self``
links) or ``{"failed": reason}`` when feedparser raised; it exits with
``MEMORY_EXIT`` when it ran out of memory. Each entry holds only what Newsflow reads, once: its id, title,
link, author and dates (9-tuples), its alternate links, and under ``content`` its inline content (the first
non-blank of its Atom content or RSS ``content:encoded``, then its summary or description) followed by the
``src`` of each Atom content. An entry whose id, title, link or author is over ``FIELD_MAX_CHARS`` is sent as
``{"id", "skipped": reason}``; content over ``entry_bytes`` (UTF-8) is left out and ``refused`` says why.

Before parsing, in the document's own encoding (ASCII-compatible, UTF-16 or UTF-32):

- each entity declaration (``<!ENTITY`` to the next ``>``, or to the end) becomes a space, so neither
  expat nor feedparser's loose parser (which keeps declarations of plain text and expands them without limit)
  expands a 100 KB entity 1,500 times; a reference to it is then undefined (a malformed feed, read loosely);
- numeric character references that name no character XML allows to stand alone (NUL, a lone surrogate,
  beyond U+10FFFF; decimal or hex, any number of leading zeros) become ``&#xFFFD;``: feedparser's loose
  parser would raise on a surrogate and lose the whole feed, and a NUL cannot be stored.

A document in another encoding (UTF-7, EBCDIC) is parsed as it is: the limits on entries and on the answer
(``feed_parsing``) still bound what it costs the poller.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import resource
import sys
from pathlib import Path
from typing import Any

MEMORY_EXIT = 3
ORPHANED_EXIT = 4  # the poller died before the child could ask to die with it
FIELD_MAX_CHARS = 65_536  # an entry's id, title, link or author
MAX_LINKS = 20  # alternate links and content sources sent per entry
ENTRY_FIELDS = ("id", "title", "link", "author", "published_parsed", "updated_parsed")
TEXT_FIELDS = ("id", "title", "link", "author")
LINK_FIELDS = ("rel", "href", "type")
FEED_RELS = frozenset({"hub", "self"})  # the feed's own links sent back: its WebSub hubs and its self URL
PROCESSES = Path(__file__).resolve().parent.parent / "processes.py"
CHARACTER_REFERENCE = re.compile(r"&#([xX][0-9a-fA-F]+|[0-9]+);?")
ENTITY_DECLARATION = re.compile(r"<!ENTITY[^>]*(?:>|\Z)")  # to the end when unclosed: one match, linear
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


def prepared(body: bytes) -> bytes:
    """``body`` without entity declarations, and with each reference to NUL, a surrogate or a code point past
    U+10FFFF written ``&#xFFFD;``, in the document's own encoding (UTF-16 and UTF-32 as such, anything else as
    ASCII-compatible bytes)."""
    encoding = next((name for mark, name in WIDE_ENCODINGS if body.startswith(mark)), None)
    codec, errors = (encoding, "surrogatepass") if encoding else ("latin-1", "strict")  # latin-1: a byte a char
    text = body.decode(codec, errors)
    text = CHARACTER_REFERENCE.sub(_replacement, ENTITY_DECLARATION.sub(" ", text))
    return text.encode(codec, errors)


def _replacement(match: re.Match[str]) -> str:
    digits = match.group(1)
    value = int(digits[1:], 16) if digits[0] in "xX" else int(digits)
    return "&#xFFFD;" if value == 0 or 0xD800 <= value <= 0xDFFF or value > 0x10FFFF else match.group(0)


def parsed(body: bytes, headers: dict[str, str], entry_bytes: int) -> dict[str, Any]:
    """The feed as plain data, or why feedparser failed on it."""
    import feedparser  # imported under the memory limit, as everything it does is

    try:
        feed = feedparser.parse(prepared(body), response_headers=headers)
    except MemoryError:
        raise
    except Exception as error:  # noqa: BLE001 - whatever the parser raises is this feed's problem
        return {"failed": f"{type(error).__name__}: {error}"}
    entries = [_entry(entry, entry_bytes) for entry in feed.entries]
    return {"title": _plain(feed.feed.get("title")), "problem": _bozo(feed), "entries": entries, "links": _own(feed)}


def _own(feed: Any) -> list[dict[str, Any]]:
    """The feed's own links: its first ``MAX_LINKS`` hubs, then its first self link (WebSub discovery)."""
    links = [_pick(link, LINK_FIELDS) for link in feed.feed.get("links") or [] if link.get("rel") in FEED_RELS]
    links = [link for link in links if len(link.get("href") or "") <= FIELD_MAX_CHARS]
    hubs, selves = [one for one in links if one["rel"] == "hub"], [one for one in links if one["rel"] == "self"]
    return hubs[:MAX_LINKS] + selves[:1]


# feedparser's "bozo" warnings (class ThingsNobodyCaresAboutButMe) raised when the strict parser went on and read
# the whole document: a feed served as text/html or text/plain, or declared in one encoding and read in another
# (a page that is no feed, XHTML served as text/html, stays malformed: feedparser found no feed version in it).
PARSED_WHOLE = frozenset({"NonXMLContentType", "CharacterEncodingOverride"})


def _bozo(feed: Any) -> str | None:
    """feedparser's reason for a malformed feed, or None."""
    if not feed.get("bozo"):
        return None
    error = feed.get("bozo_exception")
    if type(error).__name__ in PARSED_WHOLE and feed.get("version"):
        return None  # a feed, parsed strictly and whole: only its media type or declared encoding was wrong
    return f"malformed feed: {type(error).__name__}: {error}" if error else "malformed feed"


def _entry(entry: Any, entry_bytes: int) -> dict[str, Any]:
    """What Newsflow reads of an entry, each once; or the entry's id and why it is skipped."""
    plain = {key: _plain(entry.get(key)) for key in ENTRY_FIELDS if entry.get(key) is not None}
    too_long = next((key for key in TEXT_FIELDS if len(plain.get(key) or "") > FIELD_MAX_CHARS), None)
    if too_long:
        reason = f"its {too_long} is over {FIELD_MAX_CHARS:,} characters"
        return {"id": str(plain.get("id") or plain.get("title") or "")[:200], "skipped": reason}
    links = [_pick(link, LINK_FIELDS) for link in entry.get("links") or [] if link.get("rel") == "alternate"]
    if links := [link for link in links if len(link.get("href") or "") <= FIELD_MAX_CHARS][:MAX_LINKS]:
        plain["links"] = links
    content, refused = _inline_content(entry, entry_bytes)
    if content := content + _sources(entry):
        plain["content"] = content
    if refused:
        plain["refused"] = refused
    return plain


def _inline_content(entry: Any, entry_bytes: int) -> tuple[list[dict[str, Any]], str | None]:
    """The entry's content as ``[{value, type}]`` (the first non-blank of its content, then its summary), or
    none; and why it was left out when over ``entry_bytes`` in UTF-8."""
    details = [*(entry.get("content") or []), entry.get("summary_detail") or {}]
    value, media_type = next(
        ((detail.get("value"), detail.get("type")) for detail in details if _non_blank(detail.get("value"))),
        (None, None),
    )
    if value is None:
        return [], None
    if len(value) > entry_bytes or len(value.encode("utf-8", "surrogatepass")) > entry_bytes:
        return [], f"its content is over {entry_bytes:,} bytes"
    return [{"value": value, "type": _plain(media_type)} if media_type else {"value": value}], None


def _sources(entry: Any) -> list[dict[str, Any]]:
    """The ``src`` of each Atom content (an entry carrying its content elsewhere)."""
    sources = [detail.get("src") for detail in entry.get("content") or []]
    usable = [source for source in sources if isinstance(source, str) and len(source) <= FIELD_MAX_CHARS]
    return [{"src": source} for source in usable[:MAX_LINKS]]


def _non_blank(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _pick(detail: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {key: _plain(detail.get(key)) for key in fields if detail.get(key) is not None}


def _plain(value: Any) -> Any:
    """Strings as they are, dates (``time.struct_time``) as 9-tuples, anything else as text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return [int(part) for part in value[:9]]
    return str(value)


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel to kill this process with its poller (``pipeline/processes.py``, loaded by its path);
    exit now if the poller is already gone."""
    spec = importlib.util.spec_from_file_location("newsflow_processes", PROCESSES)
    if spec is not None and spec.loader is not None:
        processes = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(processes)
        processes.set_parent_death_signal()
    if parent_pid and os.getppid() != parent_pid:
        os._exit(ORPHANED_EXIT)


def limit(options: dict[str, Any]) -> None:
    """The address space, and the CPU seconds: the time limit and a second (``SIGXCPU`` ends the process)."""
    memory = int(options["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    cpu = math.ceil(float(options.get("seconds") or 60.0)) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))


def main(argv: list[str]) -> int:
    options = json.loads(argv[1])
    die_with_parent(int(options.get("parent_pid") or 0))
    limit(options)
    try:
        body = sys.stdin.buffer.read()
        result = parsed(body, options["headers"], int(options.get("entry_bytes") or 10 * 1024 * 1024))
        del body
        answer = json.dumps(result, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except MemoryError:
        return MEMORY_EXIT
    sys.stdout.buffer.write(answer)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
