"""``python -m tests.feed_cost DATABASE_URL DOCUMENT_SECONDS FEED_URL...`` polls the feeds in a process of its own
and prints what it cost (``measured_poll``): the seconds, how far the poll raised this process's peak memory
(in MiB) above what it was before, the documents loaded and the failures, as JSON."""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import replace

from pipeline.db.engine import create_engine
from pipeline.ingest.feeds import ingest_feeds
from pipeline.settings import Settings


def measured_poll(database_url: str, document_seconds: float, feed_urls: list[str]) -> dict[str, object]:
    settings = replace(
        Settings.from_env({}),
        database_url=database_url,
        allow_private_hosts=True,
        fetch_host_interval=0.0,
        fetch_attempts=1,
        document_seconds=document_seconds,
    )
    engine = create_engine(database_url)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    summary = ingest_feeds(settings, engine, feed_urls)
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    engine.dispose()
    return {
        "seconds": round(seconds, 2),
        "peak_mib": round((peak - before) / 1024, 1),
        "loaded": summary.loaded,
        "failures": [[failure.stage, failure.error] for failure in summary.failures],
    }


if __name__ == "__main__":
    print(json.dumps(measured_poll(sys.argv[1], float(sys.argv[2]), sys.argv[3:])))
