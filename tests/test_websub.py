"""WebSub push against a hub stand-in on 127.0.0.1 (tests/websub_hub.py): discovery, subscription, intent
verification, signed deliveries reaching the publisher, forged and unsigned ones refused, bounded bodies,
lease renewal on an injected clock; and the signature and Link-header parsers under hypothesis."""

from __future__ import annotations

import hashlib
import hmac
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.db import websub as websub_store
from pipeline.errors import SignatureError
from pipeline.ingest.queue import drain_queue
from pipeline.ingest.websub import DeliveredEntry, Receiver, ReceiverConfig, Subscriber, queue_publisher
from pipeline.ingest.websub_server import (
    ReceiverServer,
    ServerLimits,
    listen_address,
    parse_limits,
    serve,
    start,
    subscribe_plan,
)
from pipeline.settings import Settings
from pipeline.sources.feed_parsing import ParseLimits, parse_feed
from pipeline.sources.http import Fetcher
from pipeline.sources.queue import connect
from pipeline.sources.websub import METHODS, check_signature, discover, link_header, parse_signature, sign

from .test_fetch import article
from .websub_hub import Hub, atom_feed, running_hub

METHOD_NAMES = sorted(METHODS)
MAX_BYTES = 64 * 1024


# --- signatures ---------------------------------------------------------------------------------------------


@given(st.binary(max_size=2048), st.text(min_size=1, max_size=100), st.sampled_from(METHOD_NAMES))
def test_a_signature_made_with_the_secret_is_accepted_in_any_case_of_hex(body: bytes, secret: str, method: str) -> None:
    check_signature(sign(body, secret, method), body, secret)
    check_signature(sign(body, secret, method).upper().replace(method.upper(), method), body, secret)
    check_signature(" " + sign(body, secret, method) + " ", body, secret)


