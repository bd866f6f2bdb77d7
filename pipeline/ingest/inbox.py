"""The event inbox: documents and URL lists dropped in a folder, ingested when its doorbell rings.

A ``.urls`` file holds one http(s) URL per line (blank lines and ``#`` comments are skipped). Files stay in
the inbox until a drain runs, so what is dropped while Airflow is down is taken up when it comes back.

The inbox is a boundary: nothing outside it is read. A link (a document, a URL list, or the metadata sidecar
of a document) that leads out of the inbox is refused, and so is anything that is not a regular file (a FIFO,
a device, a socket); a line of a URL list that is not an http(s) URL is refused, never read as a path. Each
refusal is an ``ingest_errors`` row at the ``inbox`` stage, and the rest of the drain goes on.

Afterwards each document moves to ``processed/`` or ``failed/`` with its sidecar. A URL list is kept by line:
when every line worked it moves to ``processed/`` as dropped; otherwise ``processed/NAME.urls`` holds the
lines that worked and ``failed/NAME.urls`` the lines that failed, each after a ``# line N: reason`` comment,
so that the failed file can be fixed and dropped into the inbox again.
"""

from __future__ import annotations

import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine

from pipeline.errors import SourceError
from pipeline.ingest import ingest_values
from pipeline.ingest.run import Input, RunSummary, open_run
from pipeline.models import Failure
from pipeline.settings import Settings
from pipeline.sources.files import SIDECAR_SUFFIX, is_url, read_regular

URL_LIST_SUFFIX = ".urls"
DOORBELL = ".ring"
INBOX_STAGE = "inbox"


@dataclass(frozen=True)
class UrlLine:
    """One line of a URL list: its number, the URL as written, and why it was refused (None: it is fetched)."""

    number: int
    url: str
    refusal: str | None = None


@dataclass(frozen=True)
class Dropped:
    """One file taken from the inbox: refused whole (``refusal``), a document, or a URL list (``lines``)."""

    path: Path
    refusal: str | None = None
    lines: tuple[UrlLine, ...] | None = None

    def inputs(self) -> list[str]:
        """What to ingest: the document's path, or the URLs of the list that were not refused."""
        if self.refusal is not None:
            return []
        if self.lines is None:
            return [str(self.path)]
        return [line.url for line in self.lines if line.refusal is None]

    def refusals(self) -> list[Failure]:
        """The failures known before ingesting: the whole file's, or one per refused line (``NAME.urls:N``)."""
        if self.refusal is not None:
            return [Failure(str(self.path), INBOX_STAGE, self.refusal)]
        refused = [line for line in self.lines or () if line.refusal is not None]
        return [Failure(f"{self.path}:{line.number}", INBOX_STAGE, str(line.refusal)) for line in refused]


def waiting_files(inbox: Path) -> list[Path]:
    """Everything waiting in the inbox but folders, in name order (sidecars travel with their document). Links
    and special files are listed too, so that draining refuses them by name instead of leaving them there."""
    if not inbox.is_dir():
        return []
    entries = sorted(path for path in inbox.iterdir() if path.name != DOORBELL and not _is_folder(path))
    return [path for path in entries if not path.name.endswith(SIDECAR_SUFFIX)]


def drain_inbox(settings: Settings, engine: Engine, files: list[Path], *, trigger: str = "inbox") -> RunSummary:
    """Ingest the waiting files in one run, then file each away by its result (see the module's docstring)."""
    dropped = [take(path, settings.fetch_max_bytes) for path in files]
    with open_run(settings, engine, trigger=trigger) as run:
        for item in dropped:
            for failure in item.refusals():
                run.fail(Input(failure.source), failure)
        ingest_values(run, [value for item in dropped for value in item.inputs()])
    failures = {failure.source: failure.error for failure in run.summary.failures}
    for item in dropped:
        file_away(item, failures)
    return run.summary


