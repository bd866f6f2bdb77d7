"""Polite, bounded HTTP GETs through httpx, with retries by tenacity.

Every fetch: the SSRF guard on each hop, robots.txt (RFC 9309, by Protego), a per-host gap between requests
and a cap on concurrent ones, at most ``max_redirects`` redirects, and a total deadline (``deadline``) that
covers every hop, attempt and wait, enforced on every socket operation (``deadline.py``) beside the connect
and read timeouts. The content type is checked from the headers before any body is read; the body is
decoded a piece at a time (gzip, deflate, br, and stacks of them: ``decoding.py``) and the size cap counts
the decoded bytes as they are made, so a bomb stops at the cap. Connection errors, 429 and 5xx are retried
with exponential backoff, honouring a Retry-After up to ``max_retry_after``; a longer one defers the URL to
the next poll (``FetchDeferredError``). Conditional GETs send ETag and Last-Modified and return
``not_modified`` on 304.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx
import tenacity
from protego import Protego

import pipeline
from pipeline.errors import FetchDeferredError, FetchError
from pipeline.models import without_credentials
from pipeline.settings import Settings
from pipeline.sources import decoding, guard
from pipeline.sources.deadline import Clock, DeadlineTransport, current_deadline, fetch_deadline
from pipeline.sources.guard import UnsafeURLError, check_url

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
FEED_TYPES = frozenset(
    {"application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml", "text/xml"}
)
ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks parsers to read at least 500 KiB
ACCEPTED_ENCODINGS = "gzip, deflate, br"
MAX_URL_CHARS = 8192  # per hop: a Location of 65,000 characters made robots.txt matching take seconds
MAX_VALIDATOR_CHARS = 1024
RETRY_AFTER_SECONDS = re.compile(r"[0-9]{1,12}")


class _CredentialsHidden(logging.Filter):
    """httpx logs each request's URL at INFO, user name and password included: they are shown as ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "@" in (message := record.getMessage()):
            record.msg, record.args = without_credentials(message), None
        return True


