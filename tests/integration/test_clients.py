"""FacetTritonClient and `facet upscale --via grpc` against a real tritonserver (tiny synthetic
SR models): the client-side tiling equals the gateway's pipeline byte for byte, shared memory
changes nothing and leaves nothing behind, and errors arrive as FacetClientError subclasses."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image

from clients.cli import main
from clients.errors import NotFoundError, UnavailableError
from clients.triton_grpc import REGION_PREFIX, FacetTritonClient
from export.samples import astronaut
from gateway.pipelines.triton_upscaler import TritonTileUpscaler
from gateway.pipelines.upscale import UpscaleOptions, upscale_image
from gateway.settings import Settings
from gateway.triton_client import TritonClient
from serving.launcher import TritonServer, free_port
from tests.integration.triton_counts import read_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ENSEMBLES = {"upscale_realesrgan_x4plus", "upscale_realesr_general_x4v3"}
# Small tiles so a 50×70 photo makes 6 tiles in 2 batches (a partial last batch included).
TILING: dict[str, Any] = {"tile": 32, "tile_pad": 4, "pre_pad": 4, "batch": 4}


@pytest.fixture(scope="module")
def served(start_triton, tiny_sr_repository: Path) -> TritonServer:
    return start_triton(tiny_sr_repository)


def photo(height: int = 50, width: int = 70) -> np.ndarray:
    return np.ascontiguousarray(astronaut()[40 : 40 + height, 140 : 140 + width])


def gateway_reference(url: str, image: np.ndarray, model: str, outscale: int) -> np.ndarray:
    """The gateway's own pipeline and async Triton client, run in-process, same tiling."""
    options = UpscaleOptions(
        outscale=outscale,
        tile_size=TILING["tile"],
        tile_pad=TILING["tile_pad"],
        pre_pad=TILING["pre_pad"],
    )

    async def scenario() -> np.ndarray:
        client = TritonClient(Settings(triton_grpc_url=url, triton_timeout_s=30.0))
        await client.start()
        try:
            rgb, _ = await upscale_image(image, None, TritonTileUpscaler(client, model), options)
            return rgb
        finally:
            await client.close()

    return asyncio.run(scenario())


def leftovers(url: str) -> tuple[list[str], list[str]]:
    """Regions still registered with Triton, and region files still in /dev/shm."""
    status = grpcclient.InferenceServerClient(url).get_system_shared_memory_status(as_json=True)
    registered = sorted(status.get("regions", {}))
    files = sorted(p.name for p in Path("/dev/shm").glob(f"{REGION_PREFIX}*"))
    return registered, files


@pytest.mark.parametrize(
    ("model", "outscale"), [("realesrgan_x4plus", 4), ("realesr_general_x4v3", 2)]
)
def test_upscale_image_equals_the_gateway_pipeline_exactly(
    served: TritonServer, model: str, outscale: int
) -> None:
    image = photo()
    fractions: list[float] = []
    with FacetTritonClient(served.grpc_url, timeout_s=30) as client:
        result = client.upscale_image(
            image, model=model, outscale=outscale, progress=fractions.append, **TILING
        )
    assert result.shape == (50 * outscale, 70 * outscale, 3) and result.dtype == np.uint8
    np.testing.assert_array_equal(
        result, gateway_reference(served.grpc_url, image, model, outscale)
    )
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) == 2


