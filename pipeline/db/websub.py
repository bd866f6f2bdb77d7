"""WebSub subscriptions in Postgres (``websub_subscriptions``, sql/0016): the one module that writes them.

Times are passed in (the caller's clock), so a test can move a lease forward without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipeline.models import storable

MAX_ERROR_CHARS = 1000
COLUMNS = (
    "id, topic, feed_url, hub, callback, token, secret, state, lease_seconds, lease_expires_at, last_delivery_at, "
    "requested_at, verified_at"
)
BY_TOKEN = "SELECT " + COLUMNS + " FROM websub_subscriptions WHERE token = :token"
UPSERT = (
    "INSERT INTO websub_subscriptions (topic, feed_url, hub, callback, token, secret, requested_at) "
    "VALUES (:topic, :feed_url, :hub, :base || '/' || :token, :token, :secret, :now) "
    "ON CONFLICT (md5(topic)) DO UPDATE SET hub = EXCLUDED.hub, feed_url = EXCLUDED.feed_url, "
    "callback = :base || '/' || websub_subscriptions.token, requested_at = :now, "
    "state = CASE WHEN websub_subscriptions.state = 'active' THEN 'active' ELSE 'pending' END "
    "RETURNING " + COLUMNS
)
DUE = (
    "SELECT " + COLUMNS + " FROM websub_subscriptions WHERE "
    "requested_at <= :now - make_interval(secs => :retry) AND ("
    "(state = 'active' AND lease_expires_at - make_interval(secs => "
    "least(:margin, coalesce(lease_seconds, 0) / 2.0)) <= :now) OR state IN ('pending', 'failed')) "
    "ORDER BY id"
)


@dataclass(frozen=True)
class Subscription:
    """One subscription as stored; ``secret`` never shows in a repr."""

    id: int
    topic: str
    feed_url: str
    hub: str
    callback: str
    token: str
    secret: str = field(repr=False)
    state: str
    lease_seconds: int | None = None
    lease_expires_at: datetime | None = None
    last_delivery_at: datetime | None = None
    requested_at: datetime | None = None
    verified_at: datetime | None = None

    def awaits_verification(self, now: datetime, within_seconds: float) -> bool:
        """Whether a hub's verification answers a request of ours: one not verified since, or one made less
        than ``within_seconds`` ago (a hub that verifies again, its first answer lost)."""
        if self.verified_at is None or self.requested_at is None or self.verified_at < self.requested_at:
            return True
        return (now - self.requested_at).total_seconds() < within_seconds


@dataclass(frozen=True)
class NewSubscription:
    """What a subscribe request stores: for a topic not yet subscribed, its fresh token and secret are kept; for
    one already stored, its token and secret stay and only the hub and callback base change."""

    topic: str
    feed_url: str
    hub: str
    callback_base: str
    token: str
    secret: str = field(repr=False)


def _subscription(row: Any) -> Subscription:
    return Subscription(**row._asdict())


def upsert(engine: Engine, new: NewSubscription, now: datetime) -> Subscription:
    """The topic's subscription, asked for now: created pending, or (already stored) with its hub and callback
    updated, a failed or denied one pending again, an active one left active (deliveries go on meanwhile)."""
    with engine.begin() as conn:
        row = conn.execute(
            sa.text(UPSERT),
            {"topic": new.topic, "feed_url": new.feed_url, "hub": new.hub, "token": new.token}
            | {"base": new.callback_base.rstrip("/"), "secret": new.secret, "now": now},
        ).one()
    return _subscription(row)


def by_token(engine: Engine, token: str) -> Subscription | None:
    """The subscription whose callback ends in ``token``, or None."""
    with engine.connect() as conn:
        row = conn.execute(sa.text(BY_TOKEN), {"token": token}).one_or_none()
    return _subscription(row) if row is not None else None


def verified(engine: Engine, subscription_id: int, lease_seconds: int, now: datetime) -> None:
    """The hub verified the subscription: active for ``lease_seconds`` from ``now``."""
    _update(
        engine,
        "UPDATE websub_subscriptions SET "
        "state = 'active', lease_seconds = :lease, verified_at = :now, "
        "lease_expires_at = :now + make_interval(secs => :lease)"
        " WHERE id = :id",
        {"id": subscription_id, "lease": lease_seconds, "now": now},
    )


def ended(engine: Engine, subscription_id: int, state: str, reason: str, now: datetime) -> None:
    """The hub denied the subscription (``denied``) or refused the request (``failed``), for ``reason``."""
    _update(
        engine,
        "UPDATE websub_subscriptions SET state = :state, last_error = :error, last_error_at = :now WHERE id = :id",
        {"id": subscription_id, "state": state, "error": storable(reason[:MAX_ERROR_CHARS]), "now": now},
    )


def delivered(engine: Engine, subscription_id: int, now: datetime) -> None:
    """A signed delivery was published."""
    _update(
        engine,
        "UPDATE websub_subscriptions SET last_delivery_at = :now, deliveries = deliveries + 1 WHERE id = :id",
        {"id": subscription_id, "now": now},
    )


def failed(engine: Engine, subscription_id: int, reason: str, now: datetime) -> None:
    """A delivery or a request failed for ``reason`` (the state stays)."""
    _update(
        engine,
        "UPDATE websub_subscriptions SET last_error = :error, last_error_at = :now WHERE id = :id",
        {"id": subscription_id, "error": storable(reason[:MAX_ERROR_CHARS]), "now": now},
    )


def _update(engine: Engine, statement: str, parameters: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(statement), parameters)


def due(engine: Engine, now: datetime, margin_seconds: float, retry_seconds: float) -> list[Subscription]:
    """Subscriptions to ask for again, of those last asked for ``retry_seconds`` ago or more: active ones whose
    lease ends within ``margin_seconds`` (or half their lease, when that is shorter), pending and failed ones."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(DUE),
            {"now": now, "margin": margin_seconds, "retry": retry_seconds},
        ).all()
    return [_subscription(row) for row in rows]
