"""Which Facet server the `gfpp` layer talks to, and how: the gateway over REST, or Triton
directly over gRPC.

`FacetServer.from_env()` reads FACET_VIA (`rest`, the default, or `grpc`), FACET_GATEWAY_URL
(default http://127.0.0.1:8000) and FACET_TRITON_URL (default 127.0.0.1:8001), the variables
the `facet` CLI reads too. Every function of the package also takes `server=`: a FacetServer,
or one URL (`http://…` picks the gateway, `grpc://host:port` or `host:port` picks Triton).

Face detection alone has no gateway route, so `plan()` asks Triton's detector over gRPC at
`triton_url` even when restoration goes through the gateway.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final, Literal, cast

Via = Literal["rest", "grpc"]

ENV_VIA: Final = "FACET_VIA"
ENV_GATEWAY_URL: Final = "FACET_GATEWAY_URL"
ENV_TRITON_URL: Final = "FACET_TRITON_URL"
DEFAULT_GATEWAY_URL: Final = "http://127.0.0.1:8000"
DEFAULT_TRITON_URL: Final = "127.0.0.1:8001"
# A restoration is answered once every face is restored: about 5 s a face on 2 CPU cores.
DEFAULT_TIMEOUT_S: Final = 300.0
VIAS: Final = ("rest", "grpc")
GRPC_SCHEME: Final = "grpc://"


@dataclass(frozen=True)
class FacetServer:
    """Where the work runs. `via` picks who restores: the gateway (`rest`) or Triton (`grpc`)."""

    via: Via = "rest"
    gateway_url: str = DEFAULT_GATEWAY_URL
    triton_url: str = DEFAULT_TRITON_URL
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.via not in VIAS:
            raise ValueError(f"via must be 'rest' or 'grpc', got {self.via!r}")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FacetServer:
        env = os.environ if environ is None else environ
        via = env.get(ENV_VIA, "rest").strip().lower() or "rest"
        if via not in VIAS:
            raise ValueError(f"{ENV_VIA} must be 'rest' or 'grpc', got {via!r}")
        return cls(
            via=cast(Via, via),
            gateway_url=env.get(ENV_GATEWAY_URL) or DEFAULT_GATEWAY_URL,
            triton_url=env.get(ENV_TRITON_URL) or DEFAULT_TRITON_URL,
        )

    @classmethod
    def from_url(cls, url: str, environ: Mapping[str, str] | None = None) -> FacetServer:
        """One URL picks the transport; the other address still comes from the environment."""
        base = cls.from_env(environ)
        text = url.strip()
        if text.startswith(("http://", "https://")):
            return replace(base, via="rest", gateway_url=text.rstrip("/"))
        address = text.removeprefix(GRPC_SCHEME)
        if not address or "/" in address:
            raise ValueError(
                f"not a gateway URL (http://…) or a Triton address (host:port): {url!r}"
            )
        return replace(base, via="grpc", triton_url=address)

    @property
    def url(self) -> str:
        """The address of whoever restores."""
        return self.gateway_url if self.via == "rest" else self.triton_url

    def describe(self) -> dict[str, str]:
        return {"via": self.via, "gateway_url": self.gateway_url, "triton_url": self.triton_url}


def resolve_server(server: FacetServer | str | None) -> FacetServer:
    if server is None:
        return FacetServer.from_env()
    if isinstance(server, str):
        return FacetServer.from_url(server)
    return server
