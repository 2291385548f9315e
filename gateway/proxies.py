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
    ip = _address(address)
    return ip is not None and any(ip in network for network in networks)


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The nearest address that is not a trusted proxy, reading X-Forwarded-For from the right
    (each proxy appends the peer it saw; entries further left are the client's own claims)."""
    if not forwarded_for or not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            ip = _address(hop)
            return str(ip) if ip is not None else peer
    first = _address(hops[0]) if hops else None
    return str(first) if first is not None else peer


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as proxies write it: bare, `a.b.c.d:port` or `[v6]:port`; an IPv4 address
    mapped into IPv6 (`::ffff:a.b.c.d`, a dual-stack socket's peer) is the IPv4 address."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
