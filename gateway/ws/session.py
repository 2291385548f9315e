"""One connection, after it was admitted and accepted: a reader answering the client's messages,
a writer draining the client's outbox (the only coroutine that sends, closes included), and at
most one live search."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup
from starlette.status import (
    WS_1000_NORMAL_CLOSURE,
    WS_1008_POLICY_VIOLATION,
    WS_1009_MESSAGE_TOO_BIG,
)
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.errors import FacetError
from gateway.ws.events import prepare
from gateway.ws.hub import Client, Hub, UnknownChannel
from gateway.ws.limits import WsLimits
from gateway.ws.outbox import CloseRequest
from gateway.ws.protocol import (
    ProtocolError,
    SearchRequest,
    channel_of,
    decode,
    message_size,
    search_request,
)

log = logging.getLogger(__name__)

SearchFn = Callable[[str, int, list[str] | None, float | None], Awaitable[list[dict[str, Any]]]]
SEND_FAILURES = (WebSocketDisconnect, RuntimeError, OSError)


class Session:
    def __init__(
        self,
        websocket: WebSocket,
        hub: Hub,
        client: Client,
        limits: WsLimits,
        search: SearchFn | None = None,
    ) -> None:
        self.websocket = websocket
        self.hub = hub
        self.client = client
        self.limits = limits
        self.search = search  # None: this endpoint has no live search
        self._bad_in_a_row = 0
        self._group: TaskGroup | None = None
        self._search_scope: anyio.CancelScope | None = None

    async def run(self) -> None:
        """Until the client leaves or a close went out. anyio, not bare asyncio tasks: the
        server (or a test client) may cancel the connection, and a task group cancels and
        awaits its children the way the server's cancel scope expects."""
        async with anyio.create_task_group() as group:
            self._group = group
            group.start_soon(self._reader, group)
            group.start_soon(self._writer, group)

    async def _reader(self, group: TaskGroup) -> None:
        await self._read()
        if self.client.outbox.closing is not None:
            # The writer sends the close and ends the group; this bounds a writer stuck in a send.
            await anyio.sleep(self.limits.close_timeout_s)
        group.cancel_scope.cancel()

    async def _writer(self, group: TaskGroup) -> None:
        await self._write()
        group.cancel_scope.cancel()

    # The writer

    async def _write(self) -> None:
        while True:
            item = await self.client.outbox.get(self.limits.heartbeat_s)
            if isinstance(item, CloseRequest):
                with contextlib.suppress(*SEND_FAILURES):
                    await self.websocket.close(item.code, item.reason)
                return
            text = item.text if item is not None else prepare({"type": "heartbeat"}).text
            self.hub.count_sent(self.client)  # before the await: counted once handed over
            try:
                await self.websocket.send_text(text)
            except SEND_FAILURES:
                return

    # The reader

    async def _read(self) -> None:
        while True:
            with anyio.move_on_after(self.limits.idle_timeout_s) as idle:
                message = await self.websocket.receive()
            if idle.cancelled_caught:
                self._close(WS_1000_NORMAL_CLOSURE, "idle timeout")
                return
            if message["type"] == "websocket.disconnect" or not self._on_message(message):
                return

    def _on_message(self, message: Message) -> bool:
        """Answer one message; False when the connection is to close."""
        text, data = message.get("text"), message.get("bytes")
        if message_size(text, data) > self.limits.max_message_bytes:
            limit = self.limits.max_message_bytes
            self._close(WS_1009_MESSAGE_TOO_BIG, f"message too big: the limit is {limit} bytes")
            return False
        try:
            if text is None:
                raise ProtocolError("binary messages are not supported: send JSON text")
            self._dispatch(decode(text))
        except (ProtocolError, UnknownChannel) as exc:
            return self._refuse(exc.message if isinstance(exc, ProtocolError) else str(exc))
        self._bad_in_a_row = 0
        return True

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "ping":
            self._reply({"type": "pong"})
        elif kind in ("subscribe", "unsubscribe"):
            channel = channel_of(message)
            if kind == "subscribe":
                self.hub.subscribe(self.client, channel)
            else:
                self.hub.unsubscribe(self.client, channel)
            self._reply({"type": f"{kind}d", "channel": channel})
        elif kind == "search" and self.search is not None:
            limits = self.limits
            request = search_request(
                message,
                default_limit=limits.search_default_limit,
                max_limit=limits.search_max_limit,
            )
            self._start_search(self.search, request)
        elif kind == "search":
            raise ProtocolError('"search" is answered on /ws/search only')
        else:
            known = "ping, subscribe, unsubscribe" + (", search" if self.search else "")
            raise ProtocolError(f"unknown message type {kind!r}; the types are: {known}")

    def _refuse(self, reason: str) -> bool:
        self._reply({"type": "error", "message": reason})
        self._bad_in_a_row += 1
        if self._bad_in_a_row >= self.limits.max_bad_messages:
            self._close(WS_1008_POLICY_VIOLATION, "too many invalid messages")
            return False
        return True

    def _reply(self, event: dict[str, Any]) -> None:
        self.hub.send(self.client, event)

    def _close(self, code: int, reason: str) -> None:
        self.client.outbox.close(code, reason)

    # Live search: a newer query supersedes the one still running

    def _start_search(self, search: SearchFn, request: SearchRequest) -> None:
        assert self._group is not None  # messages are read inside run()'s group only
        if self._search_scope is not None:
            self._search_scope.cancel()
        scope = self._search_scope = anyio.CancelScope()
        self._group.start_soon(self._answer_search, scope, search, request)

    async def _answer_search(
        self, scope: anyio.CancelScope, search: SearchFn, request: SearchRequest
    ) -> None:
        started = time.perf_counter()
        with scope:
            try:
                results = await search(
                    request.query, request.limit, request.objects, request.min_score
                )
            except FacetError as exc:
                self._reply({"type": "error", "message": exc.detail})
                return
            except Exception:
                log.exception("live search for %r failed", request.query)
                self._reply({"type": "error", "message": "search failed"})
                return
        if scope.cancelled_caught:
            return  # superseded by a newer query
        elapsed = round(time.perf_counter() - started, 4)
        try:
            self._reply(
                {
                    "type": "search_results",
                    "query": request.query,
                    "results": results,
                    "count": len(results),
                    "search_time": elapsed,
                }
            )
        except (TypeError, ValueError):
            log.exception("live search for %r returned no JSON list", request.query)
            self._reply({"type": "error", "message": "search failed"})