@given(st.binary(max_size=512), st.text(min_size=1, max_size=50), st.sampled_from(METHOD_NAMES), st.data())
def test_any_changed_bit_of_body_or_digest_is_refused(
    body: bytes, secret: str, method: str, data: st.DataObject
) -> None:
    header = sign(body, secret, method)
    name, digits = header.split("=")
    digest = bytearray(bytes.fromhex(digits))
    digest[data.draw(st.integers(0, len(digest) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(SignatureError, match="forged"):
        check_signature(f"{name}={digest.hex()}", body, secret)
    if body:
        changed = bytearray(body)
        changed[data.draw(st.integers(0, len(body) - 1))] ^= 1 << data.draw(st.integers(0, 7))
        with pytest.raises(SignatureError, match="forged"):
            check_signature(header, bytes(changed), secret)
    with pytest.raises(SignatureError):
        check_signature(header, body, secret + "x")


@given(
    st.one_of(
        st.none(),
        st.text(max_size=300),
        st.builds("{}={}".format, st.sampled_from([*METHOD_NAMES, "SHA256", "md5", ""]), st.text(max_size=140)),
        st.builds("{}={}".format, st.sampled_from(METHOD_NAMES), st.text("0123456789abcdefABCDEF \t", max_size=140)),
    )
)
def test_any_header_text_is_a_signature_or_a_signature_error(header: str | None) -> None:
    try:
        signature = parse_signature(header)
    except SignatureError:
        return
    assert signature.method in METHODS and len(signature.digest) == METHODS[signature.method]().digest_size


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "unsigned"),
        ("", "unsigned"),
        ("   ", "unsigned"),
        ("md5=" + "0" * 32, "unsupported"),
        ("sha256", "unsupported"),
        ("sha256=", "malformed"),
        ("sha256=" + "0" * 40, "malformed"),  # a sha1-long digest under sha256
        ("sha1=" + "g" * 40, "malformed"),
        ("sha1=" + "٠" * 40, "malformed"),  # Arabic-Indic zeros are digits to str.isdigit, not hex
        ("sha256=" + "0" * 64 + "; sha1=" + "0" * 40, "malformed"),
        ("sha512=" + "0" * 100_000, "malformed"),
    ],
)
def test_malformed_signatures_say_why(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        parse_signature(header)


def test_signatures_are_the_w3c_hmac_of_the_body() -> None:
    expected = hmac.new(b"s3cret", b"<feed/>", hashlib.sha384).hexdigest()
    assert sign(b"<feed/>", "s3cret", "sha384") == f"sha384={expected}"


# --- discovery ----------------------------------------------------------------------------------------------


@given(st.text(max_size=400))
def test_any_link_header_parses_without_raising(value: str) -> None:
    for url, rels in link_header(value):
        assert isinstance(url, str) and all(rel == rel.lower() for rel in rels)


def test_link_headers_with_commas_quotes_and_rel_lists() -> None:
    value = (
        '<https://hub.example/a,b>; REL="hub", <https://news.example/feed?x=1;y=2>; title="a, <b>; c"; rel="self '
        'alternate", <https://other.example/>; rel=hub; rel=self, <https://bare.example/>'
    )
    assert link_header(value) == [
        ("https://hub.example/a,b", frozenset({"hub"})),
        ("https://news.example/feed?x=1;y=2", frozenset({"self", "alternate"})),
        ("https://other.example/", frozenset({"hub"})),  # the first rel of a link counts
        ("https://bare.example/", frozenset()),
    ]
    assert link_header("<<https://hub.example/>; rel=hub") == [("https://hub.example/", frozenset({"hub"}))]


def test_the_link_header_wins_over_the_feed_and_relative_urls_are_resolved() -> None:
    feed_links = [{"rel": "hub", "href": "https://feed-hub.example/"}, {"rel": "self", "href": "/atom"}]
    headers = "</hub>; rel=hub, <s>; rel=self, <https://hub2.example/>; rel=hub, </hub>; rel=hub"
    found = discover("https://news.example/f", headers, feed_links)
    assert (found.topic, found.hubs) == (
        "https://news.example/s",
        ("https://news.example/hub", "https://hub2.example/"),
    )
    found = discover("https://news.example/f", None, feed_links)
    assert (found.topic, found.hubs) == ("https://news.example/atom", ("https://feed-hub.example/",))
    unsafe = discover("https://news.example/f", "<javascript:alert(1)>; rel=hub, <ftp://h/>; rel=hub", [])
    assert (unsafe.topic, unsafe.hubs) == ("https://news.example/f", ())


def test_the_parser_child_sends_back_a_bounded_list_of_the_feeds_own_hub_and_self_links() -> None:
    huge = "https://hub.example/" + "a" * 70_000
    hubs = "".join(f'<link rel="hub" href="https://hub.example/{n}"/>' for n in range(100))
    body = f'<feed xmlns="http://www.w3.org/2005/Atom"><link rel="hub" href="{huge}"/>{hubs}'
    body += '<link rel="self" href="https://news.example/self"/><link rel="alternate" href="https://news.example/"/>'
    parsed = parse_feed(f"{body}<entry><id>1</id></entry></feed>".encode(), {}, ParseLimits(seconds=30))
    expected = [f"https://hub.example/{n}" for n in range(20)] + ["https://news.example/self"]
    assert [link["href"] for link in parsed.links] == expected
    assert discover("https://news.example/f", None, parsed.links).topic == "https://news.example/self"
    assert all(set(link) <= {"rel", "href", "type"} for link in parsed.links)


# --- against the hub stand-in -------------------------------------------------------------------------------


@dataclass
class Wall:
    """An injected wall clock."""

    now: datetime = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Setup:
    hub: Hub
    engine: sa.Engine
    settings: Settings
    server: ReceiverServer
    wall: Wall
    published: list[DeliveredEntry] = field(default_factory=list)

    @property
    def callback_base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/websub"

    def subscriber(self, fetcher: Fetcher) -> Subscriber:
        plan = subscribe_plan(self.settings, self.callback_base)
        return Subscriber(self.engine, fetcher, httpx.Client(timeout=10), plan, self.wall)

    def subscribe(self, feed_url: str) -> str:
        with Fetcher.from_settings(self.settings) as fetcher:
            outcome = self.subscriber(fetcher).subscribe(feed_url)
        assert outcome.state in {"pending", "active"}, outcome
        assert self.hub.verified.wait(10)
        assert outcome.topic is not None
        return outcome.topic

    def row(self, topic: str) -> sa.Row[tuple[object, ...]]:
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT * FROM websub_subscriptions WHERE topic = :t"), {"t": topic}).one()


def _serve(engine: sa.Engine, settings: Settings, published: list[DeliveredEntry] | None, wall: Wall) -> ReceiverServer:
    publisher = None if published is None else published.extend
    receiver = Receiver(engine, publisher, ReceiverConfig(3600, parse_limits(settings)), wall)
    return start(receiver, ("127.0.0.1", 0), ServerLimits(MAX_BYTES, request_seconds=2.0))


@pytest.fixture
def setup(fetch_settings: Settings, engine: sa.Engine) -> Iterator[Setup]:
    wall, published = Wall(), []
    server = _serve(engine, fetch_settings, published, wall)
    with running_hub() as hub:
        yield Setup(hub, engine, fetch_settings, server, wall, published)
    server.shutdown()
    server.server_close()


def _feed(setup: Setup, *entries: tuple[str, str]) -> tuple[str, bytes]:
    hub = setup.hub
    body = atom_feed(hub.base + "/hub", hub.base + "/topic.atom", list(entries))
    return setup.hub.serve("/feed.atom", body), body


@pytest.mark.postgres
@pytest.mark.parametrize("before_answering", [False, True], ids=["verified-after-202", "verified-before-answering"])
def test_subscribe_verify_and_a_signed_delivery_reaches_the_publisher(setup: Setup, before_answering: bool) -> None:
    setup.hub.verify_before_answering = before_answering
    feed_url, _ = _feed(setup)
    topic = setup.subscribe(feed_url)
    request = setup.hub.subscription(topic)
    assert topic == setup.hub.base + "/topic.atom" and request["hub.mode"] == "subscribe"
    assert (
        request["hub.callback"].startswith(setup.callback_base + "/") and request["hub.lease_seconds"] == "864000"
    )  # the hub grants 3600
    assert len(request["hub.secret"]) == 64
    assert setup.hub.verifications[-1].status == 200 and setup.hub.verifications[-1].echoed
    row = setup.row(topic)
    assert row.state == "active" and row.lease_expires_at == setup.wall.now + timedelta(seconds=3600)
    inline = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>tag:x,1</id><title>Inline</title>'
        b'<content type="html">&lt;p&gt;Body&lt;/p&gt;</content></entry></feed>'
    )
    for body in (
        atom_feed(None, None, [("https://news.example/a", "A"), ("https://news.example/a", "A again")]),
        inline,
    ):
        response = setup.hub.deliver(topic, body)
        assert response.status_code == 204, response.text
    assert [(item.topic, item.entry.link) for item in setup.published] == [
        (topic, "https://news.example/a"),
        (topic, f"feed-entry:{feed_url}#tag:x,1"),  # named under the feed as given, as a poll names it
    ]
    assert setup.published[1].entry.content is not None and b"Body" in setup.published[1].entry.content.body
    assert setup.row(topic).deliveries == 2


