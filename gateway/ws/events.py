"""The events pushed to clients: their envelope, how each is classed for the outbox, and
builders for the ones the gateway publishes (shapes in `gateway.ws`'s docstring)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.ws.outbox import Kind, Outgoing

PROGRESS_TYPES = frozenset({"task_progress"})
FINAL_TYPES = frozenset({"task_completed", "task_failed"})


def now_iso() -> str:
    """ISO-8601 like the seed's timestamps ("2025-07-07T10:36:13.577413"), in UTC and saying
    so (+00:00): a browser reads an offset-less time as its own local time."""
    return datetime.now(UTC).isoformat()


def envelope(event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `event` with its `timestamp` (kept when the publisher set one). `type` is
    required: it is what every client dispatches on."""
    kind = event.get("type")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"an event needs a non-empty string 'type', got {kind!r}")
    body = dict(event)
    body.setdefault("timestamp", now_iso())
    return body


def prepare(event: Mapping[str, Any]) -> Outgoing:
    """Envelope, class and serialise `event` once. Raises TypeError/ValueError where it is not
    JSON (NaN and infinities included: browsers' JSON.parse refuses them)."""
    body = envelope(event)
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    task_id = body.get("task_id")
    key = None if task_id is None else str(task_id)
    if body.get("final") is True or body["type"] in FINAL_TYPES:
        return Outgoing(text, Kind.FINAL, key)
    if body["type"] in PROGRESS_TYPES:
        return Outgoing(text, Kind.PROGRESS, key)
    return Outgoing(text, Kind.OTHER, key)


def task_progress(task_id: str, status: str, progress: float, message: str = "") -> dict[str, Any]:
    """`progress` is a percentage, clamped to 0–100 (the seed reports e.g. 65.5)."""
    if not math.isfinite(progress):
        raise ValueError(f"progress must be a finite percentage, got {progress!r}")
    percent = min(100.0, max(0.0, float(progress)))
    return {
        "type": "task_progress",
        "task_id": task_id,
        "status": status,
        "progress": round(percent, 2),
        "message": message,
    }


def task_completed(task_id: str, result: Any) -> dict[str, Any]:
    return {"type": "task_completed", "task_id": task_id, "result": result}


def task_failed(task_id: str, error: str) -> dict[str, Any]:
    return {"type": "task_failed", "task_id": task_id, "error": error}


def image_processed(image_id: str, **fields: Any) -> dict[str, Any]:
    """`fields`: what the REST answer says of the image (filename, caption, objects, ...)."""
    return {**fields, "type": "image_processed", "image_id": image_id}


def connection_established(
    client_id: str, channel: str, channels: Iterable[str], max_message_bytes: int
) -> dict[str, Any]:
    return {
        "type": "connection_established",
        "client_id": client_id,
        "channel": channel,
        "subscriptions": [channel],
        "available_channels": list(channels),
        "max_message_bytes": max_message_bytes,
    }
