"""The live camera (`/ws/camera`): a client streams frames, the server answers each frame it
processes with its faces (named when recognised) and objects, tagged with the frame's number.

A frame is a binary message (JPEG, PNG or WebP bytes, numbered 1, 2, … in arrival order) or a
text message `{"type": "frame", "seq": 7, "image": "<base64>"}`. The server holds at most one
frame waiting: a frame arriving while another waits replaces it, so the worker always takes the
newest and a slow server never builds a backlog (the latency a camera user feels stays one
frame's processing time), and frames are taken at most FACET_CAMERA_MAX_FPS times a second.
Each answer says how many frames were dropped (replaced unprocessed) since the previous one.
A frame too large or undecodable gets an error answer with its number; the connection stays
open until too many bad messages in a row. The receiver only measures a message; JSON and
base64 are read in a worker thread, and only for the frame taken, so a flood costs the event
loop a length check per message."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from gateway.errors import FacetError

Image = npt.NDArray[np.uint8]
Decode = Callable[[bytes], Image]
Analyse = Callable[[Image], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
MAX_BAD_MESSAGES = 20


@dataclass(frozen=True)
class CameraLimits:
    max_frame_bytes: int
    max_fps: float


@dataclass(frozen=True)
class Frame:
    seq: int
    data: bytes
    received_at: float


@dataclass(frozen=True)
class Arrival:
    """A message as it came, parsed only if the worker takes it (most are dropped unread)."""

    number: int  # its place in arrival order: a binary frame's sequence number
    message: MutableMapping[str, Any]
    received_at: float


Item = TypeVar("Item")


class BadMessage(Exception):
    """A message that is not a frame; answered with an error, the connection kept."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


