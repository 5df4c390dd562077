"""Which network addresses a link may reach.

Always refused: link-local addresses (169.254.0.0/16 and fe80::/10, where cloud metadata
services answer at 169.254.169.254), the other known metadata addresses, multicast,
unspecified and reserved ones. Private and loopback addresses are allowed (datasets often
live on an in-house server, and the tests serve on 127.0.0.1) unless `public_only`
(`--public-links-only` / `$CAS_PUBLIC_LINKS_ONLY=1`) refuses them too.

A URL's host is checked when it is imported if it is an address, and when it is fetched
after name resolution (again at most once a minute per name), so a name that points at a
refused address is refused too.
"""

from __future__ import annotations

import functools
import ipaddress
import threading
import time

from cas.errors import InvalidInput
from cas.locks import renew_after_fork

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "instance-data"})
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))


def refusal(address: str, public_only: bool) -> str | None:
    """Why `address` may not be reached by a link, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast or ip.is_unspecified:
        return "not a unicast host address"
    if ip.is_loopback or ip.is_private:
        return "a private or loopback address (refused with --public-links-only)" if public_only else None
    if ip.is_reserved:
        return "not a unicast host address"
    if public_only and not ip.is_global:
        return "not a public address (refused with --public-links-only)"
    return None


def check_host_literal(host: str, public_only: bool, label: str, url: str) -> None:
    """At import: a host given as an address (or a metadata name) is checked without any lookup."""
    why = _literal_refusal(host, public_only)
    if why:
        raise InvalidInput(label, f"link host {host} is {why}: {url[:200]}")


@functools.lru_cache(maxsize=4096)
def _literal_refusal(host: str, public_only: bool) -> str | None:
    """Why a host as written in a URL is refused, or None; cached, as a list of a million URLs
    usually names a handful of hosts."""
    if host.lower().rstrip(".") in METADATA_HOSTS:
        return "a cloud metadata service"
    try:
        return refusal(host, public_only)
    except ValueError:
        return None  # a name: checked after resolution, when fetched


VERDICT_SECONDS = 60.0  # a name's verdict is kept this long: no lookup per ranged GET
_verdicts: dict[tuple[str, int, bool], tuple[float, str | None]] = {}
_verdicts_lock = threading.Lock()
renew_after_fork(globals(), "_verdicts_lock")


def resolved_refusal(host: str, port: int, public_only: bool) -> str | None:
    """At fetch: why the name may not be reached (one of its addresses is refused), or None."""
    key = (host, port, public_only)
    now = time.monotonic()
    with _verdicts_lock:
        hit = _verdicts.get(key)
    if hit is not None and now - hit[0] < VERDICT_SECONDS:
        return hit[1]
    if host.lower().rstrip(".") in METADATA_HOSTS:
        return f"{host} is a cloud metadata service"
    import socket  # loaded by the first fetch: an import of files resolves no name
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return None  # the request itself fails and says so; nothing is learnt
    why = None
    for info in infos:
        reason = refusal(str(info[4][0]), public_only)
        if reason is not None:
            why = f"{host} resolves to {info[4][0]}, {reason}"
            break
    with _verdicts_lock:
        if len(_verdicts) > 4096:
            _verdicts.clear()
        _verdicts[key] = (now, why)
    return why

