"""Worker processes die with their parent: a killed ``newsflow ingest --workers N`` leaves nothing writing.

Two mechanisms, because either alone has a gap:

- On Linux the kernel sends the worker ``SIGKILL`` the moment its parent dies (``prctl(PR_SET_PDEATHSIG)``,
  set through ctypes by ``pipeline.processes``). Its open transaction dies with its connection, so nothing
  half-written is committed.
- Everywhere, a watchdog thread in the worker ends it when its parent's pid changes (it was re-parented) or
  the parent's end of a pipe closes (the lifeline: only the parent holds it, and the kernel closes it when the
  parent dies, however it dies). This also covers the parent that died before ``prctl`` ran.
"""

from __future__ import annotations

import os
import threading
from multiprocessing.connection import Connection

from pipeline.processes import set_parent_death_signal

ORPHANED_EXIT = 70  # the exit status of a worker that outlived its parent
WATCH_INTERVAL = 0.25  # seconds between the watchdog's looks at the parent


def die_with_parent(parent_pid: int, lifeline: Connection | None) -> None:
    """Make this process end when ``parent_pid`` does (call first thing in a worker)."""
    set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the death signal was set
        os._exit(ORPHANED_EXIT)
    threading.Thread(target=_watch, args=(parent_pid, lifeline), name="parent-watchdog", daemon=True).start()


def _watch(parent_pid: int, lifeline: Connection | None) -> None:
    while parent_alive(parent_pid, lifeline):
        pass
    os._exit(ORPHANED_EXIT)


def parent_alive(parent_pid: int, lifeline: Connection | None, interval: float = WATCH_INTERVAL) -> bool:
    """Wait up to ``interval`` for a sign of the parent's death: False when it is dead (re-parented, or its end
    of the lifeline closed), True when no sign came."""
    if os.getppid() != parent_pid:
        return False
    if lifeline is None:
        threading.Event().wait(interval)
        return os.getppid() == parent_pid
    try:
        if lifeline.poll(interval):
            lifeline.recv()  # the parent never writes: readable means its end closed (EOFError)
    except (EOFError, OSError):
        return False
    return os.getppid() == parent_pid
