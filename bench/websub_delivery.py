"""Time the WebSub receiver's handling of one content delivery, signed against forged, as a hub sees it.

Starts the receiver (``pipeline/ingest/websub_server.py``) on 127.0.0.1 with an in-memory publisher, stores one
verified subscription, and POSTs the same Atom feed body ``--rounds`` times signed with the subscription's
secret and ``--rounds`` times with a forged signature, alternating. Prints the median, 90th percentile and
maximum of each, measured from the request's start to the response's last byte.

Usage: NEWSFLOW_DATABASE_URL=postgresql://… python bench/websub_delivery.py [--rounds 30] [--entries 20]
(a database of your own: the script applies the migrations and adds one row to websub_subscriptions)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.db import open_database, websub  # noqa: E402
from pipeline.ingest.websub import DeliveredEntry, Receiver, ReceiverConfig  # noqa: E402
from pipeline.ingest.websub_server import ServerLimits, parse_limits, start  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.sources.websub import sign  # noqa: E402


def feed(entries: int) -> bytes:
    items = "".join(
        f'<entry><id>tag:bench,{n}</id><title>Story {n}</title><link href="https://news.example/{n}"/>'
        f"<summary>{'words ' * 60}</summary><updated>2026-01-02T03:04:05Z</updated></entry>"
        for n in range(entries)
    )
    return f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>b</title>{items}</feed>'.encode()


def timed(client: httpx.Client, url: str, body: bytes, signature: str) -> tuple[float, int]:
    headers = {"Content-Type": "application/atom+xml", "X-Hub-Signature": signature}
    started = time.perf_counter()
    status = client.post(url, content=body, headers=headers).status_code
    return time.perf_counter() - started, status


def summary(name: str, seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    median, most = statistics.median(ordered) * 1000, ordered[-1] * 1000
    return f"{name:7} n={len(ordered)} median {median:7.1f} ms  p90 {p90 * 1000:7.1f} ms  max {most:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--entries", type=int, default=20)
    args = parser.parse_args()
    settings = Settings.from_env()
    engine, _ = open_database(settings)
    now = datetime.now(UTC)
    topic, token = f"https://bench.example/{now.timestamp()}", f"t{now.timestamp()}"
    hub, feed_url = "https://hub.example/", "https://bench.example/f"
    fresh = websub.NewSubscription(topic, feed_url, hub, "http://cb", token, "s" * 64)
    subscription = websub.upsert(engine, fresh, now)
    websub.verified(engine, subscription.id, 3600, now)
    published: list[DeliveredEntry] = []
    receiver = Receiver(engine, published.extend, ReceiverConfig(3600, parse_limits(settings)))
    server = start(receiver, ("127.0.0.1", 0), ServerLimits(10 * 1024 * 1024))
    url = f"http://127.0.0.1:{server.server_address[1]}/websub/{subscription.token}"
    body = feed(args.entries)
    signed, forged = [], []
    with httpx.Client(timeout=60) as client:
        timed(client, url, body, sign(body, subscription.secret))  # warm-up
        for _ in range(args.rounds):
            seconds, status = timed(client, url, body, sign(body, subscription.secret))
            assert status == 204, status
            signed.append(seconds)
            seconds, status = timed(client, url, body, sign(body, "forged-secret"))
            assert status == 403, status
            forged.append(seconds)
    server.shutdown()
    print(f"body {len(body):,} bytes, {args.entries} entries; {len(published):,} entries published")
    print(summary("signed", signed))
    print(summary("forged", forged))


if __name__ == "__main__":
    main()
