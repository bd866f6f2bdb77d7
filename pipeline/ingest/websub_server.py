"""The WebSub receiver's HTTP server (standard library ``http.server``, a thread per request) and the loop
that renews leases beside it (``newsflow websub serve``).

Bounds: at most ``connections`` requests at a time (more are answered 503 at once); every socket operation
and the whole body read within ``request_seconds`` (else 408), and a connection whose request has not arrived
whole within twice that (headers dribbled a byte at a time) is cut; a body over ``max_bytes`` is refused with 413
before it is read; a body must come with one ``Content-Length``: a chunked body (any ``Transfer-Encoding``)
is refused with 411, so the hub sends it again with its length. Each request is one log line (method, path
without its query and with its token cut short, status and why); the secret, the body, the whole token and a
topic's password never are.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy.engine import Engine

from pipeline.ingest.websub import (
    Delivery,
    Publisher,
    Receiver,
    ReceiverConfig,
    Reply,
    SubscribeOutcome,
    SubscribePlan,
    Subscriber,
)
from pipeline.models import without_credentials
from pipeline.settings import Settings
from pipeline.sources.feed_parsing import ParseLimits
from pipeline.sources.http import Fetcher, FetchPolicy

log = logging.getLogger(__name__)

REQUEST_SECONDS = 30.0
MAX_CONNECTIONS = 32
MAX_QUERY_FIELDS = 20
RENEW_CHECK_SECONDS = 300.0
READ_BYTES = 64 * 1024
BUSY = b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class ServerLimits:
    """The largest body taken, the seconds a request may take to arrive, the requests handled at a time."""

    max_bytes: int
    request_seconds: float = REQUEST_SECONDS
    connections: int = MAX_CONNECTIONS


class ReceiverServer(ThreadingHTTPServer):
    """A threaded HTTP server for one ``Receiver``, with a bounded number of requests in flight."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], receiver: Receiver, limits: ServerLimits) -> None:
        self.receiver, self.limits = receiver, limits
        self._slots = threading.BoundedSemaphore(limits.connections)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            _refuse_busy(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed (cut, reset by its client) is one line in the log, not a traceback."""
        log.info("connection from %s ended: %s", client_address[0], sys.exc_info()[1])


def _refuse_busy(request: socket.socket) -> None:
    try:
        request.settimeout(1.0)
        request.sendall(BUSY)
    except OSError:
        pass


class _Handler(BaseHTTPRequestHandler):
    server: ReceiverServer
    server_version = "Newsflow-WebSub"

    def setup(self) -> None:
        self.request.settimeout(self.server.limits.request_seconds)
        self._cutoff = threading.Timer(2 * self.server.limits.request_seconds, self._cut)
        self._cutoff.daemon = True
        self._cutoff.start()
        super().setup()

    def finish(self) -> None:
        self._cutoff.cancel()
        super().finish()

    def _cut(self) -> None:
        """The request did not arrive in time: end the connection (the handler's read then sees its end)."""
        with contextlib.suppress(OSError):
            self.request.shutdown(socket.SHUT_RDWR)

    def do_GET(self) -> None:
        self._cutoff.cancel()  # the request has arrived; answering may take longer
        parts = urlsplit(self.path)
        try:
            query = parse_qs(parts.query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
        except ValueError:
            self._send(Reply(400, b"too many parameters", "verification refused: too many parameters"))
            return
        self._send(self.server.receiver.verify(_token(parts.path), query))

    def do_POST(self) -> None:
        refused = self._length_refused()
        if isinstance(refused, Reply):
            self._send(refused)
            return
        body = self._body(refused)
        self._cutoff.cancel()
        if body is None:
            self._send(Reply(408, b"body not received in time", "delivery refused: body not received in time"))
            return
        token, signature = _token(urlsplit(self.path).path), self.headers.get("X-Hub-Signature")
        self._send(self.server.receiver.deliver(Delivery(token, body, signature, self.headers.get("Content-Type"))))

    def _length_refused(self) -> Reply | int:
        """The body's length, or the reply refusing it: chunked (411), no or a bad length (411, 400), too big
        (413)."""
        if self.headers.get_all("Transfer-Encoding"):
            return Reply(411, b"chunked bodies are refused: send Content-Length", "delivery refused: chunked")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            return Reply(411, b"Content-Length required", "delivery refused: no Content-Length")
        if len(lengths) > 1 or not lengths[0].strip().isdigit() or not lengths[0].isascii():
            return Reply(400, b"bad Content-Length", "delivery refused: bad Content-Length")
        length = int(lengths[0])
        if length > self.server.limits.max_bytes:
            note = f"delivery refused: {length:,} bytes, over {self.server.limits.max_bytes:,}"
            return Reply(413, b"body too large", note)
        return length

    def _body(self, length: int) -> bytes | None:
        """Exactly ``length`` bytes within the request's time, or None."""
        deadline, body = time.monotonic() + self.server.limits.request_seconds, bytearray()
        try:
            while len(body) < length and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(READ_BYTES, length - len(body)))
                if not chunk:
                    return None
                body += chunk
        except TimeoutError:
            return None
        return bytes(body) if len(body) == length else None

    def _send(self, reply: Reply) -> None:
        self.close_connection = True
        self.send_response(reply.status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(reply.body)
        note = without_credentials(reply.note)  # a private feed's topic carries its password
        log.info("%s %s: %d %s", self.command, _shown_path(self.path), reply.status, note)

    def log_message(self, format: str, *args: Any) -> None:
        """http.server's own lines (the request line with its query) are dropped: ``_send`` logs each request."""


def _shown_path(path: str) -> str:
    """The request's path for the log: its token cut to 6 characters (whoever holds a callback's token and its
    topic can answer a verification for it), its query dropped."""
    prefix, _, token = urlsplit(path).path[:200].rstrip("/").rpartition("/")
    return f"{prefix}/{token[:6]}…" if len(token) > 6 else f"{prefix}/{token}"


def _token(path: str) -> str:
    """The callback's last path segment: the subscription's token (a reverse proxy may add a prefix)."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def start(receiver: Receiver, address: tuple[str, int], limits: ServerLimits) -> ReceiverServer:
    """The receiver listening on ``address`` (port 0: any free port) in a thread of its own."""
    server = ReceiverServer(address, receiver, limits)
    threading.Thread(target=server.serve_forever, name="websub-receiver", daemon=True).start()
    return server


def renew_forever(subscriber: Subscriber, stop: threading.Event, every: float = RENEW_CHECK_SECONDS) -> None:
    """Renew what is due now and every ``every`` seconds until ``stop`` is set; a failure is logged, not fatal."""
    while True:
        try:
            for outcome in subscriber.renew_due():
                said = f"renewal of {outcome.topic} at {outcome.hub}: {outcome.state} {outcome.reason or ''}"
                log.info("%s", without_credentials(said))
        except Exception as error:  # noqa: BLE001 - the database or a hub away: try again at the next check
            log.warning("renewal check failed: %s: %s", type(error).__name__, without_credentials(str(error)))
        if stop.wait(every):
            return


def parse_limits(settings: Settings) -> ParseLimits:
    """A delivered or fetched feed parses under the feed child's limits (``NEWSFLOW_FEED_PARSE_MEMORY_MB``, the
    document budget, inline content up to ``NEWSFLOW_FETCH_MAX_BYTES``)."""
    seconds = settings.document_seconds if settings.document_seconds > 0 else 60.0
    memory_bytes = settings.feed_parse_memory_mb * 1024 * 1024
    return ParseLimits(seconds=seconds, memory_bytes=memory_bytes, entry_bytes=settings.fetch_max_bytes)


def subscribe_plan(settings: Settings, callback_base: str) -> SubscribePlan:
    return SubscribePlan(
        callback_base,
        settings.websub_lease_seconds,
        settings.websub_renew_seconds,
        settings.allow_private_hosts,
        parse_limits(settings),
    )


def hub_client(settings: Settings) -> httpx.Client:
    """The client subscription requests go through: the fetch timeouts and User-Agent, no redirects."""
    policy = FetchPolicy.from_settings(settings)
    timeout = httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout)
    return httpx.Client(timeout=timeout, headers={"User-Agent": policy.user_agent}, follow_redirects=False)


def subscribe_feeds(
    settings: Settings, engine: Engine, feed_urls: list[str], callback_base: str
) -> list[SubscribeOutcome]:
    """Subscribe each feed at the hub it advertises (``newsflow websub subscribe``)."""
    with Fetcher.from_settings(settings) as fetcher, hub_client(settings) as client:
        subscriber = Subscriber(engine, fetcher, client, subscribe_plan(settings, callback_base))
        return [subscriber.subscribe(url) for url in feed_urls]


def listen_address(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as an address; ``ValueError`` when it is not one."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65_535:
        raise ValueError(f"not HOST:PORT: {value!r}")
    return host.strip("[]"), int(port)


def serve(
    settings: Settings,
    engine: Engine,
    publisher: Publisher | None,
    ready: Callable[[str], None],
    stop: threading.Event | None = None,
) -> None:
    """Run the receiver on ``NEWSFLOW_WEBSUB_LISTEN`` until interrupted (or ``stop`` is set), renewing leases
    beside it when a callback URL is set; ``ready`` is told where it listens."""
    receiver = Receiver(engine, publisher, ReceiverConfig(settings.websub_lease_seconds, parse_limits(settings)))
    server = start(receiver, listen_address(settings.websub_listen), ServerLimits(settings.websub_max_bytes))
    ready("http://{}:{}".format(*server.server_address[:2]))
    stop = stop or threading.Event()
    try:
        if settings.websub_callback_url is None:
            log.warning("NEWSFLOW_WEBSUB_CALLBACK_URL is not set: leases are not renewed")
            stop.wait()
            return
        with Fetcher.from_settings(settings) as fetcher, hub_client(settings) as client:
            plan = subscribe_plan(settings, settings.websub_callback_url or "")
            renew_forever(Subscriber(engine, fetcher, client, plan), stop)
    finally:
        server.shutdown()
        server.server_close()
