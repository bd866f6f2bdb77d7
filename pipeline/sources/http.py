"""Polite, bounded HTTP GETs through httpx, with retries by tenacity.

Every request: the SSRF guard on each hop, robots.txt, a per-host gap between
requests and a cap on concurrent ones, connect and read timeouts, at most
``max_redirects`` redirects, a body-size cap enforced while streaming (on the
decoded bytes, so a gzip or brotli bomb stops too), and a content-type check.
Connection errors, 429 and 5xx are retried with exponential backoff, honouring
Retry-After. Conditional GETs send ETag and Last-Modified and return
``not_modified`` on 304.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.robotparser
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx
import tenacity

import pipeline
from pipeline.errors import FetchError
from pipeline.settings import Settings
from pipeline.sources import guard
from pipeline.sources.guard import UnsafeURLError, check_url

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
FEED_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml", "text/xml"}
)
ROBOTS_MAX_BYTES = 512 * 1024


class _RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@dataclass(frozen=True)
class FetchPolicy:
    """How politely and how far a fetch may go (see docs/configuration.md for the variables)."""

    user_agent: str = f"Newsflow/{pipeline.__version__} (+https://github.com/newsflow; news ingestion)"
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    attempts: int = 4
    backoff_seconds: float = 1.0
    max_retry_after: float = 120.0
    host_interval: float = 1.0
    host_concurrency: int = 2
    respect_robots: bool = True
    allow_private_hosts: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        return cls(
            user_agent=settings.user_agent or cls.user_agent,
            read_timeout=settings.fetch_timeout,
            max_bytes=settings.fetch_max_bytes,
            host_interval=settings.fetch_host_interval,
            attempts=max(1, settings.fetch_attempts),
            allow_private_hosts=settings.allow_private_hosts,
        )


@dataclass(frozen=True)
class Page:
    """A fetched response: ``not_modified`` on 304, else the body and its type."""

    url: str
    final_url: str
    status: int
    body: bytes = b""
    media_type: str | None = None
    charset: str | None = None
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass
class _HostGate:
    """Spacing and concurrency per host, shared by the threads of one Fetcher."""

    interval: float
    concurrency: int
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_start: dict[str, float] = field(default_factory=dict)
    _slots: dict[str, threading.Semaphore] = field(default_factory=dict)

    @contextmanager
    def turn(self, host: str) -> Iterator[None]:
        with self._lock:
            slot = self._slots.setdefault(host, threading.Semaphore(self.concurrency))
        with slot:
            with self._lock:
                start = max(time.monotonic(), self._next_start.get(host, 0.0))
                self._next_start[host] = start + self.interval
            time.sleep(max(0.0, start - time.monotonic()))
            yield


class Fetcher:
    """One HTTP client with its politeness state; use as a context manager or call ``close``."""

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        timeout = httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout)
        headers = {"User-Agent": policy.user_agent, "Accept-Encoding": "gzip, deflate, br"}
        self._client = httpx.Client(timeout=timeout, headers=headers, follow_redirects=False)
        self._gate = _HostGate(policy.host_interval, policy.host_concurrency)
        self._robots: dict[str, urllib.robotparser.RobotFileParser] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Fetcher:
        return cls(FetchPolicy.from_settings(settings))

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get(
        self,
        url: str,
        *,
        accept: frozenset[str] = HTML_TYPES,
        etag: str | None = None,
        last_modified: str | None = None,
    ) -> Page:
        """GET ``url`` following at most ``max_redirects`` redirects; raise ``FetchError`` with the reason."""
        headers = {"Accept": ", ".join(sorted(accept)) + ", */*;q=0.1"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = url
        for _ in range(self.policy.max_redirects + 1):
            self._check(current)
            page = self._with_retries(current, headers)
            if page.status not in REDIRECT_STATUSES:
                return self._accepted(url, page, accept)
            current = urljoin(current, page.final_url)
        raise FetchError(f"{url}: more than {self.policy.max_redirects} redirects")

    def _check(self, url: str) -> None:
        try:
            check_url(url, allow_private=self.policy.allow_private_hosts)
        except UnsafeURLError as error:
            raise FetchError(str(error)) from error
        if self.policy.respect_robots and not self._robots_allow(url):
            raise FetchError(f"{url}: disallowed by robots.txt for {self.policy.user_agent.split('/')[0]}")

    def _accepted(self, url: str, page: Page, accept: frozenset[str]) -> Page:
        if page.status == 304:
            return Page(url, page.final_url, 304, etag=page.etag, last_modified=page.last_modified)
        if page.status >= 400:
            raise FetchError(f"{url}: HTTP {page.status}")
        if page.media_type and page.media_type not in accept and accept:
            raise FetchError(f"{url}: unexpected content type {page.media_type} (wanted {', '.join(sorted(accept))})")
        return Page(
            url, page.final_url, page.status, page.body, page.media_type, page.charset, page.etag, page.last_modified
        )

    def _with_retries(self, url: str, headers: Mapping[str, str]) -> Page:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.policy.attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type((httpx.TransportError, _RetryableError)),
            reraise=True,
        )
        try:
            return retrying(self._request_once, url, headers)
        except _RetryableError as error:
            raise FetchError(f"{url}: {error} after {self.policy.attempts} attempts") from error
        except httpx.TimeoutException as error:
            raise FetchError(
                f"{url}: timed out ({type(error).__name__}) after {self.policy.attempts} attempts"
            ) from error
        except httpx.TransportError as error:
            raise FetchError(f"{url}: {type(error).__name__}: {error} after {self.policy.attempts} attempts") from error

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _RetryableError) and error.retry_after is not None:
            return min(error.retry_after, self.policy.max_retry_after)
        return float(min(self.policy.backoff_seconds * 2 ** (state.attempt_number - 1), 30.0))

    def _request_once(self, url: str, headers: Mapping[str, str]) -> Page:
        with self._gate.turn(urlsplit(url).netloc), self._client.stream("GET", url, headers=headers) as response:
            self._check_peer(url, response)
            status = response.status_code
            if status in RETRY_STATUSES:
                raise _RetryableError(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
            location = response.headers.get("Location", "")
            if status in REDIRECT_STATUSES:
                if not location:
                    raise FetchError(f"{url}: HTTP {status} redirect without a Location")
                return Page(url, location, status)
            body = self._read_capped(url, response) if status < 300 else b""
            media_type, charset = _content_type(response.headers.get("Content-Type"))
            etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
            return Page(url, str(response.url), status, body, media_type, charset, etag, modified)

    def _check_peer(self, url: str, response: httpx.Response) -> None:
        """Against DNS rebinding: the address actually connected to must be public too (not checked through
        a proxy, whose own address is the peer)."""
        if self.policy.allow_private_hosts or any(os.environ.get(name) for name in PROXY_VARIABLES):
            return
        stream = response.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        address = str(peer[0]) if peer else None
        reason = guard.non_public_reason(address) if address else None
        if reason:
            raise FetchError(f"refusing {url}: connected to {address} ({reason})")

    def _read_capped(self, url: str, response: httpx.Response) -> bytes:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.policy.max_bytes:
            raise FetchError(f"{url}: body of {int(declared):,} bytes is over the {self.policy.max_bytes:,}-byte limit")
        body = _read_at_most(response, self.policy.max_bytes + 1)  # one byte over tells it is too large
        if len(body) > self.policy.max_bytes:
            raise FetchError(f"{url}: body is over the {self.policy.max_bytes:,}-byte limit")
        return body

    def _robots_allow(self, url: str) -> bool:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        parser = self._robots.get(origin)
        if parser is None:
            parser = self._robots[origin] = self._load_robots(origin)
        return parser.can_fetch(self.policy.user_agent, url)

    def _load_robots(self, origin: str) -> urllib.robotparser.RobotFileParser:
        """RFC 9309: a 4xx means no rules; an unreachable robots.txt (5xx, network) means disallow all."""
        parser = urllib.robotparser.RobotFileParser(origin + "/robots.txt")
        try:
            with self._client.stream("GET", origin + "/robots.txt") as response:
                status = response.status_code
                body = _read_at_most(response, ROBOTS_MAX_BYTES) if status < 300 else b""
        except httpx.TransportError:
            status, body = 503, b""
        if status >= 500:
            parser.parse(["User-agent: *", "Disallow: /"])
        elif status < 400:
            parser.parse(body.decode("utf-8", "replace").splitlines())
        else:
            parser.parse([])
        return parser


def _read_at_most(response: httpx.Response, limit: int) -> bytes:
    """The first ``limit`` bytes of a body, without reading the rest."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def _content_type(value: str | None) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    media_type, _, parameters = value.partition(";")
    charset = next(
        (
            p.split("=", 1)[1].strip().strip('"')
            for p in parameters.split(";")
            if p.strip().lower().startswith("charset=")
        ),
        None,
    )
    return media_type.strip().lower() or None, charset


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
