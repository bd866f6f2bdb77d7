"""Waiting for a lost database connection to come back: a probe tried with exponential backoff, up to a bound.

A server restart drops every connection and refuses new ones for a moment (a fast restart takes a fraction of
a second, crash recovery or a failover can take a minute). ``wait_for_database`` tries ``probe`` until it
succeeds or ``Backoff.seconds`` have passed, sleeping 0.25 s, 0.5 s, 1 s, … (at most ``longest``) between tries.
The clock and the sleep are injectable, so tests do not wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline.db.engine import is_systemic, is_transient


@dataclass(frozen=True)
class Backoff:
    """How long to wait for the database in all (``seconds``), and the pauses between tries."""

    seconds: float
    first: float = 0.25
    longest: float = 8.0
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def pauses(self) -> list[float]:
        """The pauses between tries, adding up to no more than ``seconds``."""
        pauses, pause, total = [], self.first, 0.0
        while total + pause <= self.seconds:
            pauses.append(pause)
            total += pause
            pause = min(pause * 2, self.longest)
        if total < self.seconds:
            pauses.append(self.seconds - total)
        return pauses


def wait_for_database(probe: Callable[[], None], backoff: Backoff) -> bool:
    """Whether ``probe`` succeeded within the bound; errors other than a lost or refused connection go up."""
    deadline = backoff.clock() + backoff.seconds
    for pause in [0.0, *backoff.pauses()]:
        remaining = deadline - backoff.clock()
        if pause and remaining <= 0:
            return False
        if pause:
            backoff.sleep(min(pause, remaining))
        try:
            probe()
        except Exception as error:
            if not (is_transient(error) or _not_accepting(error)):
                raise
            continue
        return True
    return False


def _not_accepting(error: BaseException) -> bool:
    """Connecting failed: refused, reset, the server starting up or shutting down (never a data error)."""
    return isinstance(error, sa.exc.OperationalError) and not is_systemic(error)


def engine_probe(engine: Engine) -> Callable[[], None]:
    """A probe that opens a fresh connection (the pool's old ones died with the server) and runs ``SELECT 1``."""

    def probe() -> None:
        engine.dispose()
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    return probe
