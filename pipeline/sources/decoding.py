"""Content-Encoding, decoded a piece at a time so that a size cap applies to the decoded bytes as they are made.

Each decoder is a generator over the chunks below it that yields pieces of at most ``PIECE`` bytes, asking
zlib and brotli for no more than that per call (``max_length``, ``output_buffer_limit``). Stacked encodings
(``gzip, br``) are generators over generators, so a kilobyte that expands to a gibibyte, once or several
times over, never holds more than a few pieces in memory: the reader stops pulling when its cap is reached.

Work that makes no output is bounded too: every layer yields (an empty piece if need be) after each step,
and ``decoded`` calls ``check`` on everything that passes between layers, so a deadline is seen even while a
layer chews through input that decodes to nothing (endless empty gzip members inside a brotli stream). Each
intermediate layer may make at most ``intermediate_limit`` bytes, a stream ends where its coding says it
ends (what follows is not read), and one that stops early is an error, not a shorter page (an empty body is
an empty page, whatever its header says).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator

import brotli

PIECE = 64 * 1024
MAX_ENCODINGS = 4  # no honest server stacks more; each layer costs a decoder's buffers
MAX_GZIP_MEMBERS = 1000  # concatenated gzip members in one body
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


def decoded(
    chunks: Iterable[bytes], header: str | None, *, check: Callable[[], None], intermediate_limit: int
) -> Iterator[bytes]:
    """The body's bytes with every coding of ``header`` undone, the last applied first; ``check`` is called
    for every piece that passes between layers (it raises to stop), and no layer but the last may make more
    than ``intermediate_limit`` bytes. Empty pieces are dropped from what is returned."""
    codings = content_encodings(header)
    pieces: Iterable[bytes] = _checked(chunks, check)
    for depth, coding in enumerate(reversed(codings), start=1):
        pieces = _checked(DECODERS[coding](pieces), check)
        if depth < len(codings):
            pieces = _at_most(pieces, intermediate_limit, coding)
    return (piece for piece in pieces if piece)


def _checked(pieces: Iterable[bytes], check: Callable[[], None]) -> Iterator[bytes]:
    for piece in pieces:
        check()
        yield piece


def _at_most(pieces: Iterable[bytes], limit: int, coding: str) -> Iterator[bytes]:
    made = 0
    for piece in pieces:
        made += len(piece)
        if made > limit:
            raise DecodingError(f"the {coding} layer decodes to more than {limit:,} bytes")
        yield piece


def _gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """gzip, member after member (a body may hold several); bytes after the last member are not read."""
    decompressor, members, data, seen = zlib.decompressobj(zlib.MAX_WBITS | 16), 1, b"", False
    for chunk in chunks:
        data, seen = data + chunk, seen or bool(chunk)
        while data:
            if decompressor.eof:
                if len(data) < len(GZIP_MAGIC):
                    break  # perhaps a member's magic split across chunks: wait for more
                if not data.startswith(GZIP_MAGIC):
                    return
                decompressor, members = zlib.decompressobj(zlib.MAX_WBITS | 16), members + 1
                if members > MAX_GZIP_MEMBERS:
                    raise DecodingError(f"more than {MAX_GZIP_MEMBERS:,} gzip members")
            yield from _inflate(decompressor, data, "gzip")
            yield b""  # a step taken, even if it made nothing: the caller's check runs
            data = decompressor.unused_data
    _finished(decompressor.eof or not seen, "gzip")


def _inflate_deflate(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """deflate: zlib-wrapped as the RFC says, or raw as many servers send it (told apart by the header);
    bytes after the end of the stream are not read."""
    decompressor: zlib._Decompress | None = None
    head = b""
    for chunk in chunks:
        if decompressor is None:
            head += chunk
            if len(head) < 2:
                continue
            decompressor = zlib.decompressobj(zlib.MAX_WBITS if _zlib_header(head) else -zlib.MAX_WBITS)
            chunk = head
        yield from _inflate(decompressor, chunk, "deflate")
        yield b""
        if decompressor.eof:
            return
    if decompressor is None and head:
        decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
        yield from _inflate(decompressor, head, "deflate")
    _finished(decompressor is None or decompressor.eof, "deflate")


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
    """br; bytes after the end of the stream are not read."""
    decompressor, seen = brotli.Decompressor(), False
    try:
        for chunk in chunks:
            seen = seen or bool(chunk)
            piece = decompressor.process(chunk, output_buffer_limit=PIECE)
            yield piece
            while piece or not decompressor.can_accept_more_data():  # the chunk's input may still be held
                piece = decompressor.process(b"", output_buffer_limit=PIECE)
                yield piece
            if decompressor.is_finished():
                return
    except brotli.error as error:
        raise DecodingError(f"cannot decode the br body: {error}") from error
    _finished(decompressor.is_finished() or not seen, "br")


def _finished(finished: bool, coding: str) -> None:
    if not finished:
        raise DecodingError(f"the {coding} body ends early (truncated)")


DECODERS: dict[str, Decoder] = {"gzip": _gunzip, "deflate": _inflate_deflate, "br": _unbrotli}