def take(path: Path, max_bytes: int) -> Dropped:
    """What one waiting file amounts to, reading nothing outside the inbox and no more than ``max_bytes``."""
    try:
        inbox, real = _real(path.parent), _real(path)
        refusal = _outside(path, real, inbox) or _outside(_sidecar(real), _real(_sidecar(real)), inbox)
        if refusal is not None:
            return Dropped(path, refusal=refusal)
        if path.suffix != URL_LIST_SUFFIX:
            return Dropped(path)
        return Dropped(path, lines=url_lines(read_url_list(path, max_bytes)))
    except SourceError as error:
        return Dropped(path, refusal=str(error))


def read_url_list(path: Path, max_bytes: int) -> str:
    """The text of a URL list: a regular file of at most ``max_bytes``, else ``SourceError``."""
    try:
        data = read_regular(path, max_bytes)
    except OSError as error:
        raise SourceError(f"cannot read URL list {path.name}: {error.strerror or error}") from error
    if len(data) > max_bytes:
        raise SourceError(f"URL list {path.name} is over the {max_bytes:,}-byte limit")
    return data.decode("utf-8", errors="replace")


def url_lines(text: str) -> tuple[UrlLine, ...]:
    """The URL lines of a list, numbered from 1, each with the reason it is refused (or None)."""
    lines = ((number, line.strip()) for number, line in enumerate(text.splitlines(), start=1))
    return tuple(UrlLine(number, url, url_refusal(url)) for number, url in lines if url and not url.startswith("#"))


def url_refusal(url: str) -> str | None:
    """Why a line is not an http(s) URL with a host (None when it is one): it is never read as a path."""
    try:
        has_host = bool(urlsplit(url).hostname)
    except ValueError:
        has_host = False
    return None if is_url(url) and has_host else f"not an http(s) URL: {url[:200]!r}"


def file_away(item: Dropped, failures: Mapping[str, str]) -> None:
    """Move a drained file (with its sidecar) to ``processed/`` or ``failed/``; split a URL list by line."""
    if item.lines is None or item.refusal is not None:
        failed = item.refusal is not None or str(item.path) in failures
        _move_with_sidecar(item.path, item.path.parent / ("failed" if failed else "processed"))
        return
    failed_lines = {line.number: reason for line in item.lines if (reason := line.refusal or failures.get(line.url))}
    if not failed_lines:
        _move_with_sidecar(item.path, item.path.parent / "processed")
        return
    _split_url_list(item.path, item.lines, failed_lines)


def _split_url_list(path: Path, lines: tuple[UrlLine, ...], failed: Mapping[int, str]) -> None:
    """``processed/NAME`` with the lines that worked (when any did), ``failed/NAME`` with the others, each after
    its reason; then the dropped list is removed (its sidecar goes to ``processed/``)."""
    worked = [line.url for line in lines if line.number not in failed]
    if worked:
        _write(path.parent / "processed" / path.name, "".join(f"{url}\n" for url in worked))
    reasons = (f"# line {line.number}: {_one_line(failed[line.number])}\n{line.url}\n" for line in lines
               if line.number in failed)  # fmt: skip
    _write(path.parent / "failed" / path.name, "".join(reasons))
    _move_with_sidecar(path.with_name(path.name + SIDECAR_SUFFIX), path.parent / "processed")
    path.unlink()


def _one_line(reason: str) -> str:
    return " ".join(reason.split())


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _real(path: Path) -> Path:
    """Where ``path`` leads, every link followed; ``SourceError`` for a loop of links."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as error:  # a loop is a RuntimeError before Python 3.13
        raise SourceError(f"cannot follow the link {path.name}: {error}") from error


def _outside(path: Path, real: Path, inbox: Path) -> str | None:
    """Why ``path`` (whose target is ``real``) may not be read: a link out of the inbox; None if it may."""
    if real.is_relative_to(inbox):
        return None
    return f"{path.name} is a link to {real}, outside the inbox"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _is_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def _move_with_sidecar(path: Path, folder: Path) -> None:
    for companion in (path, _sidecar(path)):
        if companion.is_symlink() or companion.exists():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.move(str(companion), str(folder / companion.name))
