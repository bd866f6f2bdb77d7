"""Small text helpers shared by the format readers."""

from __future__ import annotations

import codecs
import re
from datetime import date, datetime, timedelta, timezone, tzinfo

import charset_normalizer
import webencodings
from dateutil import parser as date_parser

from pipeline.models import RawDocument

WHITESPACE = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class DecodeError(ValueError):
    """Bytes that are not text in any encoding we can trust."""


def decode_text(raw: RawDocument) -> str:
    """Decode text bytes: a declared charset, then UTF-8, then detection."""
    return _decode(raw.body, (raw.metadata.get("charset"),))


META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)


def decode_html(raw: RawDocument) -> str:
    """Decode an HTML page: the HTTP header's charset, then the page's <meta> charset, then
    UTF-8, then detection, so legacy pages (latin-1, cp1252, windows-1251) come out right."""
    meta = META_CHARSET.search(raw.body[:4096])
    in_page = meta.group(1).decode("ascii", "ignore") if meta else None
    if in_page and in_page.lower().replace("_", "-").startswith(("utf-16", "unicode")):
        in_page = "utf-8"  # a page cannot declare UTF-16 in its own ASCII markup: the standard reads UTF-8
    return _decode(raw.body, (raw.metadata.get("charset"), in_page))


def _decode(body: bytes, declared: tuple[str | None, ...]) -> str:
    """The first declared charset that decodes the bytes cleanly, then UTF-8, then detection.

    A declared label counts only when the WHATWG Encoding Standard knows it (as browsers do): a label
    Python alone knows ("undefined", "unicode_escape", "rot13") or nobody knows is ignored, never fatal."""
    for label in (*declared, "utf-8"):
        codec = web_codec(label)
        if codec is None:
            continue
        try:
            text, _ = codec.decode(body.removeprefix(b"\xef\xbb\xbf") if codec.name == "utf-8" else body)
        except (UnicodeError, ValueError, LookupError):
            continue
        return _checked(text)
    return _checked(_detected(body))


def web_codec(label: str | None) -> codecs.CodecInfo | None:
    """The codec of a charset label per the WHATWG Encoding Standard; None for unknown labels and for its
    "replacement" encoding (labels such as iso-2022-kr that must not be decoded)."""
    encoding = webencodings.lookup(label) if label and len(label) < 64 else None
    if encoding is None or encoding.name == "replacement":
        return None
    codec: codecs.CodecInfo = encoding.codec_info
    return codec


# When detection (nearly) ties, the web's common legacy encodings win (windows-1252 is the HTML standard's default).
PREFERRED_ENCODINGS = ("cp1252", "iso8859_1", "cp1251", "cp1250", "iso8859_15")
DETECTION_TOLERANCE = 0.01  # detector "chaos" within this of the least counts as a tie


def _detected(body: bytes) -> str:
    matches = list(charset_normalizer.from_bytes(body))
    if not matches:
        raise DecodeError("binary data: no text encoding fits these bytes")
    least_chaos = min(m.chaos for m in matches)
    close = {m.encoding: m for m in matches if m.chaos <= least_chaos + DETECTION_TOLERANCE}
    chosen = next((close[name] for name in PREFERRED_ENCODINGS if name in close), matches[0])
    return str(chosen)


def _checked(text: str) -> str:
    controls = len(CONTROL_CHARS.findall(text))
    if controls > max(8, len(text) // 100):
        raise DecodeError(f"binary data: {controls} control characters in {len(text)} characters")
    return CONTROL_CHARS.sub("", text)


def clean_inline(text: str) -> str:
    """Collapse runs of spaces inside a paragraph and trim it."""
    return WHITESPACE.sub(" ", text.replace("\r", "")).strip()


# Zone abbreviations news sites print in datelines, as UTC offsets in hours ("ET" is taken as standard time).
ZONE_OFFSETS = {
    "ET": -5, "EST": -5, "EDT": -4, "CT": -6, "CST": -6, "CDT": -5, "MT": -7, "MST": -7, "MDT": -6,
    "PT": -8, "PST": -8, "PDT": -7, "GMT": 0, "UTC": 0, "BST": 1, "CET": 1, "CEST": 2, "EET": 2,
    "EEST": 3, "MSK": 3, "IST": 5.5, "JST": 9, "AEST": 10, "AEDT": 11,
}  # fmt: skip


def _zone(name: str | None, offset: int | None) -> tzinfo | int | None:
    """Resolve zone abbreviations dateutil does not know, so datelines such as "3:05 PM ET" parse quietly."""
    if offset is not None:
        return offset
    zone = (name or "").upper()
    hours = ZONE_OFFSETS.get(zone)
    return timezone(timedelta(hours=hours), zone) if hours is not None else None


AFFILIATION_WORDS = frozenset(
    """
    press associated reuters afp ap upi pti ani ians bloomberg dpa efe xinhua staff writer writers reporter
    correspondent editor editors desk news agency agencies wire wires cnn bbc times post journal herald
    tribune guardian telegraph contributor senior chief political
    """.split()
)


def clean_author(value: str | None) -> str | None:
    """Author names without the outlet or role after them: "Tom Davies, Associated Press" → "Tom Davies"."""
    if not value:
        return None
    parts = [part.strip() for part in re.split(r"[;|]|,(?! (?:jr|sr)\b)", value) if part.strip()]
    names = [part for part in parts if not _is_affiliation(part)]
    return ", ".join(names) or value.strip()


def _is_affiliation(part: str) -> bool:
    words = re.findall(r"[A-Za-z]+", part.lower())
    return bool(words) and any(word in AFFILIATION_WORDS for word in words)


def parse_published(value: str | None) -> date | datetime | None:
    """A published date from metadata: date-only strings stay dates."""
    if not value:
        return None
    value = value.strip()
    try:
        parsed = date_parser.parse(value, default=datetime(1, 1, 1), tzinfos=_zone)
        parsed.utcoffset()  # an offset past ±24 h ("+9999") only fails here
    except (ValueError, OverflowError):
        return None
    if parsed.year < 1800:
        return None
    has_time = re.search(r"\d{1,2}:\d{2}", value) is not None
    return parsed if has_time else parsed.date()
