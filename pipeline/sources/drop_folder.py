"""The inbox's folder on disk, held by one drain at a time, so that producers writing in it cannot make a drain
read outside it, lose a file, or overwrite one filed before.

A drain locks the inbox (``flock`` on the folder itself: no lock file a producer could replace), then takes
each waiting file by renaming it, with its sidecar, into a staging folder of its own (``.draining-…``, made by
the drain). A rename is atomic: what is staged is exactly the file that is read and then filed, and a file
written under the same name afterwards is a new file that waits for the next drain. Staged files are read
through the staging folder's open descriptor without following links. A drain that dies leaves its staging
folder behind; the next drain (holding the lock, so no live drain owns it) takes it up first. A staging folder
is the drain's own only when it is a real folder of this user's, private (mode 700) and holding the drain's
marker file (``.newsflow-staging``, made with ``O_EXCL``): a ``.draining-…`` name a producer made is an input,
refused like any folder, link or file.

Filing never follows a link and never overwrites: ``processed/`` and ``failed/`` are opened as real folders,
and a file whose name is taken there gets the next free name ``NAME.1.txt``, ``NAME.2.txt``…, reserved with
``O_EXCL`` before the rename; a sidecar goes with its document under the same new name.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from itertools import count
from pathlib import Path

from pipeline.models import RawDocument
from pipeline.sources.files import SIDECAR_SUFFIX, read_in_folder, read_regular

STAGING_PREFIX = ".draining-"
STAGING_MARKER = ".newsflow-staging"  # made by the drain in each staging folder of its own
FILING_FOLDERS = ("processed", "failed")
MAX_NAME_BYTES = 255
FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
SQUATTER_ERRNOS = frozenset({errno.ELOOP, errno.ENOTDIR})
PRIVATE_MODE = 0o700


def is_own_folder(path: Path) -> bool:
    """A folder of the drain's own (``processed/``, ``failed/``, a staging folder), not a producer's input."""
    try:
        is_folder = stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False
    return is_folder and (path.name in FILING_FOLDERS or is_staging_folder(path))


def is_staging_folder(path: Path) -> bool:
    """Whether ``path`` is a staging folder a drain made (see the module's docstring), links not followed."""
    if not path.name.startswith(STAGING_PREFIX):
        return False
    try:
        folder, marker = path.lstat(), (path / STAGING_MARKER).lstat()
    except OSError:
        return False
    private = stat.S_ISDIR(folder.st_mode) and stat.S_IMODE(folder.st_mode) == PRIVATE_MODE
    return private and folder.st_uid == os.geteuid() and stat.S_ISREG(marker.st_mode)


def has_leftovers(inbox: Path) -> bool:
    """Whether a drain that died left a staging folder in ``inbox``."""
    try:
        return any(is_staging_folder(path) for path in inbox.iterdir())
    except OSError:
        return False


class Staging:
    """One staging folder, open: the files in it are read and filed through its descriptor."""

    def __init__(self, inbox: Path, name: str, descriptor: int) -> None:
        self.inbox, self.name, self.fd = inbox, name, descriptor

    def names(self) -> list[str]:
        """What is staged, in name order; a sidecar is left out when its document is staged beside it (a
        folder is never a sidecar: it is refused on its own)."""
        names = set(os.listdir(self.fd)) - {STAGING_MARKER}
        return sorted(name for name in names if not (_sidecar_of_one_of(name, names) and self._is_sidecar(name)))

    def sidecar_of(self, name: str) -> str | None:
        """The sidecar staged with ``name``, if there is one (anything by that name but a folder)."""
        sidecar = name + SIDECAR_SUFFIX
        return sidecar if self._is_sidecar(sidecar) else None

    def _is_sidecar(self, name: str) -> bool:
        mode = self.mode(name)
        return mode is not None and not stat.S_ISDIR(mode)

    def mode(self, name: str) -> int | None:
        """The type and mode of ``name`` itself (a link is not followed); None when there is no such file."""
        return _mode_at(self.fd, name)

    def link_target(self, name: str) -> str:
        return os.readlink(name, dir_fd=self.fd)

    def read_bytes(self, name: str, max_bytes: int) -> bytes:
        """At most ``max_bytes + 1`` bytes of a staged regular file; a link or special file is refused."""
        return read_regular(Path(name), max_bytes, folder=self.fd, follow_links=False)

    def read_document(self, name: str, max_bytes: int) -> RawDocument:
        """A staged document with its sidecar, named by where it was dropped (the inbox path)."""
        source = str(self.inbox.resolve() / name)
        return read_in_folder(self.fd, name, source=source, max_bytes=max_bytes)

    def move_to(self, name: str, folder: int) -> str:
        """Move ``name`` (and its sidecar) into the open ``folder`` under a free name; the name it got."""
        sidecar = self.sidecar_of(name)
        is_folder = stat.S_ISDIR(self.mode(name) or 0)
        target = reserve(folder, name, is_folder=is_folder, with_sidecar=sidecar is not None)
        os.rename(name, target, src_dir_fd=self.fd, dst_dir_fd=folder)
        if sidecar is not None:
            os.rename(sidecar, target + SIDECAR_SUFFIX, src_dir_fd=self.fd, dst_dir_fd=folder)
        return target

    def replace(self, name: str, chunks: Iterable[str]) -> None:
        """Put ``chunks`` in place of the staged file ``name`` (written beside it, then renamed over it)."""
        written = write_new(self.fd, f".{name}", chunks)
        os.rename(written, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)

    def is_empty(self) -> bool:
        return not self.names()

    def remove(self, name: str) -> None:
        os.unlink(name, dir_fd=self.fd)


class DropFolder:
    """An inbox held by one drain: locked, with the staging folders to drain (a dead drain's first, then its
    own) and the filing folders, opened when first needed."""

    def __init__(self, inbox: Path, descriptor: int) -> None:
        self.inbox, self.fd = inbox, descriptor
        self.staging: list[Staging] = []
        self._filing: dict[str, int] = {}

    @classmethod
    @contextmanager
    def locked(cls, inbox: Path) -> Iterator[DropFolder]:
        """The inbox, once no other drain holds it (waiting for the one that does)."""
        folder = cls(inbox, os.open(inbox, FOLDER_FLAGS))
        try:
            fcntl.flock(folder.fd, fcntl.LOCK_EX)
            folder.staging = [*folder._leftovers(), folder._new_staging()]
            yield folder
        finally:
            folder.close()

    def stage(self, files: Iterable[Path]) -> None:
        """Take each waiting file (by its name in the inbox) with its sidecar into this drain's staging folder;
        one gone already (another drain took it) is skipped, and so is a drain's staging folder."""
        own = self.staging[-1]
        for path in files:
            if is_staging_folder(self.inbox / path.name):
                continue
            try:
                os.rename(path.name, path.name, src_dir_fd=self.fd, dst_dir_fd=own.fd)
            except FileNotFoundError:
                continue
            with suppress(OSError):  # no sidecar (or none can have that name)
                os.rename(path.name + SIDECAR_SUFFIX, path.name + SIDECAR_SUFFIX, src_dir_fd=self.fd,
                          dst_dir_fd=own.fd)  # fmt: skip

    def clear_filing_folders(self) -> None:
        """Stage whatever squats the name of a filing folder without being a real folder (a file, a link, a
        FIFO): it is an input like any other, refused, and the folder is made where it was."""
        for name in FILING_FOLDERS:
            mode = _mode_at(self.fd, name)
            if mode is not None and not stat.S_ISDIR(mode):
                self.stage([self.inbox / name])

    def filing(self, name: str) -> int:
        """The open filing folder ``name``, made when missing; never through a link (``OSError`` when a
        producer put one there meanwhile: the file waits in staging for the next drain)."""
        if name not in self._filing:
            with suppress(FileExistsError):
                os.mkdir(name, dir_fd=self.fd)
            self._filing[name] = os.open(name, FOLDER_FLAGS | os.O_NOFOLLOW, dir_fd=self.fd)
        return self._filing[name]

    def close(self) -> None:
        """Close every folder, remove the staging folders left empty, and let the next drain in."""
        for descriptor in self._filing.values():
            os.close(descriptor)
        for staging in self.staging:
            with suppress(OSError):
                if staging.is_empty():
                    os.unlink(STAGING_MARKER, dir_fd=staging.fd)
                    os.rmdir(staging.name, dir_fd=self.fd)
            os.close(staging.fd)
        os.close(self.fd)  # releases the lock

    def _leftovers(self) -> list[Staging]:
        """The staging folders a dead drain left (anything else by such a name is a producer's input)."""
        names = sorted(name for name in os.listdir(self.fd) if is_staging_folder(self.inbox / name))
        found = []
        for name in names:
            with suppress(OSError):  # swapped for something else meanwhile: staged and refused as any other
                found.append(Staging(self.inbox, name, os.open(name, FOLDER_FLAGS | os.O_NOFOLLOW, dir_fd=self.fd)))
        return found

    def _new_staging(self) -> Staging:
        name = f"{STAGING_PREFIX}{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{os.getpid()}-{secrets.token_hex(4)}"
        os.mkdir(name, PRIVATE_MODE, dir_fd=self.fd)
        os.chmod(name, PRIVATE_MODE, dir_fd=self.fd, follow_symlinks=False)  # whatever the umask
        staging = Staging(self.inbox, name, os.open(name, FOLDER_FLAGS | os.O_NOFOLLOW, dir_fd=self.fd))
        os.close(os.open(STAGING_MARKER, NEW_FILE_FLAGS, 0o600, dir_fd=staging.fd))
        return staging


def _mode_at(folder: int, name: str) -> int | None:
    """The type and mode of ``name`` itself in the open ``folder``; None when there is none (or none can have
    that name)."""
    try:
        return os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENAMETOOLONG):
            return None
        raise


