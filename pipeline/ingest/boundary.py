"""The document boundary, written once: around each document's work at each stage.

``guarded`` runs one stage of one document. Whatever that raises becomes the document's failure, with the
stage and a one-line reason, unless it is systemic (the database lost for good, a full disk, the model
missing): that is translated into a ``SystemicError`` and stops the run. Extraction and analysis also run
under a time budget (``NEWSFLOW_DOCUMENT_SECONDS``): a document that takes longer becomes an error that
says so.

The budget is an interval timer (``SIGALRM``), so it interrupts Python code wherever it is; it can only be
armed in a process's main thread (the command line, ``--workers`` processes, Airflow tasks), and elsewhere
the work runs unbounded. C code (lxml's parser) is interrupted only when it returns to Python, which is why
the inputs known to be slow there are made fast instead (see docs/reliability.md).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TypeVar

from pipeline.errors import DocumentTimeoutError, NewsflowError, describe
from pipeline.ingest.run import Input, Run, systemic_error
from pipeline.models import Failure

T = TypeVar("T")
BUDGETED_STAGES = frozenset({"extract", "facts"})


def guarded(run: Run, item: Input, stage: str, work: Callable[[], T]) -> T | Failure:
    """``work()`` for one document at ``stage``: its result, or its recorded ``Failure``. Systemic errors go up."""
    seconds = run.settings.document_seconds if stage in BUDGETED_STAGES else 0.0
    try:
        with run.timed(stage), time_budget(seconds, stage):
            return work()
    except Exception as error:  # noqa: BLE001 - the document boundary: whatever one document trips is its own
        raise_if_systemic(error)
        return run.fail(item, failure_of(item.name, stage, error))


def failure_of(name: str, stage: str, error: BaseException) -> Failure:
    """The failure of one document: our errors name their own stage, anything else the stage it was met in."""
    own_stage = error.stage if isinstance(error, NewsflowError) else stage
    return Failure(name, own_stage, describe(error))


def raise_if_systemic(error: BaseException) -> None:
    """Raise the ``SystemicError`` that ``error`` amounts to, if it amounts to one."""
    systemic = systemic_error(error)
    if systemic is error:
        raise error
    if systemic is not None:
        raise systemic from error


@contextmanager
def time_budget(seconds: float, stage: str) -> Iterator[None]:
    """Raise ``DocumentTimeoutError`` in the work if it runs longer than ``seconds`` (0: no budget). An outer
    timer that would fire sooner is left alone (it ends the work first); a later one is put back afterwards
    with the time it has left."""
    if not _can_arm(seconds):
        yield
        return

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise DocumentTimeoutError(f"took longer than the {seconds:g} s budget for one document", stage=stage)

    previous_handler = signal.signal(signal.SIGALRM, expire)
    outer_delay, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if outer_delay:
            signal.setitimer(signal.ITIMER_REAL, max(0.001, outer_delay - (time.monotonic() - started)))


def _can_arm(seconds: float) -> bool:
    """A budget is set, this is the main thread (signals go there only), no outer timer fires sooner, and the
    current SIGALRM handler is one Python can put back (not one installed from C)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        return False
    outer_delay, _ = signal.getitimer(signal.ITIMER_REAL)
    if outer_delay and outer_delay <= seconds:  # an outer deadline comes first: it ends the work
        return False
    return signal.getsignal(signal.SIGALRM) is not None
