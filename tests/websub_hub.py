"""A WebSub hub stand-in on 127.0.0.1, for the tests and the bench: it serves feeds (with or without ``Link``
headers), takes subscription requests at ``/hub``, verifies the subscriber's intent at its callback (before
answering, or after, as real hubs do either) and delivers content signed with the subscription's secret."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx

from pipeline.sources.websub import sign


@dataclass
class Verification:
    callback: str
    status: int
    echoed: bool


@dataclass
class Hub:
    """What the stand-in knows: the feeds it serves, the requests it took, the verifications it made."""

    base: str = ""
    feeds: dict[str, tuple[bytes, str, str | None]] = field(default_factory=dict)  # path: body, type, Link
    requests: list[dict[str, str]] = field(default_factory=list)
    verifications: list[Verification] = field(default_factory=list)
    verify_before_answering: bool = False
    max_lease: int = 3600
    refuse_with: int | None = None  # answer subscription requests with this status instead
    verified: threading.Event = field(default_factory=threading.Event)

    def serve(self, path: str, body: bytes, content_type: str = "application/atom+xml", link: str | None = None) -> str:
        self.feeds[path] = (body, content_type, link)
        return self.base + path

    def subscription(self, topic: str) -> dict[str, str]:
        return next(request for request in reversed(self.requests) if request["hub.topic"] == topic)

    def verify(self, callback: str, params: dict[str, str] | list[tuple[str, str]]) -> httpx.Response:
        """Any verification GET, as a hub (or someone pretending to be one) sends it."""
        return httpx.get(callback, params=params, timeout=10)

    def verify_intent(self, request: dict[str, str]) -> Verification:
        challenge = secrets.token_urlsafe(16)
        lease = min(int(request["hub.lease_seconds"]), self.max_lease)
        params = {"hub.mode": "subscribe", "hub.topic": request["hub.topic"], "hub.challenge": challenge}
        response = self.verify(request["hub.callback"], params | {"hub.lease_seconds": str(lease)})
        verification = Verification(request["hub.callback"], response.status_code, response.text == challenge)
        self.verifications.append(verification)
        self.verified.set()
        return verification

    def deliver(self, topic: str, body: bytes, **how: Any) -> httpx.Response:
        """POST ``body`` to the topic's subscriber, signed with its secret (``secret``, ``method`` or a whole
        ``signature`` override it; ``signature=None`` sends none)."""
        request = self.subscription(topic)
        headers = {"Content-Type": how.get("content_type", "application/atom+xml")}
        secret, method = how.get("secret", request["hub.secret"]), how.get("method", "sha256")
        signature = how.get("signature", sign(body, secret, method))
        if signature is not None:
            headers["X-Hub-Signature"] = signature
        return httpx.post(request["hub.callback"], content=how.get("sent", body), headers=headers, timeout=30)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        found = self.server.hub.feeds.get(self.path)
        if found is None:
            self._answer(404, b"not found")
            return
        body, content_type, link = found
        self._answer(200, body, {"Content-Type": content_type} | ({"Link": link} if link else {}))

    def do_POST(self) -> None:
        hub = self.server.hub
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode(), keep_blank_values=True)
        request = {name: values[0] for name, values in form.items()} | {"path": self.path}
        hub.requests.append(request)
        if hub.refuse_with is not None:
            self._answer(hub.refuse_with, b"no thanks")
        elif hub.verify_before_answering:
            verification = hub.verify_intent(request)
            self._answer(204 if verification.echoed else 409, b"")
        else:
            self._answer(202, b"")
            threading.Thread(target=hub.verify_intent, args=(request,), daemon=True).start()

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        super().__init__(("127.0.0.1", 0), _Handler)


@contextmanager
def running_hub() -> Iterator[Hub]:
    hub = Hub()
    server = _Server(hub)
    hub.base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()


def atom_feed(hub: str | None, self_url: str | None, entries: list[tuple[str, str]]) -> bytes:
    """An Atom feed advertising ``hub`` and ``self_url`` (when given), with (link, title) entries."""
    links = f'<link rel="hub" href="{hub}"/>' if hub else ""
    links += f'<link rel="self" href="{self_url}"/>' if self_url else ""
    stamp = "<updated>2026-01-02T03:04:05Z</updated>"
    items = "".join(
        f'<entry><id>{link}</id><title>{title}</title><link href="{link}"/>{stamp}</entry>' for link, title in entries
    )
    return (
        f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>{links}{items}</feed>'.encode()
    )
