"""The dataclasses that flow between stages. Offsets always index into ``Document.text``."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from functools import cached_property, lru_cache
from typing import Any, Literal

BlockKind = Literal["heading", "paragraph", "quote", "item"]
QuoteKind = Literal["direct", "partial", "indirect"]
Granularity = Literal["day", "month", "year"]
RAW_GZIP_LEVEL = 1


@dataclass(frozen=True)
class RawDocument:
    """Bytes as read or fetched, plus what we were told about them (sidecar, headers)."""

    source: str
    body: bytes
    media_type: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def content_sha256(self) -> str:
        """Identity of this version: the bytes plus the metadata they came with (computed once)."""
        digest = hashlib.sha256(self.body)
        digest.update(json.dumps(dict(self.metadata), sort_keys=True).encode())
        return digest.hexdigest()

    @cached_property
    def body_gzip(self) -> bytes:
        """The raw store's bytes: gzip level 1 (4-5x smaller, a quarter of level 6's time), no timestamp, so the
        same page always compresses to the same bytes. Computed once; ``compress_in_background`` warms it."""
        return gzip.compress(self.body, RAW_GZIP_LEVEL, mtime=0)


@dataclass(frozen=True)
class Failure:
    """Why one document did not make it: its source, the stage it failed at, and a one-line reason."""

    source: str
    stage: str
    error: str


@dataclass(frozen=True)
class FeedEntry:
    """One usable feed entry. ``link`` is what it is ingested as: its normalised http(s) link, to be fetched, or
    for an entry carried inline (no http(s) link, but content) its name within the feed,
    ``feed-entry:<feed url>#<entry id>``, with ``content`` the document the feed delivered."""

    link: str
    title: str | None
    entry_id: str
    content: RawDocument | None = None


@dataclass(frozen=True)
class SkippedEntry:
    """A feed entry that cannot be ingested (a link that is not http(s), neither link nor content), and why."""

    entry: str
    reason: str

    def __str__(self) -> str:
        return f"{self.entry}: {self.reason}"


@dataclass(frozen=True)
class FeedPoll:
    """What one poll found: ``not_modified`` on 304; ``problem`` is feedparser's reason for a malformed feed;
    ``skipped`` the entries that cannot be ingested."""

    url: str
    not_modified: bool
    entries: tuple[FeedEntry, ...] = ()
    etag: str | None = None
    last_modified: str | None = None
    title: str | None = None
    problem: str | None = None
    skipped: tuple[SkippedEntry, ...] = ()


@dataclass(frozen=True)
class Block:
    """One paragraph-level unit of the article body."""

    kind: BlockKind
    text: str
    level: int = 0


@dataclass(frozen=True)
class Extracted:
    """Metadata and body blocks of one document, before sectioning."""

    blocks: tuple[Block, ...]
    title: str | None = None
    author: str | None = None
    published_at: date | datetime | None = None
    language: str | None = None
    url: str | None = None
    site_name: str | None = None


@dataclass(frozen=True)
class Section:
    position: int
    heading: str | None
    start: int
    end: int


@dataclass(frozen=True)
class Outline:
    """The sections of a laid-out text: which section an offset is in, by binary search over their starts
    (a text may have many thousand sections, and every fact asks)."""

    sections: tuple[Section, ...]

    @cached_property
    def starts(self) -> list[int]:
        return [section.start for section in self.sections]

    def position_at(self, offset: int) -> int:
        """Position of the last section starting at or before ``offset`` (0 when none does)."""
        index = bisect_right(self.starts, offset) - 1
        return self.sections[index].position if index >= 0 else 0

    def in_body(self, offset: int) -> bool:
        """False on heading lines, which sit between the sections' body spans."""
        index = bisect_right(self.starts, offset) - 1
        return index >= 0 and self.sections[index].start <= offset < self.sections[index].end


@dataclass(frozen=True)
class Laid:
    """An extracted document laid out as one text with its sections, ready for the facts stage."""

    source: str
    extracted: Extracted
    text: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Entity:
    name: str
    type: str
    mentions: tuple[Mention, ...]


@dataclass(frozen=True)
class Quote:
    kind: QuoteKind
    text: str
    start: int
    end: int
    speaker: str | None
    speaker_text: str | None
    cue: str | None
    section: int


@dataclass(frozen=True)
class DateMention:
    text: str
    start: int
    end: int
    value: str
    granularity: Granularity


@dataclass(frozen=True)
class Quantity:
    text: str
    start: int
    end: int
    value: float
    unit: str | None
    noun: str | None = None


@dataclass(frozen=True)
class Claim:
    actor: str
    predicate: str
    object: str
    start: int
    end: int
    section: int


@dataclass(frozen=True)
class Facts:
    entities: tuple[Entity, ...] = ()
    quotes: tuple[Quote, ...] = ()
    dates: tuple[DateMention, ...] = ()
    quantities: tuple[Quantity, ...] = ()
    claims: tuple[Claim, ...] = ()


@dataclass(frozen=True)
class Document:
    """A fully processed document: the shape of ``newsflow extract``'s JSON."""

    source: str
    text: str
    sections: tuple[Section, ...]
    facts: Facts
    title: str | None = None
    author: str | None = None
    language: str | None = None
    published_at: date | datetime | None = None
    url: str | None = None
    site_name: str | None = None

    @cached_property
    def outline(self) -> Outline:
        return Outline(self.sections)

    def section_of(self, offset: int) -> int:
        """Position of the section whose span contains ``offset`` (nearest before it)."""
        return self.outline.position_at(offset)

    def to_json(self) -> dict[str, Any]:
        published = self.published_at.isoformat() if self.published_at else None
        return {
            "source": self.source,
            "title": self.title,
            "author": self.author,
            "language": self.language,
            "published_at": published,
            "url": self.url,
            "site_name": self.site_name,
            "text": self.text,
            "sections": [asdict(s) for s in self.sections],
            "entities": [_entity_json(e) for e in self.facts.entities],
            "quotes": [asdict(q) for q in self.facts.quotes],
            "dates": [asdict(d) for d in self.facts.dates],
            "quantities": [asdict(q) for q in self.facts.quantities],
            "claims": [asdict(c) for c in self.facts.claims],
        }


def _entity_json(entity: Entity) -> dict[str, Any]:
    return {"name": entity.name, "type": entity.type, "mentions": [asdict(m) for m in entity.mentions]}


@lru_cache(maxsize=65536)
def name_key(name: str) -> str:
    """The normalised key entities are shared by across articles: no accents, case or punctuation."""
    decomposed = unicodedata.normalize("NFKD", name)
    ascii_only = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words = re.findall(r"[\w]+", ascii_only.casefold())
    return " ".join(words)


def storable(text: str) -> str:
    """Text Postgres can store and a terminal can print: a NUL, or an undecodable byte of a file name (a lone
    surrogate), written as a backslash escape."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


USER_INFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")  # up to the authority's last @ (RFC 3986)


def without_credentials(text: str) -> str:
    """``text`` (a URL, or a message naming URLs) with every URL's user name and password shown as ``***``; the
    user info ends at the authority's last ``@``, so a password holding an ``@`` is hidden whole."""
    return USER_INFO.sub(r"\1***@", text)
