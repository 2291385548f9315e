"""The gateway's TritonClient against a real tritonserver: results equal to tritonclient's own,
shared memory, errors mapped to gateway errors, deadlines, and one client that outlives a Triton
stop, a restart on the same ports, and a crash."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import shared_memory as shm

from export.samples import astronaut_crop
from gateway.errors import ModelNotReady, Overloaded, Unavailable, UpstreamTimeout
from gateway.settings import Settings
from gateway.triton_client import TritonClient
from serving.launcher import TritonServer

pytestmark = pytest.mark.integration

T = TypeVar("T")
ENSEMBLE = "upscale_realesrgan_x4plus"
FLOAT_MODEL = "realesrgan_x4plus"
OUR_REGION = re.compile(r"^facet_[0-9a-f]{32}$")  # TritonClient's per-call region names
SCENARIO_LIMIT_S = 60.0


@pytest.fixture(scope="module")
def served(start_triton, tiny_sr_repository: Path) -> TritonServer:
    return start_triton(tiny_sr_repository)


def settings_for(server: TritonServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "triton_grpc_url": server.grpc_url,
        "triton_timeout_s": 20.0,
        "triton_readiness_interval_s": 0.2,
    }
    return Settings(**(values | overrides))


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """Run one scenario on a fresh loop, bounded so that a hang fails instead of stalling."""
    return asyncio.run(asyncio.wait_for(scenario, SCENARIO_LIMIT_S))


@contextlib.asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[TritonClient]:
    client = TritonClient(settings)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


def photo_tiles() -> np.ndarray:
    return np.stack([astronaut_crop(32), astronaut_crop(32)[:, ::-1]]).copy()


def float_tile(side: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((1, 3, side, side), dtype=np.float32)


def sync_infer(url: str, tiles: np.ndarray) -> np.ndarray:
    client = grpcclient.InferenceServerClient(url)
    tensor = grpcclient.InferInput("image", list(tiles.shape), "UINT8")
    tensor.set_data_from_numpy(tiles)
    result = client.infer(
        ENSEMBLE, [tensor], outputs=[grpcclient.InferRequestedOutput("upscaled_image")]
    )
    return result.as_numpy("upscaled_image")


def registered_regions(url: str) -> list[str]:
    status = grpcclient.InferenceServerClient(url).get_system_shared_memory_status(as_json=True)
    return sorted(status.get("regions", {}))


def leftover_region_files() -> list[str]:
    return [path.name for path in Path("/dev/shm").iterdir() if OUR_REGION.match(path.name)]


def test_infer_returns_exactly_what_the_sync_client_returns(served: TritonServer) -> None:
    tiles = photo_tiles()
    expected = sync_infer(served.grpc_url, tiles)

    async def scenario() -> dict[str, np.ndarray]:
        async with connected(settings_for(served)) as client:
            return await client.infer(ENSEMBLE, {"image": tiles}, ["upscaled_image"])

    result = run(scenario())
    assert list(result) == ["upscaled_image"]
    assert result["upscaled_image"].dtype == np.uint8
    assert result["upscaled_image"].shape == (2, 128, 128, 3)
    np.testing.assert_array_equal(result["upscaled_image"], expected)


def test_shared_memory_gives_the_same_bytes_and_leaves_nothing_behind(
    served: TritonServer,
) -> None:
    tiles, low_res = photo_tiles(), float_tile(48)

    async def infer_both(settings: Settings) -> tuple[np.ndarray, np.ndarray]:
        async with connected(settings) as client:
            image = await client.infer(ENSEMBLE, {"image": tiles}, ["upscaled_image"])
            # An exact size hint must fit too (4x upscale, float32).
            hint = {"high_res": low_res.nbytes * 16}
            high = await client.infer(
                FLOAT_MODEL, {"low_res": low_res}, ["high_res"], output_nbytes=hint
            )
            return image["upscaled_image"], high["high_res"]

    on = run(infer_both(settings_for(served, triton_use_shared_memory=True)))
    off = run(infer_both(settings_for(served, triton_use_shared_memory=False)))
    assert on[0].dtype == np.uint8 and on[1].dtype == np.float32
    np.testing.assert_array_equal(on[0], off[0])
    np.testing.assert_array_equal(on[1], off[1])
    assert on[0].flags.writeable, "shared-memory outputs are copies, not views of a freed region"
    assert registered_regions(served.grpc_url) == []
    assert leftover_region_files() == [] and shm.mapped_shared_memory_regions() == []


def test_unknown_model_is_model_not_ready_naming_it(served: TritonServer) -> None:
    async def scenario() -> None:
        async with connected(settings_for(served)) as client:
            with pytest.raises(ModelNotReady) as raised:
                await client.infer("no_such_model", {"image": photo_tiles()}, ["upscaled_image"])
            assert raised.value.model == "no_such_model" and "no_such_model" in raised.value.detail
            assert raised.value.status == 503

    run(scenario())


def test_readiness_reports_the_server_and_the_models_asked_about(served: TritonServer) -> None:
    async def scenario() -> dict[str, Any]:
        async with connected(settings_for(served)) as client:
            assert await client.is_model_ready(ENSEMBLE) is True
            assert await client.is_model_ready("no_such_model") is False
            return await client.check_readiness()

    snapshot = run(scenario())
    assert snapshot["server_live"] is True and snapshot["server_ready"] is True
    assert snapshot["models"] == {ENSEMBLE: True, "no_such_model": False}
    assert snapshot["error"] is None and snapshot["checked_at"] > time.time() - 10


@pytest.mark.parametrize("shared_memory", [False, True])
def test_a_tiny_deadline_is_an_upstream_timeout(served: TritonServer, shared_memory: bool) -> None:
    settings = settings_for(served, triton_use_shared_memory=shared_memory)
    big = float_tile(512)

    async def scenario() -> float:
        async with connected(settings) as client:
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout) as raised:
                await client.infer(FLOAT_MODEL, {"low_res": big}, ["high_res"], timeout_s=0.001)
            assert raised.value.status == 504
            return time.monotonic() - started

    assert run(scenario()) < 1.0
    # The region is unregistered and unlinked even though the call failed.
    assert registered_regions(served.grpc_url) == []
    assert leftover_region_files() == []


def test_a_full_triton_queue_is_overloaded(triton: TritonServer) -> None:
    # slow_matmul: one instance, max_batch_size 1 and a queue of one.
    work = np.zeros((1, 512, 512), np.float32)

    async def scenario() -> list[Any]:
        async with connected(settings_for(triton)) as client:
            calls = [client.infer("slow_matmul", {"x": work}, ["y"]) for _ in range(6)]
            return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = run(scenario())
    overloaded = [o for o in outcomes if isinstance(o, Overloaded)]
    assert overloaded and overloaded[0].retry_after
    assert all(isinstance(o, dict | Overloaded) for o in outcomes), outcomes


def test_one_client_survives_a_stop_a_restart_on_the_same_ports_and_a_crash(
    start_triton, tiny_sr_repository: Path
) -> None:
    server = start_triton(tiny_sr_repository)
    ports = {
        "grpc_port": server.settings.grpc_port,
        "http_port": server.settings.http_port,
        "metrics_port": server.settings.metrics_port,
    }
    tile, big = float_tile(16, seed=1), float_tile(384)

    async def infer_big(client: TritonClient) -> dict[str, np.ndarray]:
        return await client.infer(FLOAT_MODEL, {"low_res": big}, ["high_res"])

    async def scenario() -> None:
        async with connected(settings_for(server)) as client:
            before = await client.infer(FLOAT_MODEL, {"low_res": tile}, ["high_res"])

            # Graceful stop while requests run: they finish or fail fast, none hangs.
            outcomes = await stop_during_requests(client, server, infer_big)
            assert all(isinstance(o, dict | Unavailable | UpstreamTimeout) for o in outcomes)
            assert any(isinstance(o, Unavailable) for o in outcomes), outcomes
            await expect_unavailable_fast(client, tile)
            snapshot = await client.check_readiness()
            assert snapshot["server_ready"] is False and "UNAVAILABLE" in snapshot["error"]

            restarted = await asyncio.to_thread(start_triton, tiny_sr_repository, **ports)
            after = await infer_until_ok(client, tile)
            np.testing.assert_array_equal(after["high_res"], before["high_res"])
            await wait_until_ready(client)

            # A crash mid-request: the calls in flight fail at once instead of waiting out
            # their deadline.
            in_flight = [asyncio.create_task(infer_big(client)) for _ in range(3)]
            await asyncio.sleep(0.3)
            started = time.monotonic()
            assert restarted._process is not None
            os.killpg(restarted._process.pid, signal.SIGKILL)
            crashed = await asyncio.gather(*in_flight, return_exceptions=True)
            assert time.monotonic() - started < 2.0
            assert all(isinstance(o, dict) or type(o) is Unavailable for o in crashed), crashed
            assert any(isinstance(o, Unavailable) for o in crashed), crashed
            await asyncio.to_thread(restarted.stop)  # reap the stubs

    run(scenario())


async def stop_during_requests(client: TritonClient, server: TritonServer, infer: Any) -> list[Any]:
    """Stop `server` while three requests run and send more while it drains and after."""
    in_flight = [asyncio.create_task(infer(client)) for _ in range(3)]
    await asyncio.sleep(0.3)
    stopping = asyncio.create_task(asyncio.to_thread(server.stop))
    await asyncio.sleep(0.3)
    during = asyncio.create_task(infer(client))
    await stopping
    after = asyncio.create_task(infer(client))
    return await asyncio.gather(*in_flight, during, after, return_exceptions=True)


async def expect_unavailable_fast(client: TritonClient, tile: np.ndarray) -> None:
    started = time.monotonic()
    with pytest.raises(Unavailable) as raised:
        await client.infer(FLOAT_MODEL, {"low_res": tile}, ["high_res"])
    assert type(raised.value) is Unavailable and raised.value.retry_after
    assert time.monotonic() - started < 1.0


async def infer_until_ok(client: TritonClient, tile: np.ndarray) -> dict[str, np.ndarray]:
    """Retry while the channel reconnects (its backoff is capped at about 2 s)."""
    deadline = time.monotonic() + 5.0
    while True:
        try:
            return await client.infer(FLOAT_MODEL, {"low_res": tile}, ["high_res"])
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def wait_until_ready(client: TritonClient) -> None:
    """The background poll, not an explicit check, must see Triton back."""
    deadline = time.monotonic() + 3.0
    while not client.readiness()["server_ready"]:
        assert time.monotonic() < deadline, client.readiness()
        await asyncio.sleep(0.05)
    assert client.readiness()["models"].get(FLOAT_MODEL) is True