@pytest.mark.postgres
def test_hub_discovered_from_the_link_header_of_a_feed_without_links(setup: Setup) -> None:
    body = b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title></channel></rss>'
    link = f'<{setup.hub.base}/hub>; rel="hub", <{setup.hub.base}/canonical.rss>; rel="self"'
    feed_url = setup.hub.serve("/plain.rss", body, "application/rss+xml", link)
    assert setup.subscribe(feed_url) == setup.hub.base + "/canonical.rss"


@pytest.mark.postgres
def test_hub_discovered_from_atom_links_in_rss_and_the_header_wins(setup: Setup) -> None:
    base = setup.hub.base
    body = (
        f'<?xml version="1.0"?><rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel><title>t</title>'
        f'<atom:link rel="hub" href="/hub"/><atom:link rel="self" href="{base}/self.rss"/>'
        + "".join(f'<atom:link rel="hub" href="{base}/hub{n}"/>' for n in range(500))
        + "<item><link>https://news.example/1</link></item></channel></rss>"
    ).encode()
    assert setup.subscribe(setup.hub.serve("/atom-links.rss", body, "application/rss+xml")) == base + "/self.rss"
    assert setup.hub.requests[-1]["path"] == "/hub"  # the first hub, resolved against the feed's URL
    header = f"<{base}/hub>; rel=hub, <{base}/from-header.rss>; rel=self"
    feed_url = setup.hub.serve("/both.rss", body.replace(b'href="/hub"', b'href="/elsewhere"'), "text/xml", header)
    setup.hub.verified.clear()
    assert setup.subscribe(feed_url) == base + "/from-header.rss"


