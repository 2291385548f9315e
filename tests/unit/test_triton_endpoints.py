"""Several Tritons: calls spread over the ready ones, a failed one left out with backoff, and
only the failures that mean "not here" sent on to the next endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from gateway.errors import UpstreamError
from gateway.settings import Settings
from gateway.triton_client import TritonClient
from gateway.triton_endpoints import EndpointPool


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_healthy_endpoints_take_calls_in_turn() -> None:
    pool = EndpointPool([("a", "A"), ("b", "B"), ("c", "C")], clock=Clock())
    firsts = [pool.candidates()[0].client for _ in range(6)]
    assert firsts == ["A", "B", "C", "A", "B", "C"]


def test_a_failed_endpoint_waits_out_a_backoff_that_doubles_with_each_failure() -> None:
    clock = Clock()
    pool = EndpointPool([("a", "A"), ("b", "B")], clock=clock)
    a = pool.endpoints[0]
    pool.mark_failed(a)
    assert [e.client for e in pool.candidates()] == ["B", "A"]
    clock.now += 1.01
    assert {pool.candidates()[0].client for _ in range(4)} == {"A", "B"}, "on trial again"
    pool.mark_failed(a)
    clock.now += 1.5
    assert [e.client for e in pool.candidates()] == ["B", "A"], "second failure: 2 s backoff"
    pool.mark_ready(a)
    assert {pool.candidates()[0].client for _ in range(4)} == {"A", "B"}


def test_with_every_endpoint_down_the_soonest_back_is_tried_first() -> None:
    clock = Clock()
    pool = EndpointPool([("a", "A"), ("b", "B")], clock=clock)
    pool.mark_failed(pool.endpoints[0])
    pool.mark_failed(pool.endpoints[0])  # 2 s
    pool.mark_failed(pool.endpoints[1])  # 1 s
    assert [e.client for e in pool.candidates()] == ["B", "A"]


class FakeTriton:
    """A Triton endpoint's gRPC client, answering infer with one fixed failure or a tensor."""

    def __init__(self, failure: str | None = None) -> None:
        self.failure = failure
        self.calls = 0

    async def infer(self, model: str, inputs: Any, outputs: Any, client_timeout: float) -> Any:
        self.calls += 1
        if self.failure is not None:
            raise InferenceServerException("refused", status=self.failure)
        return Result()


class Result:
    def as_numpy(self, name: str) -> np.ndarray:
        return np.zeros(3, np.float32)


def client_over(*fakes: FakeTriton) -> TritonClient:
    client = TritonClient(Settings())
    client._pool = EndpointPool([(str(i), f) for i, f in enumerate(fakes)])  # type: ignore[misc]
    return client


def infer(client: TritonClient) -> dict[str, np.ndarray]:
    inputs = {"x": np.zeros(3, np.float32)}
    return asyncio.run(client.infer("m", inputs, ["y"]))


def test_an_unreachable_endpoint_sends_the_call_to_the_next_and_leaves_the_rotation() -> None:
    down, up = FakeTriton("StatusCode.UNAVAILABLE"), FakeTriton()
    client = client_over(down, up)
    assert infer(client)["y"].shape == (3,)
    assert down.calls == 1 and up.calls == 1
    assert client.readiness()["endpoints"][0] == {"index": 0, "ready": False, "failures": 1}
    infer(client)
    assert down.calls == 1, "a failed endpoint gets no calls during its backoff"


def test_a_rejected_request_is_not_sent_again_elsewhere() -> None:
    rejecting, other = FakeTriton("StatusCode.INVALID_ARGUMENT"), FakeTriton()
    client = client_over(rejecting, other)
    with pytest.raises(UpstreamError):
        infer(client)
    assert rejecting.calls == 1 and other.calls == 0
