"""Local files: documents and directories of .txt, .md and .html(.gz), with their metadata sidecars.

A file may carry a metadata sidecar beside it, ``NAME.meta.yaml`` (for example
``000_seed.txt.meta.yaml``) with any of ``title``, ``author``, ``published``,
``url``, ``language``. Sidecars are part of the document's identity: changing
one changes the content hash.

Only regular files are read: a FIFO, a device, a socket or a directory is refused by its type before it is
opened (opening a FIFO blocks until a writer comes; a device never ends), and the type is checked again on
the open file, in case the name was swapped in between. Reads are bounded whatever size the file reports.
"""

from __future__ import annotations

import errno
import gzip
import io
import os
import stat
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from pipeline.errors import SourceError
from pipeline.metadata import MAX_METADATA_BYTES, MetadataError, load_metadata
from pipeline.models import RawDocument, storable

SIDECAR_SUFFIX = ".meta.yaml"
MEDIA_TYPES = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
}
MAX_FILE_BYTES = 10 * 1024 * 1024  # the same default as NEWSFLOW_FETCH_MAX_BYTES
MAX_SIDECAR_BYTES = MAX_METADATA_BYTES
SPECIAL_FILE_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
    stat.S_IFLNK: "a link",
}
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


class NotRegularFileError(SourceError):
    """A name that is a FIFO, a device, a socket or a directory, where a file was expected."""


def read_regular(path: Path, max_bytes: int, *, folder: int | None = None, follow_links: bool = True) -> bytes:
    """At most ``max_bytes + 1`` bytes of a regular file; ``NotRegularFileError`` for anything else, which is
    never opened. ``folder`` is an open folder that ``path`` is relative to; without ``follow_links`` a link is
    refused too, even one swapped in after the check (the open does not follow it), and so is a file with other
    hard links (seen on the open file: it may be a file elsewhere). ``OSError`` as the system raises it."""
    _require_regular(path, os.stat(path, dir_fd=folder, follow_symlinks=follow_links).st_mode)
    flags = OPEN_FLAGS if follow_links else OPEN_FLAGS | os.O_NOFOLLOW
    try:
        descriptor = os.open(path, flags, dir_fd=folder)  # non-blocking: a FIFO swapped in after the stat
    except OSError as error:  # does not hang
        if error.errno == errno.ELOOP and not follow_links:
            raise NotRegularFileError(f"{path.name} is a link, not a regular file") from error
        raise
    with os.fdopen(descriptor, "rb") as stream:
        opened = os.fstat(descriptor)
        _require_regular(path, opened.st_mode)
        if not follow_links and opened.st_nlink > 1:
            raise NotRegularFileError(f"{path.name} has other hard links: copy it in instead")
        data = stream.read(max_bytes + 1)
    if data is None:  # a file that says it is regular but would block (/proc/kmsg)
        raise NotRegularFileError(f"{path.name} would block when read: not a regular file")
    return data