@pytest.mark.postgres
def test_a_feed_without_a_hub_stays_polled(setup: Setup) -> None:
    feed_url = setup.hub.serve("/nohub.atom", atom_feed(None, None, []))
    with Fetcher.from_settings(setup.settings) as fetcher:
        outcome = setup.subscriber(fetcher).subscribe(feed_url)
    assert (outcome.state, outcome.hub) == ("no hub", None) and not setup.hub.requests


@pytest.mark.postgres
def test_a_hub_refusing_the_request_is_recorded(setup: Setup) -> None:
    setup.hub.refuse_with = 400
    feed_url, _ = _feed(setup)
    with Fetcher.from_settings(setup.settings) as fetcher:
        outcome = setup.subscriber(fetcher).subscribe(feed_url)
    assert outcome.state == "failed" and "HTTP 400" in str(outcome.reason)
    row = setup.row(setup.hub.base + "/topic.atom")
    assert row.state == "failed" and "HTTP 400 no thanks" in row.last_error


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ({"secret": "0" * 64}, "forged"),
        ({"sent": b"<feed>swapped after signing</feed>"}, "forged"),
        ({"method": "sha1", "secret": "guess"}, "forged"),
        ({"signature": None}, "unsigned"),
        ({"signature": "md5=" + "0" * 32}, "unsupported"),
        ({"signature": "sha256=" + "0" * 40}, "malformed"),
    ],
    ids=["wrong-secret", "body-swapped", "sha1-guess", "unsigned", "md5", "short-digest"],
)
def test_forged_and_unsigned_deliveries_are_refused(setup: Setup, how: dict[str, object], reason: str) -> None:
    feed_url, _ = _feed(setup)
    topic = setup.subscribe(feed_url)
    body = atom_feed(None, None, [("https://evil.example/planted", "Planted")])
    response = setup.hub.deliver(topic, body, **how)
    assert response.status_code == 403 and setup.published == []
    row = setup.row(topic)
    assert reason in row.last_error and row.deliveries == 0 and row.secret not in row.last_error


@pytest.mark.postgres
def test_every_signature_method_of_the_spec_is_taken(setup: Setup) -> None:
    topic = setup.subscribe(_feed(setup)[0])
    for number, method in enumerate(METHOD_NAMES):
        body = atom_feed(None, None, [(f"https://news.example/{method}", method)])
        assert setup.hub.deliver(topic, body, method=method).status_code == 204
        assert setup.published[number].entry.link == f"https://news.example/{method}"


@pytest.mark.postgres
def test_verification_is_refused_for_what_was_not_asked(setup: Setup) -> None:
    topic = setup.subscribe(_feed(setup)[0])
    callback = setup.hub.subscription(topic)["hub.callback"]
    good = {"hub.mode": "subscribe", "hub.topic": topic, "hub.challenge": "chal-9f3", "hub.lease_seconds": "60"}
    refused = [
        (callback, good | {"hub.topic": topic + "?other"}),  # another topic at our callback
        (callback.rsplit("/", 1)[0] + "/not-a-token", good),  # an unknown callback
        (callback, good | {"hub.mode": "unsubscribe"}),  # an unsubscribe we never asked for
        (callback, [*good.items(), ("hub.topic", "https://evil.example/")]),  # the topic given twice
    ]
    for url, params in refused:
        response = setup.hub.verify(url, params)
        assert response.status_code == 404 and "chal-9f3" not in response.text, (url, params)
    for bad in ({"hub.lease_seconds": "-5"}, {"hub.lease_seconds": "1e9"}, {"hub.challenge": ""}):
        assert setup.hub.verify(callback, good | bad).status_code == 400
    assert setup.row(topic).state == "active"
    answered = setup.hub.verify(callback, good)
    assert (answered.status_code, answered.text) == (200, "chal-9f3")
    assert setup.row(topic).lease_expires_at == setup.wall.now + timedelta(seconds=60)


