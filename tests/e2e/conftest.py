"""End-to-end fixtures: a real tritonserver (tiny synthetic models) and the gateway as its own
process (`python -m gateway`), talked to over HTTP like any client would."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from serving.launcher import TritonServer, free_port
from tests.integration.conftest import (  # noqa: F401 (fixtures re-exported for this folder)
    start_triton,
    tiny_sr_repository,
)

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 60.0


@dataclass
class Gateway:
    """One `python -m gateway` process; `restart()` keeps its port and data directory."""

    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    history: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            env=self.env,
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        self.history.append(self.process)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited at start:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/openapi.json", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gateway not ready:\n{self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


StartGateway = Callable[..., Gateway]


@pytest.fixture(scope="module")
def shared_triton(start_triton, tiny_sr_repository: Path) -> TritonServer:  # noqa: F811
    return start_triton(tiny_sr_repository)


@pytest.fixture
def start_gateway(tmp_path: Path, tiny_sr_repository: Path) -> Iterator[StartGateway]:  # noqa: F811
    gateways: list[Gateway] = []

    def start(triton: TritonServer, **settings: object) -> Gateway:
        port = free_port()
        env = dict(os.environ)
        env.update(
            {
                "FACET_PORT": str(port),
                "FACET_TRITON_GRPC_URL": triton.grpc_url,
                "FACET_DATA_DIR": str(tmp_path / f"data{len(gateways)}"),
                "FACET_TILE_SIZE": "32",
                "FACET_TILE_PAD": "4",
                "FACET_TRITON_TIMEOUT_S": "10",
                "FACET_TRITON_READINESS_INTERVAL_S": "0.5",
                # Tests poll status many times a second; the limits get their own test.
                "FACET_RATE_LIMITS_ENABLED": "false",
            }
        )
        env.update({f"FACET_{k.upper()}": str(v) for k, v in settings.items()})
        gateway = Gateway(env=env, port=port, log=tmp_path / f"gateway{len(gateways)}.log")
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
def face_triton(start_triton, face_repository: Path) -> TritonServer:  # noqa: F811
    return start_triton(face_repository)


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