def _require_regular(path: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = SPECIAL_FILE_KINDS.get(stat.S_IFMT(mode), "a special file")
        raise NotRegularFileError(f"{path.name} is {kind}, not a regular file")


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def expand_inputs(inputs: list[str]) -> Iterator[str]:
    """Yield each input, with a directory replaced by its documents in name order. A part of the tree that
    cannot be listed (a name too long, no permission) is yielded as it is, so reading it is its error row."""
    for value in inputs:
        if not is_url(value) and _is_dir(Path(value)):
            yield from _documents_under(Path(value))
        else:
            yield value


def _documents_under(folder: Path) -> list[str]:
    unlisted: list[OSError] = []
    found: list[Path] = []
    for root, _dirs, files in os.walk(folder, onerror=unlisted.append):
        found.extend(Path(root) / name for name in files)
    documents = [str(path) for path in sorted(found) if is_document_path(path)]
    return documents + [str(error.filename) for error in unlisted if error.filename]


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def is_document_path(path: Path) -> bool:
    if path.name.startswith(".") or media_type_for(path) is None:
        return False
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return False  # a broken link
    except OSError:
        return True  # a name the system cannot even stat: reading it will say why
    return not stat.S_ISDIR(mode)  # a FIFO or a device with a document's name is listed, and refused when read


def media_type_for(path: Path) -> str | None:
    name = path.name.lower()
    if name.endswith(SIDECAR_SUFFIX):
        return None
    if name.endswith(".gz"):
        name = name[: -len(".gz")]
    return MEDIA_TYPES.get(Path(name).suffix)


def read_file(path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> RawDocument:
    """Read one local document, decompressing ``.gz`` and loading its sidecar; at most ``max_bytes``."""
    media_type = _media_type_of(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise SourceError(f"file is {size:,} bytes, over the {max_bytes:,}-byte limit")
        body = read_regular(path, max_bytes)  # the size may lie (a growing file)
    except OSError as error:
        raise SourceError(f"cannot read file: {error.strerror or error}") from error
    real = path.resolve()
    return RawDocument(source=storable(str(real)), body=_document_body(path, body, max_bytes),
                       media_type=media_type, metadata=read_sidecar(real))  # fmt: skip


def read_in_folder(folder: int, name: str, *, source: str, max_bytes: int) -> RawDocument:
    """Read the document ``name`` in the open ``folder`` and its sidecar, following no link (a link is refused,
    even one swapped in after a check), and name it ``source``; at most ``max_bytes``."""
    path = Path(name)
    media_type = _media_type_of(path)
    try:
        body = read_regular(path, max_bytes, folder=folder, follow_links=False)
    except OSError as error:
        raise SourceError(f"cannot read file: {error.strerror or error}") from error
    metadata = _sidecar_metadata(path, lambda sidecar, limit: read_regular(sidecar, limit, folder=folder,
                                                                            follow_links=False))  # fmt: skip
    return RawDocument(source=storable(source), body=_document_body(path, body, max_bytes), media_type=media_type,
                       metadata=metadata)  # fmt: skip


def _media_type_of(path: Path) -> str:
    media_type = media_type_for(path)
    if media_type is None:
        raise SourceError(f"unsupported file type {path.suffix!r} (expected .txt, .md, .html or .html.gz)")
    return media_type


def _document_body(path: Path, body: bytes, max_bytes: int) -> bytes:
    """The body read (at most ``max_bytes + 1`` bytes), decompressed; ``SourceError`` when over or empty."""
    if len(body) > max_bytes:
        raise SourceError(f"file is over the {max_bytes:,}-byte limit")
    if path.name.lower().endswith(".gz"):
        body = _gunzip(body, max_bytes)
    if not body.strip():
        raise SourceError("empty document")
    return body


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    """Decompress, stopping at the limit (a small gzip bomb must not fill the memory)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as stream:
            data = stream.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise SourceError(f"corrupt gzip data: {error}") from error
    if len(data) > max_bytes:
        raise SourceError(f"decompressed size is over the {max_bytes:,}-byte limit")
    return data


def read_sidecar(path: Path) -> Mapping[str, str]:
    """The metadata beside a document (beside the real file, when ``path`` is a link), at most 64 KiB."""
    return _sidecar_metadata(path, read_regular)


def _sidecar_metadata(path: Path, read: Callable[[Path, int], bytes]) -> Mapping[str, str]:
    """The metadata of the sidecar of ``path``, read by ``read(sidecar, limit)``; {} when there is none."""
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    try:
        data = read(sidecar, MAX_SIDECAR_BYTES)  # the size a /proc file reports may lie
    except NotRegularFileError as error:
        raise SourceError(f"metadata sidecar {error}") from error
    except OSError as error:
        if error.errno in (errno.ENAMETOOLONG, errno.ENOENT):
            return {}  # no sidecar (none can have that name)
        raise SourceError(f"cannot read metadata sidecar {sidecar.name}: {error.strerror or error}") from error
    if len(data) > MAX_SIDECAR_BYTES:
        raise SourceError(f"metadata sidecar {sidecar.name} is over the {MAX_SIDECAR_BYTES:,}-byte limit")
    try:
        return load_metadata(data.decode("utf-8"))
    except (MetadataError, UnicodeDecodeError) as error:
        raise SourceError(f"unreadable metadata sidecar {sidecar.name}: {error}") from error
