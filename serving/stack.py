"""Triton plus the REST gateway as one foreground process tree (`make serve`, `make up`).

The gateway runs as a child process (`python -m gateway`), so it never shares an interpreter with
anything that imports torch. The stack supervises both: a Triton that dies is restarted on the
same ports with growing pauses (1 s, 2 s, … 30 s) while the gateway stays up, answering 503 with
Retry-After until its readiness poll sees Triton again; a gateway that dies is restarted the same
way. The log of a Triton that crashed is kept beside the new one (`<log>.crashed`)."""

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
FIRST_RESTART_PAUSE_S = 1.0
MAX_RESTART_PAUSE_S = 30.0
# A process that stayed up this long counts as healthy again: its next crash restarts quickly.
STABLE_AFTER_S = 60.0


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


class Backoff:
    """Pauses before restarts: doubling from FIRST_RESTART_PAUSE_S up to MAX_RESTART_PAUSE_S,
    back to the first once the process has run for STABLE_AFTER_S."""

    def __init__(self) -> None:
        self._pause = FIRST_RESTART_PAUSE_S
        self._started = time.monotonic()

    def started(self) -> None:
        self._started = time.monotonic()

    def next_pause(self) -> float:
        if time.monotonic() - self._started >= STABLE_AFTER_S:
            self._pause = FIRST_RESTART_PAUSE_S
        pause = self._pause
        self._pause = min(self._pause * 2, MAX_RESTART_PAUSE_S)
        return pause


def restart_triton(server: TritonServer, backoff: Backoff, say: Callable[[str], None]) -> None:
    """Start a dead Triton again on the same ports, waiting longer after each failed try."""
    say(f"tritonserver exited with code {server.poll()}; restarting it (log: {server.log_path})")
    server.stop()
    if server.log_path.is_file():
        server.log_path.replace(server.log_path.with_name(f"{server.log_path.name}.crashed"))
    while True:
        pause = backoff.next_pause()
        time.sleep(pause)
        try:
            server.start()
        except ServingError as error:
            say(f"tritonserver did not come back ({error}); trying again")
            continue
        backoff.started()
        say(f"tritonserver is ready again after a {pause:.0f} s pause")
        return


def restart_gateway(
    settings: StackSettings, server: TritonServer, backoff: Backoff, say: Callable[[str], None]
) -> subprocess.Popen[bytes]:
    while True:
        time.sleep(backoff.next_pause())
        gateway = start_gateway(settings, server)
        try:
            wait_for_gateway(settings.gateway_url, gateway, GATEWAY_START_TIMEOUT_S)
        except ServingError as error:
            say(f"the gateway did not come back ({error}); trying again")
            stop_gateway(gateway)
            continue
        backoff.started()
        say(f"the gateway is ready again: {settings.gateway_url}")
        return gateway


def run_stack(settings: StackSettings, say: Callable[[str], None]) -> int:
    """Run until interrupted (exit 0), restarting whichever process dies."""
    server = TritonServer(settings.triton)
    gateway: subprocess.Popen[bytes] | None = None
    triton_backoff, gateway_backoff = Backoff(), Backoff()
    try:
        with server:
            gateway = start_gateway(settings, server)
            wait_for_gateway(settings.gateway_url, gateway, GATEWAY_START_TIMEOUT_S)
            say(f"Facet is ready: {settings.gateway_url}/docs (Triton gRPC {server.grpc_url})")
            say(f"  logs: {settings.gateway_log}, {server.log_path}; Ctrl-C stops both.")
            while True:
                time.sleep(WATCH_INTERVAL_S)
                if server.poll() is not None:
                    restart_triton(server, triton_backoff, say)
                if gateway.poll() is not None:
                    say(f"the gateway exited with code {gateway.returncode}; restarting it")
                    gateway = restart_gateway(settings, server, gateway_backoff, say)
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        if gateway is not None:
            stop_gateway(gateway)
