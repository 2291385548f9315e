"""Dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from gateway.proxies import client_address
from gateway.services import Services


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def client_key(request: Request) -> str:
    """The address limits count under: the peer, or behind a trusted proxy the client it names."""
    peer = request.client.host if request.client else "unknown"
    trusted = services_of(request).trusted_proxies
    # A proxy may add its own header line instead of appending to the client's: read them all.
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    return client_address(peer, forwarded, trusted)


def rate_limited(group: str) -> Callable[[Request], None]:
    """A dependency counting the request against `group`'s per-minute limit."""

    def check(request: Request) -> None:
        services = services_of(request)
        if services.settings.rate_limits_enabled:
            services.limiter.check(group, client_key(request))

    return check


def base_url(request: Request) -> str:
    configured = services_of(request).settings.public_url
    return configured.rstrip("/") if configured else str(request.base_url).rstrip("/")
