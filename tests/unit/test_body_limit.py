"""The upload limit holds on the wire: bodies are counted as they arrive, chunked ones included."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.app import create_app
from gateway.body_limit import BodyLimit, BodyTooLarge, caused_by_limit
from gateway.settings import Settings

MB = 1024 * 1024
TOO_LARGE = {"detail": "upload too large: the limit is 15 MB", "error": "PayloadTooLarge"}
BOUNDARY = "facet-test-boundary"


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    """A request body with no declared length: httpx sends it `Transfer-Encoding: chunked`."""
    for part in parts:
        yield part


def multipart_chunks(file_size: int, chunk: int = MB) -> AsyncIterator[bytes]:
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    whole, rest = divmod(file_size, chunk)
    return chunks(head, *([b"\0" * chunk] * whole), b"\0" * rest, tail)


def post(
    app: ASGIApp,
    content: bytes | AsyncIterator[bytes],
    headers: dict[str, str] | None = None,
    path: str = "/upscale",
) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # re-raises anything the app lets escape
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return await client.post(path, content=content, headers=headers)

    return asyncio.run(go())


class BodyReadSpy:
    """Counts the body messages an app pulls from the server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.body_reads = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            self.body_reads += message["type"] == "http.request"
            return message

        await self.app(scope, counted, send)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers 200 with the body it read, byte for byte."""
    body = await Request(scope, receive).body()
    await Response(body, media_type="application/octet-stream")(scope, receive, send)


def refusal(limit: int) -> Response:
    return JSONResponse({"refused": True}, status_code=413)


@pytest.fixture
def gateway(tmp_path: Path) -> ASGIApp:
    """The real app; its lifespan (Triton, job store) never starts: the body is refused first."""
    return create_app(Settings(data_dir=tmp_path, rate_limits_enabled=False))


def test_a_chunked_upload_over_the_limit_is_refused_with_413(
    gateway: ASGIApp, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    with caplog.at_level(logging.WARNING):
        answer = post(gateway, multipart_chunks(16 * MB), headers)
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in answer.request.headers
    assert answer.status_code == 413
    assert answer.json() == TOO_LARGE
    assert answer.headers["connection"] == "close"
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_a_chunked_upload_stops_being_read_at_the_limit(gateway: ASGIApp) -> None:
    spy = BodyReadSpy(gateway)
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    answer = post(spy, multipart_chunks(40 * MB), headers)
    assert answer.status_code == 413
    # 15 MB + 64 KB allowed, sent in 1 MB chunks after the part's headers: the 17th is too many.
    assert spy.body_reads == 17


def test_a_chunked_body_under_the_limit_passes_through_byte_identical() -> None:
    parts = [bytes(range(256)) * 3, b"", b"\xff" * 1000, bytes(range(7))]
    body = b"".join(parts)
    app = BodyLimit(echo, limit=len(body), refusal=refusal)
    answer = post(app, chunks(*parts), path="/anything")
    assert answer.status_code == 200
    assert answer.content == body


def test_one_byte_over_the_limit_is_refused_and_the_apps_own_answer_dropped() -> None:
    app = BodyLimit(echo, limit=100, refusal=refusal)
    answer = post(app, chunks(b"x" * 60, b"x" * 41), path="/anything")
    assert answer.status_code == 413
    assert answer.json() == {"refused": True}


def test_a_declared_content_length_over_the_limit_still_gets_413_before_reading(
    gateway: ASGIApp,
) -> None:
    spy = BodyReadSpy(gateway)
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    answer = post(spy, b"\0" * (16 * MB), headers)
    assert answer.request.headers["content-length"] == str(16 * MB)
    assert answer.status_code == 413
    assert answer.json() == TOO_LARGE
    assert spy.body_reads == 0


def test_the_limit_applies_to_any_request_with_a_body_not_only_uploads(gateway: ASGIApp) -> None:
    headers = {"content-type": "application/json"}
    answer = post(gateway, chunks(b"[" + b"0," * (8 * MB)), headers, path="/batch")
    assert answer.status_code == 413
    assert answer.json() == TOO_LARGE


def test_errors_count_as_the_limits_when_raised_because_of_it() -> None:
    try:
        try:
            raise BodyTooLarge
        except BodyTooLarge as signal:
            raise ValueError("could not parse the body") from signal
    except ValueError as consequence:
        chained = consequence
    assert caused_by_limit(BodyTooLarge())
    assert caused_by_limit(chained)
    assert caused_by_limit(ExceptionGroup("tasks", [BodyTooLarge(), chained]))
    assert not caused_by_limit(ExceptionGroup("tasks", [BodyTooLarge(), RuntimeError()]))
    assert not caused_by_limit(RuntimeError("a real bug"))
