"""A hostile HTTP server on 127.0.0.1, written on raw sockets so it can do what no well-behaved server does:
trickle headers or bodies one byte at a time, lie about lengths, stack content encodings, send bombs.

Each path is answered by a ``Behaviour``: a function that gets the connected socket after the request head
was read, and writes whatever it likes. ``respond`` builds the usual ones. The server also counts how many
body bytes each behaviour managed to send before the client hung up, so a test can tell that a body was
never read.

``python -m tests.hostile URL MAX_BYTES DEADLINE`` (0: the default deadline) fetches one URL in a process of
its own and prints what it cost (``measured_fetch``), so peak memory is measured away from the test process.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import brotli

Behaviour = Callable[[socket.socket], None]
ONE_GIB = 1024 * 1024 * 1024
ZEROS = bytes(1024 * 1024)


class HostileServer:
    """A threaded raw-socket HTTP/1.1 server; ``route`` a path to a behaviour, ``url`` to reach it."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._routes: dict[str, Behaviour] = {}
        self.requests: list[str] = []
        self.sent: dict[str, int] = {}
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, behaviour: Behaviour) -> None:
        self._routes[path] = behaviour

    def close(self) -> None:
        self._stopped.set()
        self._listener.close()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            path = _request_path(connection)
            if path is None:
                return
            self.requests.append(path)
            behaviour = self._routes.get(path.split("?")[0], respond(404, b"not here"))
            counting = _CountingSocket(connection)
            try:
                behaviour(counting)  # type: ignore[arg-type]
            except OSError:
                pass  # the client hung up: that is what a hostile server expects
            finally:
                self.sent[path] = self.sent.get(path, 0) + counting.body_bytes


class _CountingSocket:
    """The socket a behaviour writes to, counting what follows the blank line that ends the headers."""

    def __init__(self, connection: socket.socket) -> None:
        self._connection = connection
        self._head_done = False
        self.body_bytes = 0

    def sendall(self, data: bytes) -> None:
        self._connection.sendall(data)
        if self._head_done:
            self.body_bytes += len(data)
        elif b"\r\n\r\n" in data:
            self._head_done = True
            self.body_bytes += len(data.split(b"\r\n\r\n", 1)[1])

    def __getattr__(self, name: str) -> object:
        return getattr(self._connection, name)


def _request_path(connection: socket.socket) -> str | None:
    connection.settimeout(10)
    head = b""
    try:
        while b"\r\n\r\n" not in head and len(head) < 65536:
            chunk = connection.recv(4096)
            if not chunk:
                return None
            head += chunk
    except OSError:
        return None
    parts = head.split(b" ", 2)
    return parts[1].decode("latin-1") if len(parts) > 1 else None


def head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def respond(status: int, body: bytes, headers: dict[str, str] | None = None) -> Behaviour:
    """An honest response: the body with its true length."""
    fields = {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(len(body)), "Connection": "close"}
    fields.update(headers or {})

    def behave(connection: socket.socket) -> None:
        connection.sendall(head(status, fields) + body)

    return behave


def trickle_body(interval: float, headers: dict[str, str] | None = None) -> Behaviour:
    """Headers at once, then one body byte every ``interval`` seconds, for ever (no length, no end)."""
    fields = {"Content-Type": "text/html", "Connection": "close", **(headers or {})}

    def behave(connection: socket.socket) -> None:
        connection.sendall(head(200, fields))
        while True:
            connection.sendall(b"a")
            time.sleep(interval)

    return behave


def trickle_head(interval: float) -> Behaviour:
    """The status line and headers one byte every ``interval`` seconds, never finishing."""

    def behave(connection: socket.socket) -> None:
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n")
        while True:
            connection.sendall(b"X")
            time.sleep(interval)

    return behave


def stall_after_head() -> Behaviour:
    """Headers promising a body, then nothing at all (the connection stays open)."""

    def behave(connection: socket.socket) -> None:
        connection.sendall(head(200, {"Content-Type": "text/html", "Content-Length": "1000"}))
        time.sleep(3600)

    return behave


def lying_length(declared: int, body: bytes) -> Behaviour:
    """A Content-Length that is not the length of what follows, then the connection closed."""
    return respond(200, body, {"Content-Length": str(declared)})


def endless_body(content_type: str) -> Behaviour:
    """As fast as the client reads, for ever: no length, a type the client did not ask for."""

    def behave(connection: socket.socket) -> None:
        connection.sendall(head(200, {"Content-Type": content_type, "Connection": "close"}))
        while True:
            connection.sendall(ZEROS)

    return behave


