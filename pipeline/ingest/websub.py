"""WebSub push for a subscriber: subscribing feeds at their hubs, renewing leases, answering the hub's intent
verification and taking its signed deliveries (docs/websub.md). The HTTP server around the receiver is
``websub_server.py``; the protocol's pieces are ``pipeline/sources/websub.py``.

The receiver hands what a delivery carries to an injected ``Publisher`` (the durable intake queue in
production, a list in tests). Without one it refuses deliveries with 503, so the hub keeps them and retries.
The wall clock (``now``) is injected too, so a test can move a lease forward.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline.db import feeds as feed_store
from pipeline.db import websub as store
from pipeline.errors import FeedError, FetchError, SignatureError, WebSubError, describe
from pipeline.models import FeedEntry
from pipeline.settings import Settings
from pipeline.sources.feed_parsing import ParseLimits
from pipeline.sources.http import Fetcher
from pipeline.sources.queue import IntakeMessage, connect, publish
from pipeline.sources.websub import (
    MAX_SECRET_BYTES,
    SubscribeRequest,
    check_signature,
    delivered_entries,
    discover_feed,
    request_subscription,
)

log = logging.getLogger(__name__)

MAX_CHALLENGE_CHARS = 1024
MAX_LEASE_SECONDS = 10 * 365 * 86_400
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")  # what secrets.token_urlsafe makes: nothing else reaches the database
RETRY_SECONDS = 600.0  # a topic is asked for again at most this often (renewal, or a hub that did not verify)
WallClock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DeliveredEntry:
    """One entry a hub pushed for ``topic``: ``entry.link`` to fetch, or ``entry.content`` carried inline (then
    ``entry.link`` is its name, ``feed-entry:<feed url>#<id>``, as a poll of the feed names it)."""

    topic: str
    entry: FeedEntry


Publisher = Callable[[list[DeliveredEntry]], None]


def websub_message(delivered: DeliveredEntry) -> IntakeMessage:
    """A delivered entry as an intake message: its link to fetch, or the document the hub carried inline, under
    the name a poll of the feed gives it, with its format and metadata."""
    origin, content = f"websub:{delivered.topic}", delivered.entry.content
    if content is None:
        return IntakeMessage.for_url(delivered.entry.link, origin=origin)
    return IntakeMessage.for_document(
        delivered.entry.link, content.body, origin=origin, metadata=content.metadata, media_type=content.media_type
    )


def queue_publisher(settings: Settings) -> Publisher:
    """The receiver's publisher: delivered entries go to the durable intake queue (``NEWSFLOW_QUEUE_*``), all of
    one delivery in one transaction; Redis down raises ``QueueUnavailableError`` (the hub is answered 503)."""
    queue = connect(settings.queue_url)

    def publish_entries(entries: list[DeliveredEntry]) -> None:
        publish(queue, settings.queue_stream, [websub_message(delivered) for delivered in entries])

    return publish_entries


@dataclass(frozen=True)
class Reply:
    """What the receiver answers: an HTTP status, a body, and for the log why (never the secret)."""

    status: int
    body: bytes = b""
    note: str = ""


@dataclass(frozen=True)
class Delivery:
    """A content delivery as received: the callback's token, the body's bytes and two of its headers."""

    token: str
    body: bytes
    signature: str | None
    content_type: str | None


@dataclass(frozen=True)
class ReceiverConfig:
    """The lease assumed when a hub's verification omits ``hub.lease_seconds``, and how a body is parsed."""

    lease_seconds: int
    parse: ParseLimits


class Receiver:
    """Answers intent verifications and takes signed deliveries, for the subscriptions in the database."""

    def __init__(
        self, engine: Engine, publisher: Publisher | None, config: ReceiverConfig, now: WallClock = utc_now
    ) -> None:
        self.engine, self.publisher, self.config, self.now = engine, publisher, config, now

    def verify(self, token: str, query: Mapping[str, list[str]]) -> Reply:
        """The hub's GET: the challenge echoed for a subscription of ours, of that topic, that we asked for;
        404 for anything else (an unknown callback or topic, an unsubscribe we never asked for)."""
        try:
            return self._verify(token, query)
        except sa.exc.SQLAlchemyError as error:
            return Reply(503, b"database unavailable", f"verification not answered: {describe(error)}")

    def _verify(self, token: str, query: Mapping[str, list[str]]) -> Reply:
        mode, topic = _one(query, "hub.mode"), _one(query, "hub.topic")
        subscription = self._subscription(token)
        if subscription is None or topic != subscription.topic:
            return Reply(404, b"no such subscription", "verification refused: unknown callback or topic")
        if mode == "denied":
            reason = f"the hub denied the subscription: {_one(query, 'hub.reason') or 'no reason given'}"
            store.ended(self.engine, subscription.id, "denied", reason, self.now())
            return Reply(200, b"", reason)
        asked = subscription.awaits_verification(self.now(), RETRY_SECONDS)  # not a lease forged years later
        if mode != "subscribe" or subscription.state not in {"pending", "active"} or not asked:
            return Reply(404, b"not asked for", f"verification refused: mode {str(mode)[:20]!r} not asked for")
        challenge, lease = _one(query, "hub.challenge"), _lease(query, self.config.lease_seconds)
        if not challenge or len(challenge) > MAX_CHALLENGE_CHARS or lease is None:
            return Reply(400, b"bad verification request", "verification refused: bad challenge or lease")
        store.verified(self.engine, subscription.id, lease, self.now())
        return Reply(200, challenge.encode("utf-8", "surrogatepass"), f"verified {topic} for {lease} s")

    def _subscription(self, token: str) -> store.Subscription | None:
        """The subscription of a callback token; None for a token we could not have made (a NUL, a space…)."""
        return store.by_token(self.engine, token) if TOKEN.fullmatch(token) else None

    def deliver(self, delivery: Delivery) -> Reply:
        """The hub's POST: the body's entries published when its signature is the subscription's HMAC; 403
        when forged or unsigned, 503 when they cannot be published now (the hub retries)."""
        try:
            return self._deliver(delivery)
        except sa.exc.SQLAlchemyError as error:
            return Reply(503, b"database unavailable", f"delivery not taken: {describe(error)}")

    def _deliver(self, delivery: Delivery) -> Reply:
        subscription = self._subscription(delivery.token)
        if subscription is None:
            return Reply(404, b"no such subscription", "delivery refused: unknown callback")
        try:
            check_signature(delivery.signature, delivery.body, subscription.secret)
        except SignatureError as error:
            store.failed(self.engine, subscription.id, str(error), self.now())
            return Reply(403, b"signature refused", f"{subscription.topic}: {error}")
        if self.publisher is None:
            return Reply(503, b"intake queue not connected", "delivery refused: no intake queue connected")
        return self._publish(subscription, delivery)

    def _publish(self, subscription: store.Subscription, delivery: Delivery) -> Reply:
        assert self.publisher is not None
        try:
            entries, skipped = delivered_entries(
                subscription.feed_url, delivery.body, delivery.content_type, self.config.parse
            )
        except FeedError as error:
            store.failed(self.engine, subscription.id, str(error), self.now())
            return Reply(400, b"feed refused", f"{subscription.topic}: {error}")
        fresh = feed_store.unseen(self.engine, entries)
        try:
            if fresh:
                self.publisher([DeliveredEntry(subscription.topic, entry) for entry in fresh])
        except Exception as error:  # noqa: BLE001 - whatever the injected publisher raises: the hub retries
            store.failed(self.engine, subscription.id, f"publishing failed: {describe(error)}", self.now())
            return Reply(503, b"not published; retry", f"{subscription.topic}: publishing failed: {describe(error)}")
        store.delivered(self.engine, subscription.id, self.now())
        note = f"{subscription.topic}: {len(fresh)} entries published, {len(entries) - len(fresh)} already seen"
        return Reply(204, b"", note + (f", {len(skipped)} skipped" if skipped else ""))


def _one(query: Mapping[str, list[str]], name: str) -> str | None:
    """The parameter's value when given exactly once, else None."""
    values = query.get(name) or []
    return values[0] if len(values) == 1 else None


def _lease(query: Mapping[str, list[str]], default: int) -> int | None:
    """``hub.lease_seconds`` (the requested lease when absent), or None when it is not a sane number."""
    value = _one(query, "hub.lease_seconds")
    if value is None:
        return None if "hub.lease_seconds" in query else default
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        return None
    return int(value) if 0 < int(value) <= MAX_LEASE_SECONDS else None


@dataclass(frozen=True)
class SubscribePlan:
    """Where hubs deliver (the public base URL: ``/token`` is added per subscription), the lease asked for,
    how early a lease is renewed, whether hubs may be private addresses, and how a feed is parsed."""

    callback_base: str
    lease_seconds: int
    renew_seconds: float
    allow_private: bool
    parse: ParseLimits


@dataclass(frozen=True)
class SubscribeOutcome:
    """What became of one feed: ``state`` is pending, active, no hub (polled only) or failed."""

    feed_url: str
    state: str
    topic: str | None = None
    hub: str | None = None
    reason: str | None = None


class Subscriber:
    """Asks hubs for subscriptions and renews them before their leases end."""

    def __init__(
        self, engine: Engine, fetcher: Fetcher, client: httpx.Client, plan: SubscribePlan, now: WallClock = utc_now
    ) -> None:
        self.engine, self.fetcher, self.client, self.plan, self.now = engine, fetcher, client, plan, now

    def subscribe(self, feed_url: str) -> SubscribeOutcome:
        """Fetch the feed, find its hub, store the subscription pending and ask the hub for it."""
        try:
            found = discover_feed(self.fetcher, feed_url, self.plan.parse)
        except (FetchError, FeedError) as error:
            return SubscribeOutcome(feed_url, "failed", reason=str(error))
        if not found.hubs:
            return SubscribeOutcome(feed_url, "no hub", found.topic, reason="the feed advertises no hub")
        fresh = store.NewSubscription(found.topic, feed_url, found.hubs[0], self.plan.callback_base, *_new_keys())
        return self._ask(store.upsert(self.engine, fresh, self.now()))

    def renew_due(self) -> list[SubscribeOutcome]:
        """Ask again for each subscription whose lease ends soon, or that a hub has not verified."""
        due = store.due(self.engine, self.now(), self.plan.renew_seconds, RETRY_SECONDS)
        outcomes = []
        for old in due:
            base = self.plan.callback_base
            again = store.NewSubscription(old.topic, old.feed_url, old.hub, base, old.token, old.secret)
            outcomes.append(self._ask(store.upsert(self.engine, again, self.now())))
        return outcomes

    def _ask(self, subscription: store.Subscription) -> SubscribeOutcome:
        request = SubscribeRequest(
            subscription.hub, subscription.topic, subscription.callback, subscription.secret, self.plan.lease_seconds
        )
        outcome = SubscribeOutcome(subscription.feed_url, "pending", subscription.topic, subscription.hub)
        try:
            request_subscription(self.client, request, allow_private=self.plan.allow_private)
        except WebSubError as error:
            state = "active" if subscription.state == "active" else "failed"  # a lease still running stays
            store.ended(self.engine, subscription.id, state, str(error), self.now())
            return SubscribeOutcome(outcome.feed_url, "failed", outcome.topic, outcome.hub, str(error))
        stored = store.by_token(self.engine, subscription.token)  # a hub may verify before it answers
        return SubscribeOutcome(outcome.feed_url, stored.state if stored else "pending", outcome.topic, outcome.hub)


def _new_keys() -> tuple[str, str]:
    """A fresh callback token and HMAC secret (256 random bits each; the secret under the spec's 200 bytes)."""
    secret = secrets.token_hex(32)
    assert len(secret) <= MAX_SECRET_BYTES
    return secrets.token_urlsafe(24), secret
