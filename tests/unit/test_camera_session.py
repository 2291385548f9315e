"""The live camera's frame handling: parsing, the one-frame slot that always keeps the newest,
the frame-rate limit, and a session answering with sequence numbers and drop counts."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import numpy as np
import pytest

from gateway.errors import BadRequest
from gateway.recognition.camera import (
    BadMessage,
    CameraLimits,
    CameraSession,
    Frame,
    FrameSlot,
    TooManyBadMessages,
    parse_frame,
)

LIMITS = CameraLimits(max_frame_bytes=1000, max_fps=1000.0)


def frame(seq: int) -> Frame:
    return Frame(seq, b"jpeg", time.monotonic())


def test_the_slot_hands_out_the_newest_frame_and_counts_the_ones_it_replaced():
    async def scenario() -> tuple[int, int]:
        slot: FrameSlot[Frame] = FrameSlot(max_fps=1000.0)
        for seq in (1, 2, 3):
            slot.offer(frame(seq))
        taken, dropped = await slot.take()
        return taken.seq, dropped

    assert asyncio.run(scenario()) == (3, 2)


def test_takes_are_spaced_by_the_frame_rate_limit_and_still_get_the_newest():
    async def scenario() -> tuple[float, int, int]:
        slot: FrameSlot[Frame] = FrameSlot(max_fps=10.0)
        slot.offer(frame(1))
        await slot.take()
        started = time.monotonic()
        slot.offer(frame(2))
        later = asyncio.get_running_loop().call_later(0.03, slot.offer, frame(3))
        taken, dropped = await slot.take()
        later.cancel()
        return time.monotonic() - started, taken.seq, dropped

    waited, seq, dropped = asyncio.run(scenario())
    assert waited >= 0.09 and seq == 3 and dropped == 1


def test_frames_come_as_binary_or_base64_json_with_their_own_sequence_number():
    now = 5.0
    assert parse_frame({"bytes": b"abc"}, 4, LIMITS, now) == Frame(4, b"abc", now)
    text = json.dumps({"type": "frame", "seq": 9, "image": base64.b64encode(b"xyz").decode()})
    assert parse_frame({"text": text}, 1, LIMITS, now) == Frame(9, b"xyz", now)
    data_url = "data:image/jpeg;base64," + base64.b64encode(b"xyz").decode()
    as_url = json.dumps({"type": "frame", "image": data_url})
    assert parse_frame({"text": as_url}, 2, LIMITS, now).data == b"xyz"


@pytest.mark.parametrize(
    "message",
    [
        {"bytes": b""},
        {"bytes": b"x" * 1001},
        {"text": "not json"},
        {"text": json.dumps({"type": "hello"})},
        {"text": json.dumps({"type": "frame", "image": "***"})},
        {"text": json.dumps({"type": "frame", "image": 5})},
        {"text": json.dumps({"type": "frame", "seq": True, "image": "eHl6"})},
        {"text": json.dumps({"type": "frame", "seq": -1, "image": "eHl6"})},
        {"text": json.dumps({"type": "frame", "image": base64.b64encode(b"x" * 1001).decode()})},
        {"text": "x" * 5000},
    ],
)
def test_what_is_not_a_usable_frame_is_a_bad_message(message):
    with pytest.raises(BadMessage):
        parse_frame(message, 1, LIMITS, 0.0)


class Client:
    """Sends the given messages at once, then stays connected until told to leave."""

    def __init__(self, messages: list[dict[str, Any]], last_seq: int = 5) -> None:
        self.pending = list(messages)
        self.last_seq = last_seq
        self.sent: list[dict[str, Any]] = []
        self.leave = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        if self.pending:
            return self.pending.pop(0)
        await self.leave.wait()
        return {"type": "websocket.disconnect"}

    async def send(self, event: dict[str, Any]) -> None:
        self.sent.append(event)
        if event["data"].get("seq") == self.last_seq:
            self.leave.set()


def decode(data: bytes) -> np.ndarray:
    if data == b"bad":
        raise BadRequest("not an image")
    return np.zeros((4, 6, 3), np.uint8)


async def slow_analyse(image: np.ndarray) -> dict[str, Any]:
    await asyncio.sleep(0.05)
    return {"faces": [], "objects": []}


def test_a_burst_is_answered_for_the_first_and_newest_frames_with_the_drops_counted():
    client = Client([{"type": "websocket.receive", "bytes": b"f"} for _ in range(5)])
    session = CameraSession(client.receive, client.send, decode, slow_analyse, LIMITS)

    asyncio.run(asyncio.wait_for(session.run(), 5))

    results = [e["data"] for e in client.sent if e["type"] == "frame_result"]
    assert results[-1]["seq"] == 5, "the newest frame is always processed"
    assert len(results) + sum(r["dropped"] for r in results) == 5
    assert sum(r["dropped"] for r in results) >= 1
    assert (results[-1]["width"], results[-1]["height"]) == (6, 4)


def run(client: Client, analyse: Any) -> None:
    session = CameraSession(client.receive, client.send, decode, analyse, LIMITS)
    asyncio.run(asyncio.wait_for(session.run(), 5))


def test_an_undecodable_frame_gets_an_error_with_its_number_and_the_stream_goes_on():
    async def fast(image: np.ndarray) -> dict[str, Any]:
        return {}

    first = Client([{"bytes": b"bad"}], last_seq=1)
    run(first, fast)
    assert first.sent == [
        {"type": "error", "data": {"message": "not an image", "seq": 1, "dropped": 0}}
    ]

    then = Client([{"text": "nope"}, {"bytes": b"f"}], last_seq=1)
    run(then, fast)
    assert then.sent[0]["type"] == "error" and "binary message" in then.sent[0]["data"]["message"]
    assert then.sent[-1]["type"] == "frame_result" and then.sent[-1]["data"]["seq"] == 1

    broken = Client([{"text": "{broken"}], last_seq=1)
    run(broken, fast)
    assert broken.sent[0]["type"] == "error" and "JSON" in broken.sent[0]["data"]["message"]


def test_a_client_sending_only_garbage_is_closed():
    client = Client([{"text": "garbage"}] * 25)
    session = CameraSession(client.receive, client.send, decode, slow_analyse, LIMITS)
    with pytest.raises(TooManyBadMessages):
        asyncio.run(asyncio.wait_for(session.run(), 5))
