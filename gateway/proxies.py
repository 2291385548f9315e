"""Who the client is behind a reverse proxy: X-Forwarded-For, believed only from trusted peers.

uvicorn's own proxy handling is switched off (`gateway/__main__.py`): it trusts 127.0.0.1 by
default, which would let any local process pick the address its requests are counted under."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> list[Network]:
    """Addresses or CIDR blocks (a bare address is a one-address block); ValueError if bad."""
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()]


def is_trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The nearest address that is not a trusted proxy, reading X-Forwarded-For from the right
    (each proxy appends the peer it saw; entries further left are the client's own claims)."""
    if not forwarded_for or not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop if _is_address(hop) else peer
    return hops[0] if hops else peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
