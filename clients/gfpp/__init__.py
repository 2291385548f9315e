"""Facet's `gfpp`: the GFPGAN restoration service's Python API, served by a Facet server.

The seed's modules are here under the same names, so switching is one change per import:
`from gfpp.core.orchestrator import plan` becomes `from clients.gfpp.core.orchestrator import
plan`, and so on for `core.registry`, `restorers.base`, `io.manifest` and `io.weights`; or
import everything from `clients.gfpp` itself. Detection, restoration and weights run on the
server (the gateway over REST, or Triton over gRPC: see `clients.gfpp.server`); this package
needs only the clients' light dependencies (numpy, OpenCV, Pillow, httpx, tritonclient), which
load when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clients.gfpp.core.orchestrator import Plan, plan
    from clients.gfpp.core.registry import get, list_backends
    from clients.gfpp.errors import (
        BackendUnavailableError,
        SyntheticWeightsWarning,
        UnknownBackendError,
        UnknownWeightError,
    )
    from clients.gfpp.io.manifest import RunManifest, write_manifest
    from clients.gfpp.io.weights import WeightCheck, ensure_weight
    from clients.gfpp.restorers.base import Restorer, RestoreResult
    from clients.gfpp.restorers.gfpgan import FacetGFPGANRestorer
    from clients.gfpp.server import FacetServer

_LAZY = {
    "Plan": "clients.gfpp.core.orchestrator",
    "plan": "clients.gfpp.core.orchestrator",
    "get": "clients.gfpp.core.registry",
    "list_backends": "clients.gfpp.core.registry",
    "BackendUnavailableError": "clients.gfpp.errors",
    "SyntheticWeightsWarning": "clients.gfpp.errors",
    "UnknownBackendError": "clients.gfpp.errors",
    "UnknownWeightError": "clients.gfpp.errors",
    "RunManifest": "clients.gfpp.io.manifest",
    "write_manifest": "clients.gfpp.io.manifest",
    "WeightCheck": "clients.gfpp.io.weights",
    "ensure_weight": "clients.gfpp.io.weights",
    "Restorer": "clients.gfpp.restorers.base",
    "RestoreResult": "clients.gfpp.restorers.base",
    "FacetGFPGANRestorer": "clients.gfpp.restorers.gfpgan",
    "FacetServer": "clients.gfpp.server",
}

__all__ = [
    "BackendUnavailableError",
    "FacetGFPGANRestorer",
    "FacetServer",
    "Plan",
    "RestoreResult",
    "Restorer",
    "RunManifest",
    "SyntheticWeightsWarning",
    "UnknownBackendError",
    "UnknownWeightError",
    "WeightCheck",
    "ensure_weight",
    "get",
    "list_backends",
    "plan",
    "write_manifest",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'clients.gfpp' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
