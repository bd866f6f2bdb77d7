"""Every error Newsflow raises, each carrying the stage it belongs to.

Two families, because they call for opposite responses:

- ``DocumentError``: one document cannot be read, fetched, extracted, analysed or loaded. It becomes that
  document's ``ingest_errors`` row and the batch goes on.
- ``SystemicError``: the run cannot go on for anyone (the database is unreachable, the disk is full, the
  model is missing). It stops the run with a clear message (exit status 3 on the command line).

Errors of libraries are translated into these at the boundary where they are met, as httpx does; anything
else a document trips is described in one line by ``describe`` and treated as that document's problem.
"""

from __future__ import annotations

import errno


class NewsflowError(Exception):
    """Base of Newsflow's errors; ``stage`` names where it happened (read, fetch, extract, facts, load, …)."""

    default_stage = "ingest"

    def __init__(self, message: str, *, stage: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage or self.default_stage


class DocumentError(NewsflowError):
    """One document's problem: recorded against it, and the batch goes on."""


class SourceError(DocumentError, ValueError):
    """A local document could not be read."""

    default_stage = "read"


class FetchError(DocumentError, RuntimeError):
    """A URL could not be fetched (status, limit, guard, timeout); ``reason`` is the message without the URL."""

    default_stage = "fetch"

    def __init__(self, message: str, *, stage: str | None = None, reason: str | None = None) -> None:
        super().__init__(message, stage=stage)
        self.reason = reason or message


class FetchDeferredError(FetchError):
    """The server asked to be asked again later than this fetch may wait: try the URL at the next poll."""


class FeedError(DocumentError, ValueError):
    """A feed cannot be used: too costly to parse (over its memory or time limit), or unparseable."""

    default_stage = "feed"


class ExtractError(DocumentError, ValueError):
    """The document's body or metadata cannot be extracted."""

    default_stage = "extract"


class FactsError(DocumentError, RuntimeError):
    """Fact extraction failed on one document."""

    default_stage = "facts"


class DocumentTimeoutError(DocumentError, TimeoutError):
    """One document took longer than its time budget in a stage."""


class NothingToReprocessError(NewsflowError, LookupError):
    """A reprocess was asked for sources of which none names a stored article: the request is wrong, so the run
    fails rather than ending green having done nothing."""

    default_stage = "reprocess"


class SystemicError(NewsflowError, RuntimeError):
    """The run cannot go on for anyone; it stops with this message."""


class DatabaseUnavailableError(SystemicError):
    """The configured or embedded database cannot be reached, or the connection was lost for good."""

    default_stage = "database"


class DatabaseConnectionLostError(DatabaseUnavailableError):
    """The connection broke (the server restarted or went away): the run waits for it to come back, a bounded
    time (``NEWSFLOW_DB_RECONNECT_SECONDS``), and retries what was in flight; this stops the run when it does not."""

    @classmethod
    def for_documents(cls, not_loaded: int, feeds_left: int = 0) -> DatabaseConnectionLostError:
        """The plain sentence the command line ends with, counting the documents the run did not load (and the
        feeds whose new entries it did not finish). With none left, only the run's own record was lost: the
        sentence says that the data is complete."""
        if not not_loaded and not feeds_left:
            return cls(
                "the database connection was lost as the run ended; the data is complete (every document has its "
                "outcome stored); only the run's record could not be written (the next run on this host marks it "
                "abandoned)"
            )
        documents = "1 document was" if not_loaded == 1 else f"{not_loaded} documents were"
        feeds = "1 feed was" if feeds_left == 1 else f"{feeds_left} feeds were"
        left = f"{feeds} not finished" if feeds_left and not not_loaded else f"{documents} not loaded"
        left += f" and {feeds} not finished" if feeds_left and not_loaded else ""
        return cls(f"the database connection was lost; {left}; run the same command again to finish")


class ModelNotFoundError(SystemicError):
    """The configured spaCy model is not installed."""

    default_stage = "facts"


class DiskFullError(SystemicError):
    """No space left on a device the run writes to."""


class QueueUnavailableError(SystemicError):
    """The intake queue (Redis) cannot be reached or refuses the command: nothing is taken or acknowledged."""

    default_stage = "queue"


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def describe(error: BaseException) -> str:
    """One line naming the cause: our own messages as they are, anything else as "Type: first line"."""
    if isinstance(error, NewsflowError):
        return _first_line(str(error)) or type(error).__name__
    origin = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error
    line = _first_line(str(origin))
    return f"{type(origin).__name__}: {line}" if line else type(origin).__name__


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip()[:500] if lines else ""


def disk_full(error: BaseException) -> DiskFullError | None:
    """The systemic error for a full disk or quota, when ``error`` is one."""
    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
        return DiskFullError(f"no space left: {error.strerror} ({error.filename or 'a file the run writes'})")
    return None


class WebSubError(DocumentError):
    """A WebSub step failed: a hub refused a subscription request, or a delivery cannot be used."""

    default_stage = "websub"


class SignatureError(WebSubError):
    """A delivery's ``X-Hub-Signature`` is missing, malformed, of an unknown method, or does not match."""