@contextmanager
def hostile_server() -> Iterator[HostileServer]:
    server = HostileServer()
    try:
        yield server
    finally:
        server.close()


# Bombs: about a gibibyte of zeros, compressed once or several times over. Made once and kept on disk.


def bomb(encodings: tuple[str, ...], cache: Path, size: int = ONE_GIB) -> bytes:
    """``size`` zeros encoded by each of ``encodings`` in turn (the order of a Content-Encoding header)."""
    path = cache / f"bomb-{size}-{'-'.join(encodings)}"
    if path.exists():
        return path.read_bytes()
    data = _compress_zeros(encodings[0], size)
    for encoding in encodings[1:]:
        data = _compress(encoding, data)
    path.write_bytes(data)
    return data


def _compress_zeros(encoding: str, size: int) -> bytes:
    if encoding == "br":
        compressor = brotli.Compressor(quality=5)
        parts = [compressor.process(ZEROS) for _ in range(size // len(ZEROS))]
        return b"".join(parts) + compressor.finish()
    wbits = {"gzip": 31, "deflate": 15}[encoding]
    stream = zlib.compressobj(9, zlib.DEFLATED, wbits)
    parts = [stream.compress(ZEROS) for _ in range(size // len(ZEROS))]
    return b"".join(parts) + stream.flush()


def _compress(encoding: str, data: bytes) -> bytes:
    if encoding == "br":
        return bytes(brotli.compress(data))
    if encoding == "gzip":
        return gzip.compress(data, 9)
    return zlib.compress(data, 9)


def bomb_response(encodings: tuple[str, ...], cache: Path) -> Behaviour:
    return respond(200, bomb(encodings, cache), {"Content-Encoding": ", ".join(encodings)})


def measured_fetch(url: str, max_bytes: int, deadline: float) -> dict[str, object]:
    """One fetch as ``python -m tests.hostile URL MAX_BYTES DEADLINE`` does it in a child process: the error,
    the seconds it took, and how far the fetch raised the peak memory (in MiB) above what it was before."""
    import resource

    from pipeline.errors import FetchError
    from pipeline.sources.http import Fetcher, FetchPolicy

    limits: dict[str, Any] = {"max_bytes": max_bytes, **({"deadline": deadline} if deadline else {})}
    policy = FetchPolicy(allow_private_hosts=True, respect_robots=False, attempts=1, **limits)
    with Fetcher(policy) as fetcher:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        try:
            page = fetcher.get(url)
            error = None if page else "no page"
        except FetchError as failure:
            error = str(failure)
        seconds = time.monotonic() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"error": error, "seconds": round(seconds, 2), "peak_mib": round((peak - before) / 1024, 1)}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(measured_fetch(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))))


def chunked(parts: list[bytes], pause: float, headers: dict[str, str] | None = None) -> Behaviour:
    """A chunked body sent as ``parts``, ``pause`` seconds apart, so the client reads them one by one."""
    fields = {"Content-Type": "text/html", "Transfer-Encoding": "chunked", "Connection": "close", **(headers or {})}

    def behave(connection: socket.socket) -> None:
        connection.sendall(head(200, fields))
        for part in parts:
            connection.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            time.sleep(pause)
        connection.sendall(b"0\r\n\r\n")

    return behave


def delayed(seconds: float, behaviour: Behaviour) -> Behaviour:
    """``behaviour`` after ``seconds`` of silence."""

    def behave(connection: socket.socket) -> None:
        time.sleep(seconds)
        behaviour(connection)

    return behave


def endless_after(body: bytes, content_encoding: str) -> Behaviour:
    """A complete encoded body, then zeros for ever (no length): a client must stop where the coding ends."""

    def behave(connection: socket.socket) -> None:
        fields = {"Content-Type": "text/html", "Content-Encoding": content_encoding, "Connection": "close"}
        connection.sendall(head(200, fields) + body + ZEROS[:4096])
        while True:
            connection.sendall(ZEROS)
            time.sleep(0.01)

    return behave


def empty_members_in_br(count: int) -> bytes:
    """``count`` empty gzip members (20 bytes each, nothing inside), the lot compressed by brotli: a few hundred
    bytes that make no output at all, only work."""
    member = gzip.compress(b"", mtime=0)
    compressor = brotli.Compressor(quality=5)
    batch = member * 52428
    parts = [compressor.process(batch) for _ in range(max(1, count // 52428))]
    return b"".join(parts) + compressor.finish()


@contextmanager
def blackhole() -> Iterator[int]:
    """A port on 127.0.0.1 whose accept queue is full, so a connect waits until it times out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    try:
        yield listener.getsockname()[1]
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