def _sidecar_of_one_of(name: str, names: set[str]) -> bool:
    return name.endswith(SIDECAR_SUFFIX) and name[: -len(SIDECAR_SUFFIX)] in names


def reserve(folder: int, name: str, *, is_folder: bool = False, with_sidecar: bool = False) -> str:
    """The first free name among ``name``, ``numbered(name, 1)``, … in the open ``folder``, created empty there
    (a folder for a folder) so that nobody else takes it; with ``with_sidecar`` its sidecar's name is free too."""
    limit = MAX_NAME_BYTES - (len(SIDECAR_SUFFIX) if with_sidecar else 0)
    for number in count():
        candidate = numbered(name, number, limit)
        if not _create(folder, candidate, is_folder=is_folder):
            continue
        if not with_sidecar or _create(folder, candidate + SIDECAR_SUFFIX, is_folder=False):
            return candidate
        _remove(folder, candidate, is_folder=is_folder)
    raise AssertionError("unreachable")  # pragma: no cover


def numbered(name: str, number: int, limit: int = MAX_NAME_BYTES) -> str:
    """``name`` for ``number`` 0, else ``STEM.N.EXT`` (the extension kept whole: ``a.html.gz`` → ``a.1.html.gz``),
    the stem shortened to fit ``limit`` bytes. Names are measured and cut as the system's bytes, so a name
    that is not UTF-8 (its bytes escaped as lone surrogates) is cut too, and the extension is cut last."""
    if number == 0 and len(os.fsencode(name)) <= limit:
        return name
    stem, extension = _split_extension(name)
    tail = os.fsencode((f".{number}" if number else "") + extension)[-(limit - 1) :]
    return _cut(stem, max(1, limit - len(tail))) + os.fsdecode(tail)