@pytest.mark.postgres
def test_a_verification_long_after_the_last_request_was_verified_is_refused(setup: Setup) -> None:
    """Before, whoever had the callback (a proxy's access log holds it) and the public topic could verify an
    active subscription at any time with a lease of ten years: it was never renewed, and push silently ended
    when the hub's real lease did. A verification now answers a request: one not yet verified, or recent."""
    topic = setup.subscribe(_feed(setup)[0])
    callback, lease_end = setup.hub.subscription(topic)["hub.callback"], setup.row(topic).lease_expires_at
    forged = {"hub.mode": "subscribe", "hub.topic": topic, "hub.challenge": "c-1", "hub.lease_seconds": "315360000"}
    setup.wall.advance(601)
    assert setup.hub.verify(callback, forged).status_code == 404
    assert setup.row(topic).lease_expires_at == lease_end


@pytest.mark.postgres
def test_a_denial_is_recorded(setup: Setup) -> None:
    topic = setup.subscribe(_feed(setup)[0])
    callback = setup.hub.subscription(topic)["hub.callback"]
    denied = {"hub.mode": "denied", "hub.topic": topic, "hub.reason": "not today"}
    assert setup.hub.verify(callback, denied).status_code == 200
    row = setup.row(topic)
    assert row.state == "denied" and "not today" in row.last_error


