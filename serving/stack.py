"""Triton plus the REST gateway as one foreground process tree (`make serve`, `make up`).

The gateway runs as a child process (`python -m gateway`), so it never shares an interpreter with
anything that imports torch, and a crash of either side stops both."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from serving.errors import ServingError
from serving.launcher import TritonServer, TritonSettings

WATCH_INTERVAL_S = 0.5
GATEWAY_START_TIMEOUT_S = 60.0
GATEWAY_STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class StackSettings:
    triton: TritonSettings
    gateway_port: int = 8000
    gateway_log: Path = Path("run/gateway.log")

    @property
    def gateway_url(self) -> str:
        return f"http://{self.triton.host}:{self.gateway_port}"


def gateway_environment(settings: StackSettings, server: TritonServer) -> dict[str, str]:
    env = dict(os.environ)
    env["FACET_TRITON_GRPC_URL"] = server.grpc_url
    env["FACET_HOST"] = settings.triton.host
    env["FACET_PORT"] = str(settings.gateway_port)
    return env


def start_gateway(settings: StackSettings, server: TritonServer) -> subprocess.Popen[bytes]:
    settings.gateway_log.parent.mkdir(parents=True, exist_ok=True)
    log = settings.gateway_log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "gateway"],
        env=gateway_environment(settings, server),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us only; we stop the gateway in order
    )


def wait_for_gateway(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServingError(f"the gateway exited with code {process.returncode} at start")
        try:
            with urllib.request.urlopen(f"{url}/openapi.json", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(WATCH_INTERVAL_S)
    raise ServingError(f"the gateway did not answer on {url} within {timeout_s:.0f} s")


def stop_gateway(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(GATEWAY_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_stack(settings: StackSettings, say: Callable[[str], None]) -> int:
    """Run until interrupted (exit 0) or until either process dies (exit 1)."""
    server = TritonServer(settings.triton)
    gateway: subprocess.Popen[bytes] | None = None
    try:
        with server:
            gateway = start_gateway(settings, server)
            wait_for_gateway(settings.gateway_url, gateway, GATEWAY_START_TIMEOUT_S)
            say(f"Facet is ready: {settings.gateway_url}/docs (Triton gRPC {server.grpc_url})")
            say(f"  logs: {settings.gateway_log}, {server.log_path}; Ctrl-C stops both.")
            while server.poll() is None and gateway.poll() is None:
                time.sleep(WATCH_INTERVAL_S)
            say("a process of the stack exited; stopping the rest")
            return 1
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        if gateway is not None:
            stop_gateway(gateway)