class CameraGate:
    """Open camera connections, bounded (each one keeps a worker busy)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def admit(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open = max(0, self.open - 1)


class FrameSlot(Generic[Item]):
    """The newest frame not yet taken, and how many were dropped since the last take. Takes
    are spaced by the frame-rate limit; a frame replaced meanwhile counts as dropped."""

    def __init__(self, max_fps: float) -> None:
        self._frame: Item | None = None
        self._ready = asyncio.Event()
        self._interval = 1.0 / max_fps
        self._last_take = -float("inf")
        self.dropped = 0

    def offer(self, frame: Item) -> None:
        if self._frame is not None:
            self.dropped += 1  # stale: a newer frame replaces it
        self._frame = frame
        self._ready.set()

    async def take(self) -> tuple[Item, int]:
        await self._ready.wait()
        wait = self._last_take + self._interval - time.monotonic()
        if wait > 0:  # over the frame-rate limit: newer frames may replace this one meanwhile
            await asyncio.sleep(wait)
        self._ready.clear()
        self._last_take = time.monotonic()
        frame, dropped = self._frame, self.dropped
        self._frame, self.dropped = None, 0
        assert frame is not None
        return frame, dropped


def parse_frame(
    message: MutableMapping[str, Any], next_seq: int, limits: CameraLimits, now: float
) -> Frame:
    """A Starlette websocket.receive() message as a frame, or BadMessage saying why (the
    receiver's `precheck` first, so this stands alone)."""
    precheck(message, limits, next_seq)
    data, text = message.get("bytes"), message.get("text")
    if data is not None:
        return Frame(next_seq, data, now)
    try:
        body = json.loads(text or "")
    except json.JSONDecodeError as exc:
        raise BadMessage(f"a text message must be JSON: {exc.msg}") from exc
    if not isinstance(body, dict) or body.get("type") != "frame":
        raise BadMessage('send {"type": "frame", "image": "<base64>"} or a binary message')
    seq = body.get("seq", next_seq)
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**53:
        raise BadMessage("seq must be a non-negative integer")
    image = body.get("image")
    if not isinstance(image, str):
        raise BadMessage("image must be a base64 string", seq)
    try:
        decoded = base64.b64decode(image.split(",", 1)[-1], validate=True)  # data: URLs too
    except (binascii.Error, ValueError) as exc:
        raise BadMessage("image is not valid base64", seq) from exc
    return Frame(seq, check_size(decoded, limits, seq), now)


def precheck(message: MutableMapping[str, Any], limits: CameraLimits, number: int) -> None:
    """What the receiver can refuse at once for the cost of a length: oversized frames and
    text that cannot be a JSON frame. JSON and base64 are read by the worker, in a thread."""
    data, text = message.get("bytes"), message.get("text")
    if data is not None:
        check_size(data, limits, number)
        return
    if len(text or "") > text_frame_limit(limits.max_frame_bytes):
        raise BadMessage(f"frame too large: the limit is {limits.max_frame_bytes} bytes", number)
    if not (text or "").lstrip().startswith("{"):
        raise BadMessage('send {"type": "frame", "image": "<base64>"} or a binary message')


def text_frame_limit(max_frame_bytes: int) -> int:
    """The longest text message a frame of `max_frame_bytes` can need: base64 and its JSON."""
    return max_frame_bytes * 4 // 3 + 1024


def check_size(data: bytes, limits: CameraLimits, seq: int) -> bytes:
    if len(data) > limits.max_frame_bytes:
        raise BadMessage(f"frame too large: the limit is {limits.max_frame_bytes} bytes", seq)
    if not data:
        raise BadMessage("empty frame", seq)
    return data


class CameraSession:
    """One connection: a receiver filling the slot and a worker answering from it."""

    def __init__(
        self,
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Send,
        decode: Decode,
        analyse: Analyse,
        limits: CameraLimits,
    ) -> None:
        self._receive, self._send_raw = receive, send
        self._decode, self._analyse = decode, analyse
        self._limits = limits
        self._slot: FrameSlot[Arrival] = FrameSlot(limits.max_fps)
        self._send_lock = asyncio.Lock()

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._work())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = None if task.cancelled() else task.exception()
                if error is not None and not isinstance(error, ConnectionClosed):
                    raise error
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _read(self) -> None:
        received, bad = 0, 0
        while True:
            message = await self._receive()
            if message.get("type") == "websocket.disconnect":
                raise ConnectionClosed
            try:
                precheck(message, self._limits, received + 1)
            except BadMessage as error:
                bad += 1
                if bad >= MAX_BAD_MESSAGES:
                    raise TooManyBadMessages from error
                await self._send(error_event(str(error), error.seq))
                continue
            received, bad = received + 1, 0
            self._slot.offer(Arrival(received, message, time.monotonic()))

    async def _work(self) -> None:
        bad = 0
        while True:
            arrival, dropped = await self._slot.take()
            started = time.monotonic()
            try:
                frame = await asyncio.to_thread(
                    parse_frame, arrival.message, arrival.number, self._limits, arrival.received_at
                )
            except BadMessage as error:
                bad += 1
                if bad >= MAX_BAD_MESSAGES:
                    raise TooManyBadMessages from error
                seq = arrival.number if error.seq is None else error.seq
                await self._send(error_event(str(error), seq, dropped))
                continue
            bad = 0
            try:
                image = await asyncio.to_thread(self._decode, frame.data)
                result = await self._analyse(image)
            except FacetError as error:
                await self._send(error_event(error.detail, frame.seq, dropped))
                continue
            result.update(
                seq=frame.seq,
                dropped=dropped,
                width=int(image.shape[1]),
                height=int(image.shape[0]),
                processing_ms=round(1000 * (time.monotonic() - started), 1),
                latency_ms=round(1000 * (time.monotonic() - frame.received_at), 1),
            )
            await self._send({"type": "frame_result", "data": result})

    async def _send(self, event: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._send_raw(event)


class ConnectionClosed(Exception):
    """The client went away."""


class TooManyBadMessages(Exception):
    """The client keeps sending what is not a frame: the route closes with 1008."""


def error_event(message: str, seq: int | None, dropped: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"message": message}
    if seq is not None:
        data["seq"] = seq
    if dropped is not None:
        data["dropped"] = dropped
    return {"type": "error", "data": data}
