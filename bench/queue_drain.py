"""Measure the intake queue: how fast messages are published, and how fast a drain stages them.

Publishes DOCUMENTS document messages (a 2 KiB HTML page each, as bytes) and URLS URL messages (pages served by
a local server on 127.0.0.1) to a stream of its own on NEWSFLOW_QUEUE_URL, in transactions of 100, then drains
them once (``pipeline.ingest.queue.drain_queue``: fetched, staged with the ledger row, acknowledged) into the
database NEWSFLOW_DATABASE_URL (else the embedded one), and prints both rates. The stream is deleted after.

Usage: python bench/queue_drain.py [DOCUMENTS] [URLS]      (default 1000 300)
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.db import open_database  # noqa: E402
from pipeline.ingest.queue import drain_queue  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.sources import queue as broker  # noqa: E402
from pipeline.sources.queue import IntakeMessage  # noqa: E402

PARAGRAPH = "<p>Negotiators met in Istanbul on Thursday for talks number {n}, the first in three years.</p>"
PAGE = "<html><head><title>Story {n}</title></head><body><article><h1>Story {n}</h1>" + PARAGRAPH * 20 + "</article>"


class Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PAGE.format(n=self.path).encode()
        self.send_response(404 if self.path == "/robots.txt" else 200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def messages(documents: int, urls: int, port: int) -> list[IntakeMessage]:
    made = [IntakeMessage.for_document(f"bench/{uuid.uuid4().hex}.html", PAGE.format(n=n).encode(), origin="bench")
            for n in range(documents)]  # fmt: skip
    return made + [IntakeMessage.for_url(f"http://127.0.0.1:{port}/{uuid.uuid4().hex}", origin="bench")
                   for _ in range(urls)]  # fmt: skip


def main(documents: int, urls: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stream = f"newsflow-bench:{uuid.uuid4().hex}"
    settings = replace(Settings.from_env(), queue_stream=stream, allow_private_hosts=True, fetch_host_interval=0.0)
    engine, _ = open_database(settings)
    queue, sent = broker.connect(settings.queue_url), messages(documents, urls, server.server_address[1])
    try:
        started = time.perf_counter()
        for start in range(0, len(sent), 100):
            broker.publish(queue, stream, sent[start : start + 100])
        published, started = time.perf_counter() - started, time.perf_counter()
        drained = drain_queue(settings, engine, queue, trigger="bench")
        took = time.perf_counter() - started
    finally:
        queue.client.delete(stream)
    print(f"{documents} documents + {urls} URLs: published in {published:.2f} s ({len(sent) / published:,.0f}/s); "
          f"drained in {took:.2f} s ({len(sent) / took:,.0f}/s): staged {drained.summary.staged}, "
          f"failed {drained.summary.failed}, left {drained.left}")  # fmt: skip


if __name__ == "__main__":
    main(*(int(value) for value in (sys.argv[1:] or ["1000", "300"])))
