"""`python -m serving stack` (what `make serve` and `make up` run) keeps the service alive:
a Triton killed with SIGKILL is restarted while the gateway stays up answering 503."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from serving.launcher import free_ports
from tests.e2e.conftest import ROOT, photo_bytes, wait_for_status

pytestmark = pytest.mark.integration


def wait_for(url: str, status: int, timeout_s: float) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    last: httpx.Response | str = "no answer"
    while time.monotonic() < deadline:
        try:
            last = httpx.get(url, timeout=2)
            if last.status_code == status:
                return last
        except httpx.HTTPError as error:
            last = str(error)
        time.sleep(0.3)
    raise AssertionError(f"{url} never answered {status}: last {last}")


def tritonserver_of(stack: subprocess.Popen[bytes]) -> psutil.Process:
    for child in psutil.Process(stack.pid).children(recursive=True):
        if child.name() == "tritonserver":
            return child
    raise AssertionError("the stack runs no tritonserver")


def test_a_killed_triton_is_restarted_while_the_gateway_answers_503(
    tiny_sr_repository: Path, tmp_path: Path
) -> None:
    grpc, http, metrics, gateway_port = free_ports(4)
    env = dict(os.environ)
    env.update(
        {
            "FACET_DATA_DIR": str(tmp_path / "data"),
            "FACET_TILE_SIZE": "32",
            "FACET_TILE_PAD": "4",
            "FACET_TRITON_READINESS_INTERVAL_S": "0.5",
            "FACET_RATE_LIMITS_ENABLED": "false",
        }
    )
    command = [
        sys.executable, "-m", "serving", "stack", "--repository", str(tiny_sr_repository),
        "--grpc-port", str(grpc), "--http-port", str(http), "--metrics-port", str(metrics),
        "--gateway-port", str(gateway_port), "--run-dir", str(tmp_path / "run"),
        "--gateway-log", str(tmp_path / "gateway.log"),
    ]  # fmt: skip
    log = (tmp_path / "stack.log").open("wb")
    stack = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{gateway_port}"
    try:
        wait_for(f"{url}/health", 200, timeout_s=120)
        first = tritonserver_of(stack)
        first.send_signal(signal.SIGKILL)
        down = wait_for(f"{url}/health", 503, timeout_s=15)
        assert int(down.headers["retry-after"]) >= 1
        wait_for(f"{url}/health", 200, timeout_s=90)
        assert tritonserver_of(stack).pid != first.pid and stack.poll() is None
        with httpx.Client(base_url=url, timeout=30) as client:
            files = {"file": ("a.png", photo_bytes(), "image/png")}
            job = client.post("/upscale", files=files, data={"scale": "2"}).json()
            done = wait_for_status(client, job["job_id"], {"completed", "failed"})
            assert done["status"] == "completed", done
        assert "restarting it" in (tmp_path / "stack.log").read_text()
    finally:
        stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(60)
        except subprocess.TimeoutExpired:
            stack.kill()
        log.close()
