"""Facet's clients: `FacetTritonClient` (gRPC straight to Triton, client-side tiling),
`FacetRestClient` (the REST gateway: upscale jobs, face restoration, batches, quality metrics,
with its `Restoration` and `BatchAccepted` answers) and the `facet` command line (`clients.cli`).

The client classes are imported on first use, so `import clients` (and `facet --help`) stays
fast and the REST client never loads tritonclient.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from clients.errors import (
    BadRequestError,
    DeadlineExceededError,
    FacetClientError,
    JobFailedError,
    NotFoundError,
    OverloadedError,
    RateLimitedError,
    ServerError,
    UnavailableError,
)

if TYPE_CHECKING:
    from clients.rest import BatchAccepted, FacetRestClient, Restoration
    from clients.triton_grpc import FacetTritonClient, ModelStatistics, ModelSummary, TensorSpec

_LAZY = {
    "BatchAccepted": "clients.rest",
    "FacetRestClient": "clients.rest",
    "Restoration": "clients.rest",
    "FacetTritonClient": "clients.triton_grpc",
    "ModelStatistics": "clients.triton_grpc",
    "ModelSummary": "clients.triton_grpc",
    "TensorSpec": "clients.triton_grpc",
}

__all__ = [
    "BadRequestError",
    "BatchAccepted",
    "DeadlineExceededError",
    "FacetClientError",
    "FacetRestClient",
    "FacetTritonClient",
    "JobFailedError",
    "ModelStatistics",
    "ModelSummary",
    "NotFoundError",
    "OverloadedError",
    "RateLimitedError",
    "Restoration",
    "ServerError",
    "TensorSpec",
    "UnavailableError",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'clients' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