def test_shared_memory_gives_identical_results_and_cleans_up(served: TritonServer) -> None:
    image = photo()
    alpha = np.tile(np.linspace(0, 255, 70, dtype=np.uint8), (50, 1))
    rgba = np.dstack([image, alpha])
    with FacetTritonClient(served.grpc_url, timeout_s=30) as wire:
        expected = wire.upscale_image(rgba, **TILING)
        tiles_expected = wire.upscale_tiles(np.stack([image[:32, :32], image[:32, 32:64]]))
    with FacetTritonClient(served.grpc_url, shared_memory=True, timeout_s=30) as client:
        result = client.upscale_image(rgba, **TILING)
        tiles = client.upscale_tiles(np.stack([image[:32, :32], image[:32, 32:64]]))
        low_res = np.random.default_rng(0).random((1, 3, 12, 12), dtype=np.float32)
        floats = client.infer("realesrgan_x4plus", {"low_res": low_res}, ["high_res"])
    np.testing.assert_array_equal(result, expected)
    np.testing.assert_array_equal(tiles, tiles_expected)
    assert result.shape == (200, 280, 4)
    # Alpha is resized linearly, exactly as the gateway does, not run through the model.
    linear = cv2.resize(alpha, (280, 200), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(result[..., 3], linear)
    assert floats["high_res"].shape == (1, 3, 48, 48)  # no size hint: output over the wire
    assert leftovers(served.grpc_url) == ([], [])


def test_models_lists_the_ensembles_ready_with_their_tensors(served: TritonServer) -> None:
    with FacetTritonClient(served.grpc_url) as client:
        models = {m.name: m for m in client.models()}
        client.upscale_tiles(photo(20, 20)[None])
        stats = read_until(
            lambda: client.statistics("upscale_realesrgan_x4plus"),
            lambda s: s.success_count >= 1,
        )
    assert set(models) >= ENSEMBLES
    for name in ENSEMBLES:
        summary = models[name]
        assert summary.ready and summary.state == "READY" and summary.platform == "ensemble"
        assert [str(t) for t in summary.inputs] == ["image UINT8[-1,-1,-1,3]"]
        assert [str(t) for t in summary.outputs] == ["upscaled_image UINT8[-1,-1,-1,3]"]
    assert models["realesrgan_x4plus"].inputs[0].datatype == "FP32"
    assert stats.success_count >= 1 and stats.inference_count >= 1 and stats.fail_count == 0
    assert stats.avg_request_ms > 0


def test_errors_arrive_as_client_errors(served: TritonServer) -> None:
    with FacetTritonClient(served.grpc_url, timeout_s=10) as client:
        with pytest.raises(NotFoundError, match="no_such_model"):
            client.upscale_tiles(photo(8, 8)[None], model="no_such_model")
        with pytest.raises(NotFoundError):
            client.statistics("no_such_model")
    with FacetTritonClient(served.grpc_url, shared_memory=True, timeout_s=10) as client:
        with pytest.raises(NotFoundError):
            client.upscale_tiles(photo(8, 8)[None], model="no_such_model")
        assert leftovers(served.grpc_url) == ([], [])  # a failed call cleans up too
    with (
        FacetTritonClient(f"127.0.0.1:{free_port()}", timeout_s=5) as offline,
        pytest.raises(UnavailableError, match="unavailable"),
    ):
        offline.models()


def test_cli_models_and_exit_codes(served: TritonServer, capsys, tmp_path: Path) -> None:
    assert main(["models", "--url", served.grpc_url]) == 0
    table = capsys.readouterr().out
    assert "upscale_realesrgan_x4plus" in table and "READY" in table and "models ready" in table
    source = tmp_path / "p.png"
    Image.fromarray(photo(16, 16)).save(source)
    unknown = ["upscale", str(source), "--url", served.grpc_url, "--model", "nope", "--no-progress"]
    assert main(unknown) == 2
    assert "nope" in capsys.readouterr().err
    offline = ["upscale", str(source), "--url", f"127.0.0.1:{free_port()}", "--no-progress"]
    assert main(offline) == 1


def test_cli_upscale_via_grpc_writes_a_4x_png(served: TritonServer, tmp_path: Path) -> None:
    source, output = tmp_path / "photo.png", tmp_path / "out.png"
    Image.fromarray(photo(30, 40)).save(source)
    command = [sys.executable, "-m", "clients", "upscale", str(source), "-o", str(output)]
    command += ["--via", "grpc", "--url", served.grpc_url, "--tile", "32", "--shm"]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    with Image.open(io.BytesIO(output.read_bytes())) as written:
        assert written.format == "PNG" and written.size == (160, 120) and written.mode == "RGB"
    assert "160×120 PNG" in finished.stdout
    assert leftovers(served.grpc_url) == ([], [])