@pytest.mark.postgres
def test_a_nul_in_the_callback_or_the_denial_reason_is_answered_not_dropped(setup: Setup) -> None:
    """Before, a NUL byte in the callback path (or a hub's ``hub.reason=%00``) reached Postgres, whose driver
    raised ValueError: the connection was dropped without an answer, and a hub would send it again forever."""
    topic = setup.subscribe(_feed(setup)[0])
    callback = setup.hub.subscription(topic)["hub.callback"]
    for method in (b"GET", b"POST"):
        with socket.create_connection(setup.server.server_address[:2], timeout=10) as conn:
            conn.sendall(method + b" /websub/ab\x00cd?hub.mode=subscribe HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            assert conn.recv(65536).startswith(b"HTTP/1.0 404"), method
    denied = {"hub.mode": "denied", "hub.topic": topic, "hub.reason": "not\x00today"}
    assert setup.hub.verify(callback, denied).status_code == 200
    assert setup.row(topic).state == "denied" and "not\\x00today" in setup.row(topic).last_error


@pytest.mark.postgres
def test_a_topic_with_a_password_never_shows_in_the_receivers_log(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """A feed subscribed with its user name and password in the URL (a private feed): before, every delivery's
    log line named the topic with them."""
    topic, token, secret = "https://ann:p@ss-s3cr3t@news.example/private.atom", "tok_" + uuid.uuid4().hex, "k" * 64
    fresh = websub_store.NewSubscription(topic, topic, setup.hub.base + "/hub", setup.callback_base, token, secret)
    websub_store.upsert(setup.engine, fresh, setup.wall.now)
    callback = f"{setup.callback_base}/{token}"
    body = atom_feed(None, None, [("https://news.example/private-story", "A story")])
    with caplog.at_level("INFO", logger="pipeline.ingest.websub_server"):
        forged = httpx.post(callback, content=b"x", headers={"X-Hub-Signature": "sha256=" + "0" * 64}, timeout=10)
        signed = httpx.post(callback, content=body, headers={"X-Hub-Signature": sign(body, secret)}, timeout=10)
    assert (forged.status_code, signed.status_code, len(setup.published)) == (403, 204, 1)
    assert "news.example/private.atom" in caplog.text and "s3cr3t" not in caplog.text and "ann:" not in caplog.text
    assert token not in caplog.text and f"/websub/{token[:6]}…: 204" in caplog.text  # a token would let a log reader
    # answer verifications in our name (a forged lease of years, never renewed) or deny the subscription


def _raw(setup: Setup, path: str, head: str, body: bytes = b"") -> bytes:
    with socket.create_connection(setup.server.server_address[:2], timeout=10) as conn:
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


@pytest.mark.postgres
def test_oversized_chunked_and_slow_bodies_are_refused(setup: Setup) -> None:
    topic = setup.subscribe(_feed(setup)[0])
    path = "/websub/" + setup.hub.subscription(topic)["hub.callback"].rsplit("/", 1)[1]
    assert _raw(setup, path, f"Content-Length: {MAX_BYTES + 1}\r\n").startswith(b"HTTP/1.0 413")
    assert _raw(setup, path, f"Content-Length: {10**30}\r\n").startswith(b"HTTP/1.0 413")
    big = b"x" * (MAX_BYTES + 1)
    response = setup.hub.deliver(topic, big)
    assert response.status_code == 413
    chunked = _raw(setup, path, "Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n0\r\n\r\n")
    assert chunked.startswith(b"HTTP/1.0 411") and b"chunked" in chunked
    smuggled = _raw(setup, path, "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n")
    assert smuggled.startswith(b"HTTP/1.0 411")
    for head in ("", "Content-Length: -1\r\n", "Content-Length: 5\r\nContent-Length: 6\r\n", "Content-Length: ５\r\n"):
        assert _raw(setup, path, head).split(b" ")[1] in {b"400", b"411"}, head
    assert _raw(setup, path, "Content-Length: 100\r\n", b"only part").startswith(b"HTTP/1.0 408")  # 2 s limit
    assert setup.published == [] and setup.row(topic).deliveries == 0


@pytest.mark.postgres
def test_requests_over_the_limit_are_503_and_a_dribbled_request_is_cut(setup: Setup) -> None:
    receiver = setup.server.receiver
    server = start(receiver, ("127.0.0.1", 0), ServerLimits(MAX_BYTES, request_seconds=1.0, connections=1))
    try:
        with socket.create_connection(server.server_address[:2], timeout=10) as held:
            held.sendall(b"POST /websub/x HTTP/1.1\r\n")  # holds the only slot, a byte at a time
            busy = httpx.post(f"http://127.0.0.1:{server.server_address[1]}/websub/x", content=b"", timeout=10)
            assert busy.status_code == 503 and busy.headers["Retry-After"] == "5"
            cut_after = None
            for sent in range(20):  # one header byte every 0.5 s: a second per read, never a whole request
                try:
                    held.sendall(b"X")
                except OSError:
                    cut_after = sent
                    break
                time.sleep(0.5)
                held.setblocking(False)
                try:
                    if held.recv(1) == b"":
                        cut_after = sent
                        break
                except BlockingIOError:
                    pass
                finally:
                    held.setblocking(True)
            assert cut_after is not None and cut_after < 10  # cut at twice the 1 s limit, not after 10 s
        answered = httpx.get(f"http://127.0.0.1:{server.server_address[1]}/websub/x", timeout=10)
        assert answered.status_code == 404  # the slot is free again
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.postgres
def test_leases_are_renewed_before_they_end_with_the_same_secret(setup: Setup) -> None:
    topic = setup.subscribe(_feed(setup)[0])
    first = setup.hub.subscription(topic)
    with Fetcher.from_settings(setup.settings) as fetcher:
        subscriber = setup.subscriber(fetcher)
        assert subscriber.renew_due() == []
        setup.wall.advance(1799)  # granted 3600 s: renewed from half of it (the margin, a day, is longer)
        assert subscriber.renew_due() == []
        setup.wall.advance(2)
        setup.hub.verified.clear()
        [outcome] = subscriber.renew_due()
        assert outcome.topic == topic and setup.hub.verified.wait(10)
        again = setup.hub.subscription(topic)
        assert again is not first and again == first
        assert setup.row(topic).lease_expires_at == setup.wall.now + timedelta(seconds=3600)
        setup.wall.advance(60)
        assert subscriber.renew_due() == []
    assert setup.hub.deliver(topic, atom_feed(None, None, [("https://news.example/r", "R")])).status_code == 204


@pytest.mark.postgres
def test_unverified_subscriptions_are_asked_again_later(setup: Setup) -> None:
    setup.hub.refuse_with = 503
    feed_url, _ = _feed(setup)
    with Fetcher.from_settings(setup.settings) as fetcher:
        subscriber = setup.subscriber(fetcher)
        assert subscriber.subscribe(feed_url).state == "failed"
        assert subscriber.renew_due() == []
        setup.hub.refuse_with = None
        setup.wall.advance(601)
        assert [outcome.state for outcome in subscriber.renew_due()] in (["pending"], ["active"])
    assert setup.hub.verified.wait(10) and setup.row(setup.hub.base + "/topic.atom").state == "active"


@pytest.mark.postgres
def test_without_a_queue_deliveries_are_503_and_verification_still_works(setup: Setup) -> None:
    setup.server.shutdown()
    setup.server.server_close()
    setup.server = _serve(setup.engine, setup.settings, None, setup.wall)
    topic = setup.subscribe(_feed(setup)[0])
    assert setup.row(topic).state == "active"
    assert setup.hub.deliver(topic, atom_feed(None, None, [("https://news.example/q", "Q")])).status_code == 503
    assert setup.hub.deliver(topic, b"<feed/>", secret="wrong").status_code == 403


@pytest.mark.postgres
def test_a_failing_publisher_is_503_so_the_hub_retries(setup: Setup) -> None:
    def broken(entries: list[DeliveredEntry]) -> None:
        raise ConnectionError("redis went away")

    setup.server.shutdown()
    setup.server.server_close()
    receiver = Receiver(setup.engine, broken, ReceiverConfig(3600, parse_limits(setup.settings)), setup.wall)
    setup.server = start(receiver, ("127.0.0.1", 0), ServerLimits(MAX_BYTES))
    topic = setup.subscribe(_feed(setup)[0])
    assert setup.hub.deliver(topic, atom_feed(None, None, [("https://news.example/q", "Q")])).status_code == 503
    assert "redis went away" in setup.row(topic).last_error
    assert setup.hub.deliver(topic, b"not a feed at all").status_code == 400


@pytest.mark.postgres
def test_the_reader_role_cannot_read_the_secrets(setup: Setup) -> None:
    with setup.engine.begin() as conn:
        conn.execute(sa.text("SET LOCAL ROLE newsflow_reader"))
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text("SELECT secret FROM websub_subscriptions"))


@pytest.mark.postgres
def test_the_commands_subscribe_and_serve_answer_the_hub(
    fetch_settings: Settings, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``newsflow websub subscribe`` against ``serve`` (not yet wired to the queue): verified, deliveries 503."""
    listening: list[str] = []
    stop = threading.Event()
    settings = replace(fetch_settings, websub_listen="127.0.0.1:0", websub_callback_url=None)
    started = threading.Event()

    def ready(address: str) -> None:
        listening.append(address)
        started.set()

    thread = threading.Thread(target=serve, args=(settings, engine, None, ready, stop))
    thread.start()
    try:
        assert started.wait(30), "serve never said it was listening"
        with running_hub() as hub:
            feed_url = hub.serve("/feed.atom", atom_feed(hub.base + "/hub", hub.base + "/topic.atom", []))
            environment = {"NEWSFLOW_DATABASE_URL": fetch_settings.database_url, "NEWSFLOW_ALLOW_PRIVATE_HOSTS": "true"}
            environment |= {"NEWSFLOW_FETCH_HOST_INTERVAL": "0", "NEWSFLOW_FETCH_ATTEMPTS": "1"}
            for name, value in (environment | {"NEWSFLOW_WEBSUB_CALLBACK_URL": listening[0] + "/websub/"}).items():
                monkeypatch.setenv(name, str(value))
            result = CliRunner().invoke(app, ["websub", "subscribe", feed_url, hub.base + "/gone.atom"])
            assert result.exit_code == 1, result.output
            assert f"{feed_url}: " in result.output and f"at {hub.base}/hub" in result.output
            assert f"{hub.base}/gone.atom: failed" in result.output and "HTTP 404" in result.output
            assert hub.verified.wait(10) and hub.verifications[-1].echoed
            assert hub.subscription(hub.base + "/topic.atom")["hub.callback"].startswith(listening[0] + "/websub/")
            assert hub.deliver(hub.base + "/topic.atom", atom_feed(None, None, [])).status_code == 503
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_subscribe_needs_a_callback_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSFLOW_WEBSUB_CALLBACK_URL", raising=False)
    result = CliRunner().invoke(app, ["websub", "subscribe", "https://news.example/feed"])
    assert result.exit_code == 2 and "NEWSFLOW_WEBSUB_CALLBACK_URL" in result.output


def test_websub_settings_are_read_from_the_environment() -> None:
    environment = {"NEWSFLOW_WEBSUB_CALLBACK_URL": "https://news.example/websub/", "NEWSFLOW_WEBSUB_LISTEN": "[::]:9"}
    settings = Settings.from_env(environment | {"NEWSFLOW_WEBSUB_LEASE_SECONDS": "7200"})
    assert (settings.websub_callback_url, settings.websub_lease_seconds) == ("https://news.example/websub", 7200)
    assert listen_address(settings.websub_listen) == ("::", 9)
    for bad in ("8086", "host:", "host:99999", ":80x"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            listen_address(bad)


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.postgres
@pytest.mark.skipif(not _redis_answers(), reason="no Redis at 127.0.0.1:6379 for the durable queue")
def test_a_signed_delivery_goes_through_the_durable_queue_and_is_staged_once(setup: Setup) -> None:
    """The receiver wired as ``newsflow websub serve`` wires it: a delivery's entries (a link, an inline entry)
    wait in the Redis stream, then a queue drain stages each once; a forged delivery publishes nothing."""
    stream = f"test:websub:{uuid.uuid4().hex}"
    settings = replace(setup.settings, queue_url="redis://127.0.0.1:6379/0", queue_stream=stream, queue_group="g")
    setup.server.shutdown()
    setup.server.server_close()
    config = ReceiverConfig(3600, parse_limits(settings))
    receiver = Receiver(setup.engine, queue_publisher(settings), config, setup.wall)
    setup.server = start(receiver, ("127.0.0.1", 0), ServerLimits(MAX_BYTES))
    page = setup.hub.serve("/story.html", article(extra="Pushed by the hub. ").encode(), "text/html")
    feed_url, _ = _feed(setup)
    topic = setup.subscribe(feed_url)
    inline = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>tag:x,9</id><title>Inline story</title>'
        b'<content type="html">&lt;p&gt;Carried inline by the hub.&lt;/p&gt;</content></entry>'
        + f"<entry><id>tag:x,10</id><title>Linked</title><link href='{page}'/></entry></feed>".encode()
    )
    client = redis.Redis.from_url(settings.queue_url)
    try:
        assert setup.hub.deliver(topic, inline, secret="forged").status_code == 403
        assert client.exists(stream) == 0  # nothing published for a forged body
        assert setup.hub.deliver(topic, inline).status_code == 204
        assert client.xlen(stream) == 2
        drained = drain_queue(settings, setup.engine, connect(settings.queue_url))
        again = drain_queue(settings, setup.engine, connect(settings.queue_url))
    finally:
        client.delete(stream)
    assert drained.summary.staged == 2 and drained.summary.failed == 0 and again.messages["taken"] == 0
    with setup.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source, media_type FROM raw_documents WHERE source IN (:a, :b)"),
                            {"a": f"feed-entry:{feed_url}#tag:x,9", "b": page}).all()  # fmt: skip
    assert sorted(rows) == sorted([(f"feed-entry:{feed_url}#tag:x,9", "text/html"), (page, "text/html")])
