"""Parsing a feed at a bounded cost: feedparser runs in a child process of its own (``feed_child``) with an
address-space limit and a time limit, so no feed can raise this process's memory or hold a poll for ever.

A few kilobytes of gzip can decode to a 9 MB feed that makes feedparser take over a gigabyte (a tag with four
million attributes) or minutes (three million unclosed tags, through its loose parser). Over either limit the
feed is refused with a ``FeedError`` that says which; the child is killed and its memory is the system's again.
The child gets the feed's bytes and hands back plain data (JSON): the title, feedparser's problem with a
malformed feed, and each entry's fields. Starting it costs about a tenth of a second per fetched feed (a 304
starts none).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import FeedError
from pipeline.sources.feed_child import MEMORY_EXIT

CHILD = Path(__file__).with_name("feed_child.py")
MIB = 1024 * 1024


@dataclass(frozen=True)
class ParseLimits:
    """What parsing one feed may cost: wall seconds, and the child's address space in bytes."""

    seconds: float = 60.0
    memory_bytes: int = 512 * MIB


@dataclass(frozen=True)
class ParsedFeed:
    """A feed as plain data: its title, why it is malformed (None when it is not), its entries' fields."""

    title: str | None
    problem: str | None
    entries: tuple[dict[str, Any], ...]


def parse_feed(body: bytes, headers: Mapping[str, str], limits: ParseLimits) -> ParsedFeed:
    """The feed parsed in a child process within ``limits``; ``FeedError`` when over one, or unparseable."""
    options = json.dumps({"headers": dict(headers), "memory_bytes": limits.memory_bytes})
    command = [sys.executable, "-I", str(CHILD), options]
    try:
        done = subprocess.run(command, input=body, capture_output=True, timeout=limits.seconds, check=False)
    except subprocess.TimeoutExpired as error:
        raise FeedError(f"feed too costly to parse: took longer than {limits.seconds:g} s") from error
    return _outcome(done, limits)


def _outcome(done: subprocess.CompletedProcess[bytes], limits: ParseLimits) -> ParsedFeed:
    """What the child's exit status and output say."""
    if done.returncode == MEMORY_EXIT or (done.returncode != 0 and b"MemoryError" in done.stderr):
        raise FeedError(f"feed too costly to parse: over {limits.memory_bytes // MIB} MB")
    if done.returncode != 0:
        last = (done.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise FeedError(f"the feed parser failed: {last[:300]}")
    result = json.loads(done.stdout)
    if "failed" in result:
        raise FeedError(f"the feed cannot be parsed: {result['failed'][:300]}")
    return ParsedFeed(result["title"], result["problem"], tuple(result["entries"]))
