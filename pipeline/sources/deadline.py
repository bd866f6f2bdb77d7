"""A total deadline for a fetch, enforced on every socket operation.

httpx has timeouts per operation only: a server that sends one byte a second resets the read timeout with
each byte and keeps a fetch alive for ever, in the headers as well as the body. Here the client's transport
runs httpcore over a network backend whose streams wait, on every connect, TLS handshake, read and write, no
longer than what is left of the deadline of the fetch in progress (a context variable, so each thread's fetch
has its own). When nothing is left the operation raises httpcore's timeout, which httpx reports as its own.
A host with several addresses is connected to one address at a time, each attempt clipped anew.

``DeadlineTransport`` speaks only the public APIs of httpx and httpcore: httpx's own transport builds its
connection pool without a way to choose the network backend.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

Clock = Callable[[], float]


@dataclass(frozen=True)
class Deadline:
    """The moment (on ``clock``) by which a fetch must be over, and how long it was given."""

    at: float
    seconds: float
    clock: Clock

    def remaining(self) -> float:
        return self.at - self.clock()

    def expired(self) -> bool:
        return self.remaining() <= 0


_current: ContextVar[Deadline | None] = ContextVar("newsflow_fetch_deadline", default=None)


@contextmanager
def fetch_deadline(seconds: float, clock: Clock) -> Iterator[Deadline]:
    """Every socket operation in this block, on this thread, ends by ``seconds`` from now. An outer deadline
    that comes sooner (a robots.txt fetched for a page) stays in force."""
    outer = _current.get()
    deadline = Deadline(clock() + seconds, seconds, clock)
    if outer is not None and outer.at <= deadline.at:
        deadline = outer
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def current_deadline() -> Deadline | None:
    return _current.get()


def _clipped(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the current deadline; ``expired`` when nothing is left."""
    deadline = _current.get()
    if deadline is None:
        return timeout
    left = deadline.remaining()
    if left <= 0:
        raise expired(f"over the {deadline.seconds:g} s total deadline")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clipped(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clipped(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, _clipped(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Try each address of ``host`` in turn, each connect waiting no longer than what is left of the
        deadline (``socket.create_connection`` would give every address the whole timeout)."""
        failure: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in _addresses(host, port):
            clipped = _clipped(timeout, httpcore.ConnectTimeout)
            try:
                return _DeadlineStream(self._inner.connect_tcp(address, port, clipped, local_address, socket_options))
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def _addresses(host: str, port: int) -> list[str]:
    """The addresses of ``host`` in resolver order, without repeats (an IP literal is its own address)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class DeadlineTransport(httpx.BaseTransport):
    """httpx's transport over an httpcore pool whose sockets keep the current deadline."""

    def __init__(self) -> None:
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(), network_backend=_DeadlineBackend())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = self._pool.handle_request(core_request)
        stream = _ResponseStream(response)
        return httpx.Response(response.status, headers=response.headers, stream=stream, extensions=response.extensions)

    def close(self) -> None:
        self._pool.close()


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors():
            yield from self._response.iter_stream()

    def close(self) -> None:
        self._response.close()


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """httpcore's errors as httpx's errors of the same name (httpx defines one for each)."""
    try:
        yield
    except Exception as error:
        if not type(error).__module__.startswith("httpcore"):
            raise
        translated: type[httpx.TransportError] = getattr(httpx, type(error).__name__, httpx.TransportError)
        raise translated(str(error) or type(error).__name__) from error
