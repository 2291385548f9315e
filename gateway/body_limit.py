"""A request body is limited by the bytes that arrive, not by the length a client declares.

`upload_guard` in app.py refuses a declared Content-Length over the limit before reading, but a
body sent with `Transfer-Encoding: chunked` declares nothing: Starlette's multipart parser would
spool all of it to disk before any route could look at its size. `BodyLimit` wraps `receive`,
counts body bytes as they come in and, past the limit, stops reading: `receive` raises, whatever
the app then answers (FastAPI turns a failed form parse into a 400) is dropped, and the client
gets the refusal the app supplies, with `Connection: close` so the server stops reading the rest
of the body too. The refusal is passed in, so this module needs nothing from the app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """Raised out of the wrapped `receive` past the limit; this middleware answers it."""


@dataclass
class _Exchange:
    """One request's byte count, and whether the client has seen a response start yet."""

    receive: Receive
    send: Send
    limit: int
    received: int = 0
    over: bool = False
    started: bool = False

    @property
    def refusing(self) -> bool:
        return self.over and not self.started

    async def receive_counted(self) -> Message:
        if self.over:
            raise BodyTooLarge
        message = await self.receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                self.over = True
                raise BodyTooLarge
        return message

    async def send_unless_refusing(self, message: Message) -> None:
        if self.refusing:
            return  # the app's answer to a body it could not finish reading; ours replaces it
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


class BodyLimit:
    """Pure ASGI middleware: at most `limit` body bytes per HTTP request, else `refusal(limit)`.

    `limit` is a number, or a function of the request path for routes with their own limit
    (a video upload may be larger than a photo)."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int | Callable[[str], int],
        refusal: Callable[[int], Response],
    ) -> None:
        self.app = app
        self.limit_for = limit if callable(limit) else (lambda _path: limit)
        self.refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exchange = _Exchange(receive, send, self.limit_for(scope.get("path", "")))
        try:
            await self.app(scope, exchange.receive_counted, exchange.send_unless_refusing)
        except Exception as error:
            if not (exchange.refusing and caused_by_limit(error)):
                raise
        if exchange.refusing:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self.refusal(self.limit_for(scope.get("path", "")))
        response.headers["connection"] = "close"
        await response(scope, receive, send)


def caused_by_limit(error: BaseException | None) -> bool:
    """Whether `error` is the limit's own signal, or was raised because of it (chained, or a
    group made only of such errors, as task groups in middleware produce)."""
    if error is None:
        return False
    if isinstance(error, BodyTooLarge):
        return True
    if isinstance(error, BaseExceptionGroup):
        return all(caused_by_limit(inner) for inner in error.exceptions)
    return caused_by_limit(error.__cause__ or error.__context__)
