"""Where the service may send requests of its own (webhooks): public addresses only.

A URL given by a tenant could otherwise reach what only the service can reach: the
database, the broker's management UI, a cloud's metadata address. So every address a host
name resolves to must be public (not private, loopback, link-local, multicast, reserved or
unspecified), unless it lies in one of `OUTBOUND_ALLOW_NETWORKS`. The request then goes to
the address that was checked, never to a second lookup of the name (which could answer
differently), and redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from server.settings import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2000
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RefusedUrl(ValueError):
    """A URL the service will not send to; the message says why."""


class HostNotFound(OSError):
    """The URL's host name does not resolve now (it may later)."""


@dataclass(frozen=True)
class Destination:
    """A URL and the address checked for it."""

    url: str
    scheme: str
    host: str
    port: int
    address: IPAddress


def check_syntax(url: str) -> tuple[str, str, int]:
    """An absolute http(s) URL with a host: its scheme, host and port."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise RefusedUrl(f"not a URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise RefusedUrl("the URL must start with https:// or http://")
    if not parts.hostname:
        raise RefusedUrl("the URL has no host")
    if parts.username or parts.password:
        raise RefusedUrl("the URL must not carry a user name or password")
    return scheme, parts.hostname, port or _DEFAULT_PORTS[scheme]


def refusal(address: IPAddress, allowed: Sequence[IPNetwork]) -> str | None:
    """Why this address may not be reached, or None if it may."""
    if any(address in network for network in allowed if network.version == address.version):
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return refusal(address.ipv4_mapped, allowed)
    for kind in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return f"{address} is a {kind.replace('_', '-')} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def check_literal(url: str, allowed: Sequence[IPNetwork]) -> None:
    """Refuse at once a URL whose host is an address that may not be reached (a name is
    resolved only when the request is made)."""
    _, host, _ = check_syntax(url)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if reason := refusal(address, allowed):
        raise RefusedUrl(f"{reason}; OUTBOUND_ALLOW_NETWORKS can allow it")


def resolve(url: str, allowed: Sequence[IPNetwork]) -> Destination:
    """The URL's host resolved, every address it has checked; the first one to use."""
    scheme, host, port = check_syntax(url)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise HostNotFound(f"{host} does not resolve: {error}") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    if not addresses:
        raise HostNotFound(f"{host} has no address")
    for address in addresses:
        if reason := refusal(address, allowed):
            raise RefusedUrl(f"{host}: {reason}; OUTBOUND_ALLOW_NETWORKS can allow it")
    return Destination(url, scheme, host, port, addresses[0])


def pinned(destination: Destination) -> tuple[str, dict[str, str], dict[str, Any]]:
    """What a request to the checked address needs: the URL with the address in place of
    the name, the Host header, and the TLS name (SNI and the certificate's check) as an
    httpx extension. The name is never looked up again."""
    parts = urlsplit(destination.url)
    address = destination.address
    literal = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    url = urlunsplit(parts._replace(netloc=f"{literal}:{destination.port}"))
    host = parts.netloc.rsplit("@", 1)[-1]
    return url, {"host": host}, {"sni_hostname": destination.host}