logging.getLogger("httpx").addFilter(_CredentialsHidden())


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
    deadline: float = 30.0  # the whole fetch: every hop, attempt and wait, robots.txt included
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5
    attempts: int = 4
    backoff_seconds: float = 1.0
    max_retry_after: float = 60.0
    host_interval: float = 1.0
    host_concurrency: int = 2
    respect_robots: bool = True
    allow_private_hosts: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        return cls(
            user_agent=settings.user_agent or cls.user_agent,
            read_timeout=settings.fetch_timeout,
            deadline=settings.fetch_deadline,
            max_retry_after=settings.fetch_max_retry_after,
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
    links: str | None = None  # the response's Link headers, joined by commas (WebSub discovery)

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
    def turn(self, url: str, sleep: Callable[[float], None]) -> Iterator[None]:
        """Wait for a slot and the host's next start, neither beyond the current fetch's deadline."""
        host, deadline = urlsplit(url).netloc, current_deadline()
        with self._lock:
            slot = self._slots.setdefault(host, threading.Semaphore(self.concurrency))
        if not slot.acquire(timeout=None if deadline is None else max(0.0, deadline.remaining())):
            raise _timed_out(url, "waiting for a turn at this host")
        try:
            with self._lock:
                start = max(time.monotonic(), self._next_start.get(host, 0.0))
                if deadline is not None and start - time.monotonic() >= deadline.remaining():
                    raise _timed_out(url, "waiting for a turn at this host")
                self._next_start[host] = start + self.interval
            if start > time.monotonic():
                sleep(start - time.monotonic())
            yield
        finally:
            slot.release()


@dataclass(frozen=True)
class _Want:
    """What a caller accepts of one fetch: media types (empty: any), the body cap and what to do beyond it,
    attempts, and whether robots.txt is asked first."""

    accept: frozenset[str]
    max_bytes: int
    attempts: int
    truncate: bool = False
    ask_robots: bool = True


class Fetcher:
    """One HTTP client with its politeness state; use as a context manager or call ``close``. ``sleep`` and
    ``clock`` are the waits between attempts and the deadline's time (real ones unless a test gives others)."""

    def __init__(
        self, policy: FetchPolicy, *, sleep: Callable[[float], None] = time.sleep, clock: Clock = time.monotonic
    ) -> None:
        self.policy = policy
        self._sleep, self._clock = sleep, clock
        timeout = httpx.Timeout(policy.read_timeout, connect=policy.connect_timeout)
        headers = {"User-Agent": policy.user_agent, "Accept-Encoding": ACCEPTED_ENCODINGS}
        self._client = httpx.Client(
            timeout=timeout, headers=headers, follow_redirects=False, transport=DeadlineTransport()
        )
        self._gate = _HostGate(policy.host_interval, policy.host_concurrency)
        self._robots: dict[str, _Robots] = {}

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
        """GET ``url`` following at most ``max_redirects`` redirects, all within the total deadline; raise
        ``FetchError`` with the reason (``FetchDeferredError`` when the server asks to come back later)."""
        headers = {"Accept": ", ".join(sorted(accept)) + ", */*;q=0.1"}
        if _sendable(etag):
            headers["If-None-Match"] = str(etag)
        if _sendable(last_modified):
            headers["If-Modified-Since"] = str(last_modified)
        want = _Want(accept, self.policy.max_bytes, self.policy.attempts)
        with fetch_deadline(self.policy.deadline, self._clock):
            return self._accepted(url, self._follow(url, headers, want))

    def _follow(self, url: str, headers: Mapping[str, str], want: _Want) -> Page:
        """The first response that is not a redirect, after at most ``max_redirects`` of them. What a hostile
        header or URL makes the libraries raise (a Location that does not parse, a date past the year 9999)
        is a ``FetchError`` too."""
        current = url
        try:
            for _ in range(self.policy.max_redirects + 1):
                if len(current) > MAX_URL_CHARS:
                    raise _failure(
                        current[:200] + "…", f"a URL of {len(current):,} characters (at most {MAX_URL_CHARS:,})"
                    )
                self._check(current, want)
                _check_deadline(current, "asking robots.txt")
                page = self._with_retries(current, headers, want)
                if page.status not in REDIRECT_STATUSES:
                    return page
                current = urljoin(current, page.final_url)
        except (ValueError, UnicodeError, OverflowError, httpx.InvalidURL) as error:
            raise _failure(current, f"{type(error).__name__}: {error}") from error
        raise _failure(url, f"more than {self.policy.max_redirects} redirects")

    def _check(self, url: str, want: _Want) -> None:
        try:
            check_url(url, allow_private=self.policy.allow_private_hosts)
        except UnsafeURLError as error:
            raise FetchError(str(error), reason=str(error)) from error
        if self.policy.respect_robots and want.ask_robots:
            self._robots_for(url).check(url, self.policy.user_agent.split("/")[0])

    def _accepted(self, url: str, page: Page) -> Page:
        if page.status == 304:
            return Page(url, page.final_url, 304, etag=page.etag, last_modified=page.last_modified)
        if page.status >= 400:
            raise _failure(url, f"HTTP {page.status}")
        return replace(page, url=url)

    def _with_retries(self, url: str, headers: Mapping[str, str], want: _Want) -> Page:
        retrying = tenacity.Retrying(
            stop=self._stop(want.attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type((httpx.TransportError, _RetryableError)),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(self._request_once, url, headers, want)
        except (httpx.TransportError, _RetryableError) as error:
            raise self._gave_up(url, error, retrying.statistics.get("attempt_number", 1)) from error

    def _stop(self, attempts: int) -> Callable[[tenacity.RetryCallState], bool]:
        """Stop after ``attempts``, when the deadline has passed, or when the wait would outlast it."""

        def stop(state: tenacity.RetryCallState) -> bool:
            deadline = current_deadline()
            over = deadline is not None and deadline.remaining() <= state.upcoming_sleep
            return state.attempt_number >= attempts or over

        return stop

    def _gave_up(self, url: str, error: Exception, attempts: int) -> FetchError:
        deadline = current_deadline()
        tries = f"after {attempts} attempt{'s' if attempts > 1 else ''}"
        if deadline is not None and deadline.expired():
            return _failure(url, f"timed out: over the {deadline.seconds:g} s total deadline ({tries})")
        if isinstance(error, httpx.TimeoutException):
            return _failure(url, f"timed out ({type(error).__name__}) {tries}")
        if isinstance(error, httpx.TransportError):
            return _failure(url, f"{type(error).__name__}: {error} {tries}")
        return _failure(url, f"{error} {tries}")

    def _wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _RetryableError) and error.retry_after is not None:
            return error.retry_after
        return float(min(self.policy.backoff_seconds * 2 ** (state.attempt_number - 1), 30.0))

    def _request_once(self, url: str, headers: Mapping[str, str], want: _Want) -> Page:
        with self._gate.turn(url, self._sleep):
            return self._exchange(url, headers, want)

    def _exchange(self, url: str, headers: Mapping[str, str], want: _Want) -> Page:
        """One request and its response, once the host's gate has let it through."""
        with self._client.stream("GET", url, headers=headers, timeout=self._timeout()) as response:
            self._check_peer(url, response)
            status = response.status_code
            if status in RETRY_STATUSES:
                raise self._retry_or_defer(url, status, _retry_after(response.headers.get("Retry-After")))
            location = response.headers.get("Location", "")
            if status in REDIRECT_STATUSES:
                if not location:
                    raise _failure(url, f"HTTP {status} redirect without a Location")
                return Page(url, location, status)
            media_type, charset = _content_type(response.headers.get("Content-Type"))
            if status < 300 and media_type and want.accept and media_type not in want.accept:
                wanted = ", ".join(sorted(want.accept))
                raise _failure(url, f"unexpected content type {media_type} (wanted {wanted})")
            body = self._read_capped(url, response, want) if status < 300 else b""
            etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
            links = ", ".join(response.headers.get_list("Link"))[:MAX_URL_CHARS * 2] or None
            return Page(url, str(response.url), status, body, media_type, charset, etag, modified, links)

    def _timeout(self) -> httpx.Timeout:
        """The policy's timeouts, with the wait for a pooled connection no longer than the deadline left."""
        deadline = current_deadline()
        left = self.policy.read_timeout if deadline is None else max(0.001, deadline.remaining())
        return httpx.Timeout(self.policy.read_timeout, connect=self.policy.connect_timeout, pool=left)

    def _retry_or_defer(self, url: str, status: int, retry_after: float | None) -> Exception:
        """A retry, or a deferral when the server asks for a wait longer than the cap or the deadline left."""
        deadline = current_deadline()
        left = deadline.remaining() if deadline is not None else float("inf")
        if retry_after is not None and (retry_after > self.policy.max_retry_after or retry_after >= left):
            limit = min(self.policy.max_retry_after, max(0.0, left))
            return FetchDeferredError(
                f"deferred to the next poll: the server asked to wait {retry_after:,.0f} s (HTTP {status}); "
                f"this fetch could wait at most {limit:,.0f} s"
            )
        return _RetryableError(f"HTTP {status}", retry_after)

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
            raise _failure(url, f"refusing: connected to {address} ({reason})")

    def _read_capped(self, url: str, response: httpx.Response, want: _Want) -> bytes:
        """The decoded body, counted as it is decoded: an error past ``max_bytes`` (or the body cut there)."""
        declared = response.headers.get("Content-Length", "")
        if not want.truncate and declared.isdigit() and int(declared) > want.max_bytes:
            raise _failure(url, f"body of {int(declared):,} bytes is over the {want.max_bytes:,}-byte limit")
        body = bytearray()
        try:
            pieces = decoding.decoded(
                response.iter_raw(),
                response.headers.get("Content-Encoding"),
                check=lambda: _check_deadline(url),
                intermediate_limit=2 * want.max_bytes + decoding.PIECE,
            )
            for piece in pieces:
                body += piece
                if len(body) > want.max_bytes:
                    if want.truncate:
                        return bytes(body[: want.max_bytes])
                    raise _failure(url, f"body is over the {want.max_bytes:,}-byte limit")
        except decoding.DecodingError as error:
            raise _failure(url, str(error)) from error
        return bytes(body)

    def _robots_for(self, url: str) -> _Robots:
        """The origin's robots.txt, read once per Fetcher; except that one that timed out in what was left of
        another fetch's deadline (less than half of it) is asked again next time, not held against the site."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin in self._robots:
            return self._robots[origin]
        deadline = current_deadline()
        fair_chance = deadline is None or deadline.remaining() >= deadline.seconds / 2
        robots = self._load_robots(origin)
        if fair_chance or not robots.timed_out:
            self._robots[origin] = robots
        return robots

    def _load_robots(self, origin: str) -> _Robots:
        """RFC 9309: rules from a 2xx; none for a 4xx; everything disallowed, for now, when it is unreachable
        (5xx, a network error, the deadline), with the reason kept for the error."""
        want = _Want(frozenset(), ROBOTS_MAX_BYTES, attempts=1, truncate=True, ask_robots=False)
        try:
            page = self._follow(origin + "/robots.txt", {}, want)
        except FetchDeferredError:
            raise  # the site asks us to come back later: the page is deferred too, and nothing is cached
        except FetchError as error:
            expired = (deadline := current_deadline()) is not None and deadline.expired()
            return _Robots(None, f"robots.txt unreachable: {error.reason}", timed_out=expired)
        if page.status >= 500:
            return _Robots(None, f"robots.txt unreachable: HTTP {page.status}")
        rules = page.body.decode("utf-8-sig", "replace") if page.status < 400 else ""  # a BOM is no rule
        return _Robots(Protego.parse(rules), None)


@dataclass(frozen=True)
class _Robots:
    """One origin's robots.txt: its rules, or why it could not be had (everything then disallowed)."""

    rules: Protego | None
    unreachable: str | None
    timed_out: bool = False

    def check(self, url: str, agent: str) -> None:
        if self.rules is None:
            raise _failure(url, self.unreachable or "robots.txt unreachable")
        if not self.rules.can_fetch(url, agent):
            raise _failure(url, f"disallowed by robots.txt for {agent}")


def _failure(url: str, reason: str) -> FetchError:
    return FetchError(f"{url}: {reason}", reason=reason)


def _timed_out(url: str, doing: str) -> FetchError:
    deadline = current_deadline()
    seconds = f"{deadline.seconds:g} s " if deadline is not None else ""
    return _failure(url, f"timed out: over the {seconds}total deadline ({doing})")


def _check_deadline(url: str, doing: str = "reading the body") -> None:
    """Raise the timeout when the current fetch's deadline has passed."""
    deadline = current_deadline()
    if deadline is not None and deadline.expired():
        raise _timed_out(url, doing)


def _sendable(validator: str | None) -> bool:
    """An ETag or Last-Modified worth sending back: visible ASCII, of a sane length (a server once sent
    ``"caf\xe9"``: sent back, it failed every later poll before a request went out)."""
    if not validator:
        return False
    return len(validator) <= MAX_VALIDATOR_CHARS and validator.isascii() and validator.isprintable()


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
    """Retry-After as seconds: a number of ASCII digits, or an HTTP date; None when it is neither."""
    text = (value or "").strip()
    if RETRY_AFTER_SECONDS.fullmatch(text):
        return float(text)
    try:
        return max(0.0, parsedate_to_datetime(text).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
