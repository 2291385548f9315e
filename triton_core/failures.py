"""What a failed Triton call means, decided once for the gateway and the clients alike.

How Triton 2.51 and tritonclient surface failures (provoked against a real server): every RPC
error arrives as `InferenceServerException` with `status()` = "StatusCode.<NAME>" and
`message()` = gRPC's details. A full queue is UNAVAILABLE "Exceeds maximum queue size"; a
stopping server is UNAVAILABLE "Server is stopping, ..."; a refused connection is UNAVAILABLE
"failed to connect to all addresses; ... Connection refused"; a crashed server in mid-call is
UNAVAILABLE "Stream removed (Socket closed)"; an unknown or unloaded model is NOT_FOUND
"Request for unknown model: ..."; a missed deadline is DEADLINE_EXCEEDED "Deadline Exceeded";
a wrong name, datatype or batch size is INVALID_ARGUMENT. Each side turns the kind into its own
error type (HTTP for the gateway, client exceptions for users).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import grpc
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

# Everything a call to Triton can raise that is about Triton (not a bug of ours).
TRITON_FAILURES: Final = (
    InferenceServerException,
    grpc.RpcError,
    shm.SharedMemoryException,
    OSError,
)

# Triton's own wire limit; the gRPC default (4 MiB) is far below one 4x-upscaled image.
MAX_MESSAGE_BYTES: Final = 2**31 - 1
# Triton answers a client that pings more often than every 5 minutes during a call that carries
# no data with GOAWAY "too_many_pings", which kills the calls in flight (seen with 1 s pings on
# a 4 s call). Pinging no faster than that still finds a dead peer on a long idle-looking call.
KEEPALIVE_TIME_MS: Final = 300_000
KEEPALIVE_TIMEOUT_MS: Final = 20_000
# The channel reconnects by itself after Triton restarts, but gRPC's backoff grows towards
# 2 minutes: after a 20 s outage the first call succeeded 5.6 s after Triton was back. Capped,
# the channel is usable again within about 2 s.
RECONNECT_BACKOFF_MS: Final = 500
MAX_RECONNECT_BACKOFF_MS: Final = 2_000

_QUEUE_FULL_TEXT: Final = "exceeds maximum queue size"
_NOT_READY_TEXT: Final = ("not ready", "not at ready state", "no available versions")
_UNKNOWN_TEXT: Final = ("unknown model", "is not found", "is not available")


class FailureKind(StrEnum):
    QUEUE_FULL = "queue_full"
    SHARED_MEMORY = "shared_memory"  # a region could not be made, registered or read
    MODEL_NOT_READY = "model_not_ready"
    MODEL_UNKNOWN = "model_unknown"
    DEADLINE = "deadline"
    UNAVAILABLE = "unavailable"  # the server cannot be reached, is stopping or restarting
    INVALID_ARGUMENT = "invalid_argument"
    OTHER = "other"


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    status: str  # gRPC's status name ("UNAVAILABLE"), or "" when there is none
    message: str  # the server's own words (may name internal addresses: for logs)


def channel_options() -> list[tuple[str, int]]:
    """The options of a gRPC channel to Triton (see the constants for why each value)."""
    return [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 2),
        ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS),
        ("grpc.min_reconnect_backoff_ms", RECONNECT_BACKOFF_MS),
        ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
    ]


def read_status(exc: BaseException) -> str:
    """Return the bare gRPC status name ("UNAVAILABLE") of a Triton or gRPC error, else ""."""
    if isinstance(exc, InferenceServerException):
        status = exc.status()
        return str(status).rsplit(".", 1)[-1] if status else ""
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return str(exc.code().name)
    return ""


def read_message(exc: BaseException) -> str:
    """Return the server's own words for an error, without tritonclient's "[status]" prefix."""
    if isinstance(exc, InferenceServerException):
        return str(exc.message() or "")
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "details"):
        return str(exc.details() or "")
    return str(exc)


def classify(exc: BaseException) -> Failure:
    """Say what a failure from a Triton call means; the first rule that matches wins."""
    status, message = read_status(exc), read_message(exc)
    return Failure(_kind(exc, status, message.lower()), status, message)


def _kind(exc: BaseException, status: str, lowered: str) -> FailureKind:
    if _QUEUE_FULL_TEXT in lowered or status == "RESOURCE_EXHAUSTED":
        return FailureKind.QUEUE_FULL
    if isinstance(exc, shm.SharedMemoryException | OSError) or "shared memory" in lowered:
        return FailureKind.SHARED_MEMORY
    if any(text in lowered for text in _NOT_READY_TEXT):
        return FailureKind.MODEL_NOT_READY
    if status == "NOT_FOUND" or any(text in lowered for text in _UNKNOWN_TEXT):
        return FailureKind.MODEL_UNKNOWN
    if status == "DEADLINE_EXCEEDED":
        return FailureKind.DEADLINE
    if status in ("UNAVAILABLE", "CANCELLED"):
        return FailureKind.UNAVAILABLE
    if status == "INVALID_ARGUMENT":
        return FailureKind.INVALID_ARGUMENT
    return FailureKind.OTHER
