"""Content-Encoding, decoded a piece at a time so that a size cap applies to the decoded bytes as they are made.

Each decoder is a generator over the chunks below it that yields pieces of at most ``PIECE`` bytes, asking
zlib and brotli for no more than that per call (``max_length``, ``output_buffer_limit``). Stacked encodings
(``gzip, br``) are generators over generators, so a kilobyte that expands to a gibibyte, once or several
times over, never holds more than a few pieces in memory: the reader stops pulling when its cap is reached.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator

import brotli

PIECE = 64 * 1024
MAX_ENCODINGS = 4  # no honest server stacks more; each layer costs a decoder's buffers
GZIP_MAGIC = b"\x1f\x8b"
IDENTITY = frozenset({"", "identity"})


class DecodingError(ValueError):
    """A body whose encoding is unsupported, absurd or corrupt; the message says which."""


Decoder = Callable[[Iterable[bytes]], Iterator[bytes]]


def content_encodings(header: str | None) -> list[str]:
    """The codings of a Content-Encoding header in the order they were applied (``x-gzip`` is ``gzip``)."""
    names = [name.strip().lower() for name in (header or "").split(",")]
    codings = ["gzip" if name == "x-gzip" else name for name in names if name not in IDENTITY]
    unknown = [name for name in codings if name not in DECODERS]
    if unknown:
        raise DecodingError(f"unsupported Content-Encoding {unknown[0]!r}")
    if len(codings) > MAX_ENCODINGS:
        raise DecodingError(f"more than {MAX_ENCODINGS} content encodings ({len(codings)})")
    return codings


def decoded(chunks: Iterable[bytes], header: str | None) -> Iterator[bytes]:
    """The body's bytes with every coding of ``header`` undone, the last applied first."""
    pieces: Iterable[bytes] = chunks
    for coding in reversed(content_encodings(header)):
        pieces = DECODERS[coding](pieces)
    return iter(pieces)


def _gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """gzip, member after member (a body may hold several); bytes after the last member are ignored."""
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
    for chunk in chunks:
        data = chunk
        while data:
            if decompressor.eof:
                if not data.startswith(GZIP_MAGIC):
                    return
                decompressor = zlib.decompressobj(zlib.MAX_WBITS | 16)
            yield from _inflate(decompressor, data, "gzip")
            data = decompressor.unused_data


def _inflate_deflate(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """deflate: zlib-wrapped as the RFC says, or raw as many servers send it (told apart by the header)."""
    decompressor: zlib._Decompress | None = None
    for chunk in chunks:
        if decompressor is None:
            decompressor = zlib.decompressobj(zlib.MAX_WBITS if _zlib_header(chunk) else -zlib.MAX_WBITS)
        if not decompressor.eof:
            yield from _inflate(decompressor, chunk, "deflate")


def _inflate(decompressor: zlib._Decompress, data: bytes, coding: str) -> Iterator[bytes]:
    """Every piece ``data`` makes, asking for at most ``PIECE`` bytes at a time."""
    try:
        while True:
            piece = decompressor.decompress(data, PIECE)
            if piece:
                yield piece
            data = decompressor.unconsumed_tail
            if decompressor.eof or (not data and len(piece) < PIECE):
                return
    except zlib.error as error:
        raise DecodingError(f"cannot decode the {coding} body: {error}") from error


def _zlib_header(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0


def _unbrotli(chunks: Iterable[bytes]) -> Iterator[bytes]:
    decompressor = brotli.Decompressor()
    try:
        for chunk in chunks:
            piece = decompressor.process(chunk, output_buffer_limit=PIECE)
            while True:
                if piece:
                    yield piece
                if decompressor.can_accept_more_data():
                    break
                piece = decompressor.process(b"", output_buffer_limit=PIECE)
    except brotli.error as error:
        raise DecodingError(f"cannot decode the br body: {error}") from error


DECODERS: dict[str, Decoder] = {"gzip": _gunzip, "deflate": _inflate_deflate, "br": _unbrotli}
