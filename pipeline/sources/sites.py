"""Sites: which registrable domain a URL belongs to, so a page can only name itself within its own site.

A site is the registrable domain of the host (the public suffix plus one label, "eTLD+1"), by the Public Suffix
List including its private section, so ``a.example.co.uk`` and ``b.example.co.uk`` are one site, while
``example.co.uk`` and ``other.co.uk``, or ``user1.github.io`` and ``user2.github.io``, are two. The list is the
snapshot bundled with ``tld`` (read offline, never downloaded), plus the multi-tenant hosts it lacks
(``data/tenant_suffixes.txt``: ``wordpress.com``, ``substack.com``, ``medium.com``, ``tumblr.com``, …), whose
tenants are sites of their own. Hosts are compared case-folded, without a trailing dot and with IDNs and
their punycode as one (UTS #46). An IP literal is a site of its own, matched by address (``[::1]`` and
``[0:0::1]`` are one); spellings that only browsers read as addresses (``2130706433``, ``0x7f.1``) are hosts
of their own, so they match nothing but themselves (the safe side). A host under no known suffix, or a
public suffix itself, is only its own site. Ports and schemes are not part of a site.
"""

from __future__ import annotations

import ipaddress
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import idna
from tld import get_fld

TENANT_SUFFIXES = Path(__file__).parent / "data" / "tenant_suffixes.txt"


def same_site(url: str, other: str) -> bool:
    """Both URLs have a host, and it is on the same site."""
    site = site_of(url)
    return site is not None and site == site_of(other)


def site_of(url: str) -> str | None:
    """The site of an absolute URL (see the module's description); None without a usable host."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    host = (host or "").rstrip(".")
    if not host:
        return None
    address = _ip_address(host)
    if address is not None:
        return address
    unicode_host = _unicode_host(host)
    if unicode_host is None:
        return None
    tenant = _tenant_site(unicode_host)
    if tenant is not None:
        return tenant
    registrable = get_fld(unicode_host, fail_silently=True, fix_protocol=True, search_private=True)
    return str(registrable) if registrable else unicode_host


def _tenant_site(host: str) -> str | None:
    """The tenant's site (one label under the suffix) for a host under a packaged multi-tenant suffix; the host
    itself when it is such a suffix; None for any other host."""
    labels = host.split(".")
    for start in range(len(labels)):
        if ".".join(labels[start:]) in tenant_suffixes():
            return ".".join(labels[max(0, start - 1) :])
    return None


@cache
def tenant_suffixes() -> frozenset[str]:
    """The packaged multi-tenant suffixes (``data/tenant_suffixes.txt``)."""
    lines = TENANT_SUFFIXES.read_text(encoding="utf-8").splitlines()
    return frozenset(line.split("#", 1)[0].strip().lower() for line in lines if line.split("#", 1)[0].strip())


def _ip_address(host: str) -> str | None:
    """The address in its canonical spelling when ``host`` is an IPv4 or IPv6 literal."""
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return None


def _unicode_host(host: str) -> str | None:
    """The host case-folded and in Unicode (IDNA with UTS #46 mapping), so an IDN and its punycode are one;
    an ASCII host IDNA refuses (an underscore) as it is; None for a non-ASCII host IDNA refuses."""
    try:
        return str(idna.decode(host, uts46=True))
    except (idna.IDNAError, UnicodeError, ValueError):
        return host.lower() if host.isascii() else None
