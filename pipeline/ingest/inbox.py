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

A file whose name is not UTF-8 is refused (its row names it with the bytes escaped) and filed all the same; a
file with other hard links is refused like a link. Whatever goes wrong filing one file costs that file a row:
it waits in staging, and the other files are filed.

A drain has a time budget (``Settings.inbox_drain_seconds``, read on ``Settings.clock``): once it is spent, no
other page is fetched and no other file read. What was not reached waits in the drain's staging folder, where
the next drain takes it first, with no error: files whole, and a URL list as the lines not fetched yet (the
lines done are filed, and blank lines keep the others' numbers). The summary counts them (``inbox_left``), and
the drain rings the doorbell again so that the next drain comes.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine

from pipeline.db import runs
from pipeline.errors import SourceError, describe
from pipeline.ingest.boundary import guarded, raise_if_systemic
from pipeline.ingest.run import Input, Run, RunSummary, database_errors, open_run
from pipeline.ingest.step import batches, ingest_batch, read
from pipeline.models import Failure, storable
from pipeline.settings import Settings
from pipeline.sources.drop_folder import (
    STAGING_PREFIX,
    DropFolder,
    Staging,
    has_leftovers,
    is_own_folder,
    write_new,
)
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
            first = refused[MAX_REFUSAL_ROWS].number
            rows.append(Failure(f"{self.path}:{first}-", INBOX_STAGE, f"{more} with its reason"))
        if self.urls.over_limit:  # its own source: a run keeps one row per source and stage
            rows.append(Failure(f"{self.path}:over-limit", INBOX_STAGE, over_limit(self.urls.over_limit)))
        return rows


@dataclass
class Budget:
    """A drain's time budget: the files it reached, how many documents and pages it took, and where in a URL
    list it ran out (the list's name and its first line not fetched)."""

    deadline: float
    clock: Callable[[], float]
    reached: list[Dropped] = field(default_factory=list)
    taken: int = 0
    cut: tuple[str, int] | None = None

    def spent(self) -> bool:
        """Whether the time is up; never before one input is taken, so that every drain moves on."""
        return self.taken > 0 and self.clock() >= self.deadline


def over_limit(lines: int) -> str:
    return (f"over the limit of {MAX_URL_LINES:,} URL lines in one list: {lines:,} more were not fetched (they "
            "end the list in failed/: drop them again in smaller lists)")  # fmt: skip


def waiting_files(inbox: Path) -> list[Path]:
    """Everything waiting in the inbox, in name order (sidecars travel with their document), but hidden names
    (``.ring``, files being written under a temporary ``.NAME``), the drain's staging and filing folders. Links,
    special files, folders, sidecars without a document and ``.draining-…`` names the drain did not make are
    listed too, so that draining refuses them by name instead of leaving them there."""
    if not inbox.is_dir():
        return []
    entries = sorted(path for path in inbox.iterdir() if _is_waiting(path))
    names = {path.name for path in entries}
    return [path for path in entries if not _is_sidecar_of_one_of(path.name, names)]


def _is_waiting(path: Path) -> bool:
    hidden = path.name.startswith(".") and not path.name.startswith(STAGING_PREFIX)
    return not hidden and not is_own_folder(path)


def _is_sidecar_of_one_of(name: str, names: set[str]) -> bool:
    return name.endswith(SIDECAR_SUFFIX) and name[: -len(SIDECAR_SUFFIX)] in names


def drain_inbox(
    settings: Settings, engine: Engine, files: list[Path], *, inbox: Path | None = None, trigger: str = "inbox"
) -> RunSummary:
    """Take the waiting ``files`` of ``inbox`` (their folder when not given) with what a dead drain left, ingest
    them in one run and file each away by its result (see the module's docstring). Waits for another drain of
    the same inbox to end first; stops when its time budget is spent (see the module's docstring)."""
    where = inbox or (files[0].parent if files else None)
    if where is None:
        return RunSummary(run_id=0)
    with DropFolder.locked(where) as folder:
        folder.stage(files)
        folder.clear_filing_folders()
        with open_run(settings, engine, trigger=trigger) as run:
            budget = Budget(settings.clock() + settings.inbox_drain_seconds, settings.clock)
            for staging in folder.staging:
                drain_staged(run, folder, staging, budget)
    if run.summary.inbox_left:
        ring(where)
    return run.summary


def ring(inbox: Path) -> None:
    """Ring the doorbell (create ``.ring``, following no link): the next drain comes."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        os.close(os.open(inbox / DOORBELL, flags, 0o644))
    except OSError:
        return  # something else squats the name: the next ring of a producer brings the drain


def drain_staged(run: Run, folder: DropFolder, staging: Staging, budget: Budget) -> None:
    """Ingest what one staging folder holds while the budget lasts, then file each file reached away by its
    result; the others wait in staging, counted in ``inbox_left``."""
    dropped = [take(folder, staging, name, run.settings.fetch_max_bytes) for name in staging.names()]
    first, reached = len(run.summary.failures), len(budget.reached)
    for batch in batches(_inputs(run, staging, dropped, budget), run.settings.batch_size):
        ingest_batch(run, batch)
    failures = {failure.source: failure.error for failure in run.summary.failures[first:]}
    for item in budget.reached[reached:]:
        cut = budget.cut[1] if budget.cut is not None and budget.cut[0] == item.path.name else None
        _file_away_or_record(run, folder, staging, item, Outcome(failures, cut))
    run.summary.inbox_left += sum(_left(item, None) for item in dropped[len(budget.reached) - reached :])


def _left(item: Dropped, cut: int | None) -> int:
    """How many inputs of ``item`` wait for the next drain: its URL lines from ``cut`` on, else the file."""
    if item.urls is None or item.refusal is not None:
        return 1
    return len(_lines_left(item.urls, cut or 0)) or 1


def _lines_left(urls: UrlList, cut: int | None) -> list[UrlLine]:
    """The lines of a list not fetched when the budget ran out at line ``cut`` (none when it did not)."""
    if cut is None:
        return []
    return [line for line in urls.lines if line.refusal is None and line.number >= cut]


def _inputs(run: Run, staging: Staging, dropped: Iterable[Dropped], budget: Budget) -> Iterator[Input]:
    """What to ingest, read one at a time while the budget lasts: each file's refusals recorded, each document
    read from staging, each URL of a list that was not refused fetched (failures recorded)."""
    for item in dropped:
        if budget.spent():
            return
        budget.reached.append(item)
        for failure in item.refusals():
            run.fail(Input(failure.source), failure)
        if item.refusal is not None:
            continue
        if item.urls is not None:
            yield from _fetched(run, item.path.name, item.urls, budget)
            if budget.cut is not None:
                return
            continue
        document, budget.taken = Input(str(item.path)), budget.taken + 1
        read = partial(staging.read_document, item.path.name, run.settings.fetch_max_bytes)
        raw = guarded(run, document, "read", read)
        if not isinstance(raw, Failure):
            yield replace(document, raw=raw)


def _fetched(run: Run, name: str, urls: UrlList, budget: Budget) -> Iterator[Input]:
    """The pages of a list's URLs that were not refused, fetched one at a time while the budget lasts; where it
    ran out goes in ``budget.cut``."""
    for line in urls.lines:
        if line.refusal is not None:
            continue
        if budget.spent():
            budget.cut = (name, line.number)
            return
        budget.taken += 1
        raw = read(run, Input(line.url))
        if not isinstance(raw, Failure):
            yield Input(line.url, raw=raw)


def take(folder: DropFolder, staging: Staging, name: str, max_bytes: int) -> Dropped:
    """What one staged file amounts to, reading nothing outside the inbox and no more than ``max_bytes``."""
    path = folder.inbox / name
    try:
        refusal = _name_refusal(name) or _refusal(staging, name)
        if refusal is not None:
            return Dropped(path, refusal=refusal)
        if Path(name).suffix != URL_LIST_SUFFIX:
            return Dropped(path)
        return Dropped(path, urls=url_list(read_url_list(staging, name, max_bytes)))
    except SourceError as error:
        return Dropped(path, refusal=str(error))


def _name_refusal(name: str) -> str | None:
    """Why a name is refused: it is not UTF-8 (shown with its bytes escaped); None when it is."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return f"the name '{storable(name)}' is not valid UTF-8: rename the file and drop it again"
    return None


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


@dataclass(frozen=True)
class Outcome:
    """What became of a drain's inputs: each failed input's reason by its source, and, for the URL list the
    budget ran out in, the first line not fetched."""

    failures: Mapping[str, str]
    cut: int | None = None


def _file_away_or_record(run: Run, folder: DropFolder, staging: Staging, item: Dropped, outcome: Outcome) -> None:
    """File one item away; a file that cannot be (a squatter put in its way meanwhile, whatever else goes
    wrong) stays in staging for the next drain, and says so in a row: it never stops the drain."""
    try:
        file_away(folder, staging, item, outcome)
    except Exception as error:  # noqa: BLE001 - one file's filing must not stop the others'
        raise_if_systemic(error)
        reason = f"could not file it away ({describe(error)}): it waits in {staging.name} for the next drain"
        _record(run, Failure(str(item.path), INBOX_STAGE, reason))
        return
    if outcome.cut is not None and item.urls is not None:
        run.summary.inbox_left += _left(item, outcome.cut)


def _record(run: Run, failure: Failure) -> None:
    """A row for a file already counted (its document loaded or failed): no second outcome."""
    if run.engine is not None:
        with database_errors():
            runs.record_error(run.engine, run_id=run.id, source=failure.source, stage=failure.stage,
                              error=failure.error)  # fmt: skip
    run.summary.failures.append(failure)


def file_away(folder: DropFolder, staging: Staging, item: Dropped, outcome: Outcome) -> None:
    """Move a drained file (with its sidecar) to ``processed/`` or ``failed/``; split a URL list by line (the
    lines not fetched in time stay in staging)."""
    name = item.path.name
    if item.urls is None or item.refusal is not None:
        failed = item.refusal is not None or str(item.path) in outcome.failures
        staging.move_to(name, folder.filing("failed" if failed else "processed"))
        return
    left = _lines_left(item.urls, outcome.cut)
    done = item.urls.lines[: len(item.urls.lines) - len(left)] if left else item.urls.lines
    failed_lines = {line.number: why for line in done if (why := line.refusal or outcome.failures.get(line.url))}
    if not left and not failed_lines and not item.urls.over_limit:
        staging.move_to(name, folder.filing("processed"))
        return
    worked = [f"{line.url}\n" for line in done if line.number not in failed_lines]
    if worked:
        write_new(folder.filing("processed"), name, worked)
    if failed_lines or item.urls.over_limit:
        write_new(folder.filing("failed"), name, _failed_lines(item.urls, failed_lines))
    if left:
        staging.replace(name, _kept_lines(left))  # its sidecar stays with it
        return
    if staging.mode(name + SIDECAR_SUFFIX) is not None:
        staging.move_to(name + SIDECAR_SUFFIX, folder.filing("processed"))
    staging.remove(name)


def _kept_lines(lines: Iterable[UrlLine]) -> Iterator[str]:
    """The lines as a URL list again, each at its number (blank lines before it)."""
    at = 1
    for line in lines:
        yield "\n" * (line.number - at) + f"{line.url}\n"
        at = line.number + 1


def _failed_lines(urls: UrlList, failed: Mapping[int, str]) -> Iterator[str]:
    """The failed file: each failed line after its reason, then the lines over the limit as they were."""
    for line in urls.lines:
        if line.number in failed:
            yield f"# line {line.number}: {' '.join(failed[line.number].split())}\n{line.url}\n"
    if urls.over_limit:
        yield f"# {over_limit(urls.over_limit)}\n"
        yield urls.rest if urls.rest.endswith("\n") else urls.rest + "\n"
