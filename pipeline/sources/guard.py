"""The SSRF guard: a fetch may only reach public addresses.

Every host is resolved before each request, redirect hops included, and an
address that is loopback, private, link-local, multicast, reserved or
unspecified is refused with a clear error, unless private hosts are allowed
(``NEWSFLOW_ALLOW_PRIVATE_HOSTS=true``: tests and intranets).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import unquote, urlsplit


class UnsafeURLError(ValueError):
    """The URL may not be fetched: wrong scheme, no host, or a non-public address."""


def check_url(url: str, *, allow_private: bool) -> None:
    """Refuse ``url`` (``UnsafeURLError``, with the reason) unless it is http(s) to public addresses; a URL that
    does not even parse (a port out of range, a broken IPv6 literal, a host IDNA cannot encode) is refused too."""
    try:
        _check_url(url, allow_private=allow_private)
    except (ValueError, UnicodeError) as error:
        if isinstance(error, UnsafeURLError):
            raise
        raise UnsafeURLError(f"refusing {url}: not a valid URL ({error})") from error


def _check_url(url: str, *, allow_private: bool) -> None:
    """Raise ``UnsafeURLError`` unless ``url`` is http(s) and every address of its host is public."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise UnsafeURLError(f"refusing {url}: only http and https URLs are fetched")
    if not parts.hostname:
        raise UnsafeURLError(f"refusing {url}: no host name")
    _ = parts.port  # ValueError when out of range or not a number, private or not
    if allow_private:
        return
    literal = _ip_literal(parts.hostname)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = [literal] if literal else resolve(parts.hostname, port)
    for address in addresses:
        reason = non_public_reason(address)
        if reason:
            raise UnsafeURLError(
                f"refusing {url}: {parts.hostname} resolves to {address} ({reason}); "
                "set NEWSFLOW_ALLOW_PRIVATE_HOSTS=true to allow it"
            )


def _ip_literal(host: str) -> str | None:
    """An IPv6 or dotted-quad literal as written (an IPv6 zone, ``%25eth0`` in a URL, dropped); None for names."""
    candidate = unquote(host).split("%")[0]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise UnsafeURLError(f"cannot resolve {host}: {error.strerror}") from error
    except UnicodeError as error:  # a label IDNA cannot encode: empty, or over 63 characters
        raise UnsafeURLError(f"cannot resolve {host}: not a valid host name ({error})") from error
    return sorted({str(info[4][0]) for info in infos})


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def non_public_reason(address: str) -> str | None:
    """Why an address is not public, or None when it is. An IPv4 address carried inside an IPv6 one
    (mapped, NAT64, 6to4, Teredo) is judged by the IPv4 address it leads to."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        ip = _embedded_ipv4(ip) or ip
    checks = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("not globally routable", not ip.is_global),
    )
    return next((name for name, matches in checks if matches), None)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return ip.teredo[1] if ip.teredo is not None else None