def _cut(text: str, room: int) -> str:
    """The first ``room`` bytes of ``text``; a character cut in half is dropped when ``text`` is UTF-8."""
    cut = os.fsencode(text)[:room]
    try:
        text.encode()
    except UnicodeEncodeError:
        return os.fsdecode(cut)  # not UTF-8: any bytes are as good
    return cut.decode(errors="ignore")


def _split_extension(name: str) -> tuple[str, str]:
    parts = name.split(".")
    if len(parts) < 2 or not parts[0]:
        return name, ""
    kept = 2 if len(parts) > 2 and parts[-1].lower() == "gz" else 1
    return ".".join(parts[:-kept]), "." + ".".join(parts[-kept:])


def _create(folder: int, name: str, *, is_folder: bool) -> bool:
    """Create ``name`` empty in ``folder``; False when the name is taken."""
    try:
        if is_folder:
            os.mkdir(name, dir_fd=folder)
        else:
            os.close(os.open(name, NEW_FILE_FLAGS, 0o644, dir_fd=folder))
    except FileExistsError:
        return False
    return True


def _remove(folder: int, name: str, *, is_folder: bool) -> None:
    if is_folder:
        os.rmdir(name, dir_fd=folder)
    else:
        os.unlink(name, dir_fd=folder)


def write_new(folder: int, name: str, chunks: Iterable[str]) -> str:
    """Write ``chunks`` into a new file in the open ``folder`` under a free name (see ``reserve``); its name."""
    target = reserve(folder, name)
    descriptor = os.open(target, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.writelines(chunks)
    return target
