"""The event inbox: documents and URL lists dropped in a folder, ingested when its doorbell rings.

A ``.urls`` file holds one http(s) URL per line (blank lines and ``#`` comments are skipped; lines end at a
line feed only, a trailing carriage return and a leading byte-order mark are dropped). Files stay in the inbox
until a drain runs, so what is dropped while Airflow is down is taken up when it comes back.

The inbox is a boundary: nothing outside it is read. A drain first takes each waiting file by renaming it into
a staging folder of its own (see ``pipeline.sources.drop_folder``), so what it reads and files is exactly what
it took, whatever producers write meanwhile. A link (a document, a URL list or a sidecar) is refused, and so is
anything that is not a regular file (a FIFO, a device, a socket, a folder) and a sidecar without its document;
a line of a URL list that is not an http(s) URL (or that carries a user name or password) is refused, never
read as a path. Each refusal is an ``ingest_errors`` row at the ``inbox`` stage, and the rest of the drain
goes on. A list is taken up to ``MAX_URL_LINES`` URL lines; refused lines get a row each up to
``MAX_REFUSAL_ROWS``, then one row says how many more.

Afterwards each document moves to ``processed/`` or ``failed/`` with its sidecar, under a free name (``NAME``,
else ``NAME.1.txt``, …: nothing filed is overwritten). A URL list is kept by line: when every line worked it
moves to ``processed/`` as dropped; otherwise ``processed/NAME.urls`` holds the lines that worked and
``failed/NAME.urls`` the lines that failed, each after a ``# line N: reason`` comment (then the lines over the
limit, as they were), so that the failed file can be fixed and dropped into the inbox again.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine

from pipeline.db import runs
from pipeline.errors import SourceError, describe
from pipeline.ingest.boundary import guarded, raise_if_systemic
from pipeline.ingest.run import Input, Run, RunSummary, database_errors, open_run
from pipeline.ingest.step import batches, ingest_batch
from pipeline.models import Failure
from pipeline.settings import Settings
from pipeline.sources.drop_folder import DropFolder, Staging, has_leftovers, is_own_folder, write_new
from pipeline.sources.files import SIDECAR_SUFFIX, is_url

__all__ = ["DropFolder", "drain_inbox", "has_leftovers", "url_lines", "waiting_files"]

URL_LIST_SUFFIX = ".urls"
DOORBELL = ".ring"
INBOX_STAGE = "inbox"
MAX_URL_LINES = 10_000  # URL lines taken from one list; the rest go back to failed/ for another drop
MAX_REFUSAL_ROWS = 100  # refused lines of one list with a row each; one more row counts the others
NOT_IN_A_URL = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*(?=:)")
USER_INFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


@dataclass(frozen=True)
class UrlLine:
    """One line of a URL list: its number, the URL (its scheme in lower case, a password masked), and why it
    was refused (None: it is fetched)."""

    number: int
    url: str
    refusal: str | None = None


@dataclass(frozen=True)
class UrlList:
    """The URL lines taken from a list, and those over ``MAX_URL_LINES``: how many, and the text from the first
    of them on (written back to ``failed/``)."""

    lines: tuple[UrlLine, ...]
    over_limit: int = 0
    rest: str = ""


@dataclass(frozen=True)
class Dropped:
    """One file taken from the inbox (``path``: where it was dropped, its name in errors and the database):
    refused whole (``refusal``), a document, or a URL list (``urls``)."""

    path: Path
    refusal: str | None = None
    urls: UrlList | None = None

    def refusals(self) -> list[Failure]:
        """The failures known before ingesting: the whole file's, or the refused lines' (``NAME.urls:N``, up to
        ``MAX_REFUSAL_ROWS``, then one row for the rest) and the lines over the limit."""
        if self.refusal is not None:
            return [Failure(str(self.path), INBOX_STAGE, self.refusal)]
        if self.urls is None:
            return []
        refused = [line for line in self.urls.lines if line.refusal is not None]
        rows = [Failure(f"{self.path}:{line.number}", INBOX_STAGE, str(line.refusal))
                for line in refused[:MAX_REFUSAL_ROWS]]  # fmt: skip
        if len(refused) > MAX_REFUSAL_ROWS:
            more = f"{len(refused) - MAX_REFUSAL_ROWS:,} more lines refused, each in failed/{self.path.name}"
            rows.append(Failure(str(self.path), INBOX_STAGE, f"{more} with its reason"))
        if self.urls.over_limit:
            rows.append(Failure(str(self.path), INBOX_STAGE, over_limit(self.urls.over_limit)))
        return rows


def over_limit(lines: int) -> str:
    return (f"over the limit of {MAX_URL_LINES:,} URL lines in one list: {lines:,} more were not fetched (they "
            "end the list in failed/: drop them again in smaller lists)")  # fmt: skip


def waiting_files(inbox: Path) -> list[Path]:
    """Everything waiting in the inbox, in name order (sidecars travel with their document), but hidden names
    (``.ring``, the drain's staging folders, files being written under a temporary ``.NAME``) and the filing
    folders. Links, special files, folders and sidecars without a document are listed too, so that draining
    refuses them by name instead of leaving them there."""
    if not inbox.is_dir():
        return []
    entries = sorted(path for path in inbox.iterdir() if not path.name.startswith(".") and not is_own_folder(path))
    names = {path.name for path in entries}
    return [path for path in entries if not _is_sidecar_of_one_of(path.name, names)]


def _is_sidecar_of_one_of(name: str, names: set[str]) -> bool:
    return name.endswith(SIDECAR_SUFFIX) and name[: -len(SIDECAR_SUFFIX)] in names


def drain_inbox(
    settings: Settings, engine: Engine, files: list[Path], *, inbox: Path | None = None, trigger: str = "inbox"
) -> RunSummary:
    """Take the waiting ``files`` of ``inbox`` (their folder when not given) with what a dead drain left, ingest
    them in one run and file each away by its result (see the module's docstring). Waits for another drain of
    the same inbox to end first."""
    where = inbox or (files[0].parent if files else None)
    if where is None:
        return RunSummary(run_id=0)
    with DropFolder.locked(where) as folder:
        folder.stage(files)
        folder.clear_filing_folders()
        with open_run(settings, engine, trigger=trigger) as run:
            for staging in folder.staging:
                drain_staged(run, folder, staging)
    return run.summary


def drain_staged(run: Run, folder: DropFolder, staging: Staging) -> None:
    """Ingest what one staging folder holds, then file each file away by its result."""
    dropped = [take(folder, staging, name, run.settings.fetch_max_bytes) for name in staging.names()]
    first = len(run.summary.failures)
    for item in dropped:
        for failure in item.refusals():
            run.fail(Input(failure.source), failure)
    for batch in batches(_inputs(run, staging, dropped), run.settings.batch_size):
        ingest_batch(run, batch)
    failures = {failure.source: failure.error for failure in run.summary.failures[first:]}
    for item in dropped:
        _file_away_or_record(run, folder, staging, item, failures)


def _inputs(run: Run, staging: Staging, dropped: Iterable[Dropped]) -> Iterator[Input]:
    """What to ingest, read a batch at a time: each document read from staging (its failure recorded), and the
    URLs of each list that were not refused."""
    for item in dropped:
        if item.refusal is not None:
            continue
        if item.urls is not None:
            yield from (Input(line.url) for line in item.urls.lines if line.refusal is None)
            continue
        document = Input(str(item.path))
        read = partial(staging.read_document, item.path.name, run.settings.fetch_max_bytes)
        raw = guarded(run, document, "read", read)
        if not isinstance(raw, Failure):
            yield replace(document, raw=raw)


def take(folder: DropFolder, staging: Staging, name: str, max_bytes: int) -> Dropped:
    """What one staged file amounts to, reading nothing outside the inbox and no more than ``max_bytes``."""
    path = folder.inbox / name
    try:
        refusal = _refusal(staging, name)
        if refusal is not None:
            return Dropped(path, refusal=refusal)
        if Path(name).suffix != URL_LIST_SUFFIX:
            return Dropped(path)
        return Dropped(path, urls=url_list(read_url_list(staging, name, max_bytes)))
    except SourceError as error:
        return Dropped(path, refusal=str(error))


def _refusal(staging: Staging, name: str) -> str | None:
    """Why a staged file is refused before it is read (a link, a folder, a sidecar alone); None if it is not."""
    mode = staging.mode(name) or 0
    if stat.S_ISLNK(mode):
        return _link_refusal(staging, name)
    if stat.S_ISDIR(mode):
        return f"{name} is a folder: the inbox takes files (drop the files themselves)"
    if name.endswith(SIDECAR_SUFFIX):
        return f"{name} is a metadata sidecar without its document {name[: -len(SIDECAR_SUFFIX)]}"
    if stat.S_ISLNK(staging.mode(name + SIDECAR_SUFFIX) or 0):
        return _link_refusal(staging, name + SIDECAR_SUFFIX)
    return None


def _link_refusal(staging: Staging, name: str) -> str:
    """Why a link is refused: no link is read, and the message says where it leads, seen from the inbox."""
    try:
        real = (staging.inbox / staging.link_target(name)).resolve()
    except (OSError, RuntimeError) as error:  # a loop is a RuntimeError before Python 3.13
        return f"cannot follow the link {name}: {error}"
    if not real.is_relative_to(staging.inbox.resolve()):
        return f"{name} is a link to {real}, outside the inbox"
    return f"{name} is a link: the inbox reads no links (drop the file itself)"


def read_url_list(staging: Staging, name: str, max_bytes: int) -> str:
    """The text of a staged URL list: a regular file of at most ``max_bytes``, else ``SourceError``."""
    try:
        data = staging.read_bytes(name, max_bytes)
    except OSError as error:
        raise SourceError(f"cannot read URL list {name}: {error.strerror or error}") from error
    if len(data) > max_bytes:
        raise SourceError(f"URL list {name} is over the {max_bytes:,}-byte limit")
    return data.decode("utf-8", errors="replace")


def url_lines(text: str) -> tuple[UrlLine, ...]:
    """The URL lines of a list (up to ``MAX_URL_LINES``), numbered from 1, each with why it is refused."""
    return url_list(text).lines


def url_list(text: str) -> UrlList:
    """The URL lines of a list, up to ``MAX_URL_LINES``, and what is left over; streamed line by line."""
    body = text.removeprefix("\ufeff")
    taken: list[UrlLine] = []
    lines = _url_lines(body)
    for number, start, url in lines:
        if len(taken) == MAX_URL_LINES:
            return UrlList(tuple(taken), over_limit=1 + sum(1 for _ in lines), rest=body[start:])
        taken.append(url_line(number, url))
    return UrlList(tuple(taken))


def _url_lines(text: str) -> Iterator[tuple[int, int, str]]:
    """Each line that is not blank or a comment: its number, where it starts, its text without blanks around."""
    start, number = 0, 1
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end].strip(" \t\r")
        if line and not line.startswith("#"):
            yield number, start, line
        start, number = end + 1, number + 1


def url_line(number: int, written: str) -> UrlLine:
    """One line as fetched: the scheme in lower case (schemes ignore case); refused with a password masked."""
    url = SCHEME.sub(lambda scheme: scheme.group().lower(), written, count=1)
    refusal = url_refusal(url)
    return UrlLine(number, url if refusal is None else masked(url), refusal)


def url_refusal(url: str) -> str | None:
    """Why a line is not an http(s) URL with a host and nothing else (None when it is one): it is never read as
    a path, and a URL with a user name or password is not taken (it would be recorded)."""
    shown = repr(masked(url)[:200])
    if NOT_IN_A_URL.search(url):
        return f"not an http(s) URL (a space or control character in it): {shown}"
    try:
        parts = urlsplit(url)
        has_host, has_user = bool(parts.hostname), "@" in parts.netloc
    except ValueError:
        has_host, has_user = False, False
    if not (is_url(url) and has_host):
        return f"not an http(s) URL: {shown}"
    return f"a URL with a user name or password is not taken from a list: {shown}" if has_user else None


def masked(url: str) -> str:
    """``url`` with its user name and password (if any) replaced by ``***``."""
    return USER_INFO.sub(r"\1***@", url, count=1)


def _file_away_or_record(
    run: Run, folder: DropFolder, staging: Staging, item: Dropped, failures: Mapping[str, str]
) -> None:
    """File one item away; a file that cannot be (a squatter put in its way meanwhile) stays in staging for the
    next drain, and says so in a row."""
    try:
        file_away(folder, staging, item, failures)
    except OSError as error:
        raise_if_systemic(error)
        reason = f"could not file it away ({describe(error)}): it waits in {staging.name} for the next drain"
        _record(run, Failure(str(item.path), INBOX_STAGE, reason))


def _record(run: Run, failure: Failure) -> None:
    """A row for a file already counted (its document loaded or failed): no second outcome."""
    if run.engine is not None:
        with database_errors():
            runs.record_error(run.engine, run_id=run.id, source=failure.source, stage=failure.stage,
                              error=failure.error)  # fmt: skip
    run.summary.failures.append(failure)


def file_away(folder: DropFolder, staging: Staging, item: Dropped, failures: Mapping[str, str]) -> None:
    """Move a drained file (with its sidecar) to ``processed/`` or ``failed/``; split a URL list by line."""
    name = item.path.name
    if item.urls is None or item.refusal is not None:
        failed = item.refusal is not None or str(item.path) in failures
        staging.move_to(name, folder.filing("failed" if failed else "processed"))
        return
    lines = item.urls.lines
    failed_lines = {line.number: reason for line in lines if (reason := line.refusal or failures.get(line.url))}
    if not failed_lines and not item.urls.over_limit:
        staging.move_to(name, folder.filing("processed"))
        return
    worked = [f"{line.url}\n" for line in lines if line.number not in failed_lines]
    if worked:
        write_new(folder.filing("processed"), name, worked)
    write_new(folder.filing("failed"), name, _failed_lines(item.urls, failed_lines))
    if staging.mode(name + SIDECAR_SUFFIX) is not None:
        staging.move_to(name + SIDECAR_SUFFIX, folder.filing("processed"))
    staging.remove(name)


def _failed_lines(urls: UrlList, failed: Mapping[int, str]) -> Iterator[str]:
    """The failed file: each failed line after its reason, then the lines over the limit as they were."""
    for line in urls.lines:
        if line.number in failed:
            yield f"# line {line.number}: {' '.join(failed[line.number].split())}\n{line.url}\n"
    if urls.over_limit:
        yield f"# {over_limit(urls.over_limit)}\n"
        yield urls.rest if urls.rest.endswith("\n") else urls.rest + "\n"
