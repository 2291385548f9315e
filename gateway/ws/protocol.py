"""Reading client messages: one JSON object per text message, with a string `type`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any


class ProtocolError(Exception):
    """An invalid message; `message` is what the error reply tells the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class SearchRequest:
    query: str
    limit: int
    objects: list[str] | None
    min_score: float | None


def message_size(text: str | None, data: bytes | None) -> int:
    """Bytes on the wire of one message, without encoding short texts (UTF-8: 1–4 bytes/char)."""
    if data is not None:
        return len(data)
    if text is None:
        return 0
    return len(text.encode()) if not text.isascii() else len(text)


def decode(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nesting too deep for the parser
        raise ProtocolError(
            'invalid JSON: send one JSON object per message, e.g. {"type": "ping"}'
        ) from None
    if not isinstance(value, dict):
        raise ProtocolError('a message must be a JSON object with a "type", e.g. {"type": "ping"}')
    kind = value.get("type")
    if not isinstance(kind, str) or not kind:
        raise ProtocolError('a message needs a string "type", e.g. {"type": "ping"}')
    return value


def channel_of(message: dict[str, Any]) -> str:
    channel = message.get("channel")
    if not isinstance(channel, str) or not channel:
        raise ProtocolError(f'"{message["type"]}" needs a string "channel"')
    return channel


def search_request(message: dict[str, Any], *, default_limit: int, max_limit: int) -> SearchRequest:
    """The seed's search parameters: query, limit, objects ("cat,dog" or a list), min_score."""
    query = message.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ProtocolError('"search" needs a non-empty string "query"')
    return SearchRequest(
        query=query.strip(),
        limit=_limit(message.get("limit"), default_limit, max_limit),
        objects=_objects(message.get("objects")),
        min_score=_score(message.get("min_score")),
    )


def _limit(value: Any, default: int, most: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise ProtocolError(f'"limit" must be an integer from 1 to {most}')
    return value


def _objects(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        names = value.split(",")
    elif isinstance(value, list) and all(isinstance(name, str) for name in value):
        names = value
    else:
        raise ProtocolError('"objects" must be a comma-separated string ("cat,dog") or a list')
    kept = list(dict.fromkeys(name.strip() for name in names if name.strip()))
    return kept or None


def _score(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProtocolError('"min_score" must be a number')
    return float(value)
