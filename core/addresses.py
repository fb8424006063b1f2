"""The client's address: the socket peer's, unless the peer is a trusted proxy, in which
case the nearest address in X-Forwarded-For that is not itself a trusted proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(specs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(s, strict=False) for s in specs)


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def client_address(peer: str | None, forwarded_for: str | None,
                   proxies: tuple[Network, ...]) -> str:
    address = peer or "unknown"
    if not proxies or not forwarded_for or not _trusted(address, proxies):
        return address
    # Rightmost first: each trusted proxy appended the address it received from.
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return address  # a malformed chain: trust no part of it
        if not _trusted(hop, proxies):
            return hop
        address = hop
    return address
