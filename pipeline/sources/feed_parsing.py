"""Parsing a feed at a bounded cost: feedparser runs in a child process of its own (``feed_child``) with an
address-space limit and a time limit, so no feed can raise this process's memory or hold a poll for ever.

A few kilobytes of gzip can decode to a 9 MB feed that makes feedparser take over a gigabyte (a tag with four
million attributes) or minutes (three million unclosed tags, through its loose parser). Over either limit the
feed is refused with a ``FeedError`` that says which; the child is killed and its memory is the system's again.
The child gets the feed's bytes (through a temporary file) and hands back plain data (JSON): the title,
feedparser's problem with a malformed feed, and each entry's fields. Its answer is read up to
``ParseLimits.answer_bytes`` (twice ``entry_bytes`` and a MiB) and no further: a feed whose entries come to
more (a 105 KB feed can expand to 150 MB) is refused and its child killed. The child dies with this process
(``PR_SET_PDEATHSIG``) and at its CPU limit. Starting it costs about a tenth of a second per fetched feed (a
304 starts none).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipeline.errors import FeedError
from pipeline.sources.feed_child import MEMORY_EXIT

CHILD = Path(__file__).with_name("feed_child.py")
MIB = 1024 * 1024
READ_BYTES = MIB  # the child's answer is read this much at a time
STDERR_TAIL = 64 * 1024  # how much of the child's stderr is read for its last line


@dataclass(frozen=True)
class ParseLimits:
    """What parsing one feed may cost: wall seconds, the child's address space in bytes, and the largest inline
    content an entry may carry (UTF-8 bytes; ``NEWSFLOW_FETCH_MAX_BYTES``)."""

    seconds: float = 60.0
    memory_bytes: int = 512 * MIB
    entry_bytes: int = 10 * MIB

    @property
    def answer_bytes(self) -> int:
        """The most of the child's answer read: twice ``entry_bytes`` and a MiB."""
        return 2 * self.entry_bytes + MIB


@dataclass(frozen=True)
class ParsedFeed:
    """A feed as plain data: its title, why it is malformed (None when it is not), its entries' fields, and its
    own ``hub`` and ``self`` links (``{rel, href, type}``: WebSub discovery)."""

    title: str | None
    problem: str | None
    entries: tuple[dict[str, Any], ...]
    links: tuple[dict[str, Any], ...] = ()


def parse_feed(body: bytes, headers: Mapping[str, str], limits: ParseLimits) -> ParsedFeed:
    """The feed parsed in a child process within ``limits``; ``FeedError`` when over one, or unparseable."""
    options = {"headers": dict(headers), "memory_bytes": limits.memory_bytes, "seconds": limits.seconds}
    options |= {"entry_bytes": limits.entry_bytes, "parent_pid": os.getpid()}
    command = [sys.executable, "-I", str(CHILD), json.dumps(options)]
    with tempfile.TemporaryFile() as feed, tempfile.TemporaryFile() as errors:
        feed.write(body)
        feed.seek(0)
        child = subprocess.Popen(command, stdin=feed, stdout=subprocess.PIPE, stderr=errors)
        try:
            answer = _answer(child, limits)
        finally:
            _end(child)
        return _outcome(child.returncode, answer, _tail(errors), limits)


def _answer(child: subprocess.Popen[bytes], limits: ParseLimits) -> bytearray:
    """All the child wrote, read until it closes its stdout and exits within the time limit, and no more than
    ``answer_bytes``: ``FeedError`` when it takes longer or writes more."""
    assert child.stdout is not None
    deadline, answer = time.monotonic() + limits.seconds, bytearray()
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        while chunk := _chunk(selector, child.stdout, deadline, limits):
            answer += chunk
            if len(answer) > limits.answer_bytes:
                raise FeedError(
                    f"feed too costly to parse: its entries come to more than {limits.answer_bytes:,} bytes"
                )
    try:
        child.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired as error:
        raise _too_slow(limits) from error
    return answer


def _chunk(selector: selectors.BaseSelector, stdout: IO[bytes], deadline: float, limits: ParseLimits) -> bytes:
    """The next bytes the child wrote (empty at its end), waiting no later than ``deadline``."""
    left = deadline - time.monotonic()
    if left <= 0 or not selector.select(left):
        raise _too_slow(limits)
    return os.read(stdout.fileno(), READ_BYTES)


def _too_slow(limits: ParseLimits) -> FeedError:
    return FeedError(f"feed too costly to parse: took longer than {limits.seconds:g} s")


def _end(child: subprocess.Popen[bytes]) -> None:
    """Kill the child if it still runs, and reap it."""
    if child.poll() is None:
        child.kill()
    child.wait()
    if child.stdout is not None:
        child.stdout.close()


def _tail(errors: IO[bytes]) -> bytes:
    """The last ``STDERR_TAIL`` bytes the child wrote to stderr."""
    size = errors.seek(0, os.SEEK_END)
    errors.seek(max(0, size - STDERR_TAIL))
    return errors.read()


def _outcome(returncode: int, answer: bytearray, stderr: bytes, limits: ParseLimits) -> ParsedFeed:
    """What the child's exit status and output say."""
    if returncode == MEMORY_EXIT or (returncode != 0 and b"MemoryError" in stderr):
        raise FeedError(f"feed too costly to parse: over {limits.memory_bytes // MIB} MB")
    if returncode == -signal.SIGXCPU:
        raise _too_slow(limits)
    if returncode != 0:
        last = (stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit status {returncode}"])[-1]
        raise FeedError(f"the feed parser failed: {last[:300]}")
    result = json.loads(answer.decode("utf-8", "surrogatepass"))
    if "failed" in result:
        raise FeedError(f"the feed cannot be parsed: {result['failed'][:300]}")
    return ParsedFeed(result["title"], result["problem"], tuple(result["entries"]), tuple(result.get("links", ())))
