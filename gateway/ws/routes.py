"""The seed's WebSocket endpoints (`/ws`, `/ws/processing`, `/ws/search`) and `GET /ws/stats`."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, Field
from starlette.status import WS_1013_TRY_AGAIN_LATER

from gateway.ws.events import connection_established, now_iso
from gateway.ws.hub import Hub
from gateway.ws.limits import WsLimits
from gateway.ws.session import SEND_FAILURES, SearchFn, Session

TAG = "context (Image Context Extractor API)"
ENDPOINT_CHANNELS = {"/ws": "general", "/ws/processing": "processing", "/ws/search": "search"}
FULL_REASON = "try again later: too many connections"


class WsStats(BaseModel):
    """WebSocket connection statistics (counters since the gateway started)."""

    timestamp: str
    connections: int = Field(description="open connections now")
    max_connections: int
    channels: dict[str, int] = Field(description="subscribers of each channel now")
    connections_accepted: int
    connections_rejected: int = Field(description="refused with 1013: the limit was reached")
    messages_sent: int
    events_published: int
    events_dropped: int = Field(description="progress events dropped for clients that lag")
    slow_clients_disconnected: int = Field(
        description="closed with 1013: an event that is never dropped did not fit their queue"
    )


def ws_router(
    hub: Hub,
    search: SearchFn,
    limits: WsLimits | None = None,
    *,
    stats_dependencies: Sequence[Any] = (),
) -> APIRouter:
    """`stats_dependencies`: FastAPI dependencies of `GET /ws/stats` only (e.g. a rate limit);
    those of include_router would also reach the WebSocket routes."""
    limits = limits or WsLimits()
    missing = set(ENDPOINT_CHANNELS.values()) - set(hub.channels)
    if missing:
        raise ValueError(f"the hub lacks the endpoints' channels: {', '.join(sorted(missing))}")
    router = APIRouter(tags=[TAG])

    async def serve(websocket: WebSocket, channel: str, live_search: SearchFn | None) -> None:
        client = hub.admit(
            channel, max_connections=limits.max_connections, queue_size=limits.max_queue
        )
        if client is None:
            # Accepted first: a close before the handshake reaches browsers as 1006, no reason.
            with contextlib.suppress(*SEND_FAILURES):
                await websocket.accept()
                await websocket.close(WS_1013_TRY_AGAIN_LATER, FULL_REASON)
            return
        try:
            try:
                await websocket.accept()
            except SEND_FAILURES:
                return  # gone during the handshake
            greeting = connection_established(
                client.id, channel, hub.channels, limits.max_message_bytes
            )
            hub.send(client, greeting)
            await Session(websocket, hub, client, limits, live_search).run()
        finally:
            hub.remove(client)

    @router.websocket("/ws")
    async def general(websocket: WebSocket) -> None:
        """Real-time updates: connects to "general"; subscribe to other channels by message."""
        await serve(websocket, "general", None)

    @router.websocket("/ws/processing")
    async def processing(websocket: WebSocket) -> None:
        """Processing updates: task_progress, task_completed, task_failed, image_processed."""
        await serve(websocket, "processing", None)

    @router.websocket("/ws/search")
    async def live_search(websocket: WebSocket) -> None:
        """Live search: each {"type": "search", ...} supersedes the one still running."""
        await serve(websocket, "search", search)

    @router.get("/ws/stats", response_model=WsStats, dependencies=list(stats_dependencies))
    async def stats() -> dict[str, Any]:
        """WebSocket connection statistics."""
        counters = asdict(hub.stats())
        return {"timestamp": now_iso(), "max_connections": limits.max_connections, **counters}

    return router
