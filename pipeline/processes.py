"""Child processes that die with their parent, on Linux: the kernel sends ``SIGKILL`` the moment the parent
dies (``prctl(PR_SET_PDEATHSIG)``, set through ctypes in the child).

This module imports only the standard library, so the feed child (``sources/feed_child.py``, run with
``python -I`` and importing nothing of Newsflow) loads it by its path, and worker processes import it.
"""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def set_parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where that cannot be asked."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
