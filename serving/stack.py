"""Triton plus the REST gateway as one foreground process tree (`make serve`, `make up`).

The gateway runs as a child process (`python -m gateway`), so it never shares an interpreter with
anything that imports torch. The stack supervises both: a Triton that dies is restarted on the
same ports with growing pauses (1 s, 2 s, … 30 s) while the gateway stays up, answering 503 with
Retry-After until its readiness poll sees Triton again; a gateway that dies is restarted the same
way. The log of a Triton that crashed is kept beside the new one (`<log>.crashed`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from serving.errors import ServingError
from serving.gateway_process import GatewayProcess, GatewaySettings
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


def gateway_settings(settings: StackSettings, server: TritonServer) -> GatewaySettings:
    """The gateway beside `server`: on Triton's host, pointed at its gRPC port; every other
    setting comes from FACET_* variables in our environment."""
    return GatewaySettings(
        port=settings.gateway_port,
        host=settings.triton.host,
        triton_grpc_url=server.grpc_url,
        log_file=settings.gateway_log,
        start_timeout_s=GATEWAY_START_TIMEOUT_S,
        stop_timeout_s=GATEWAY_STOP_TIMEOUT_S,
    )


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
    gateway: GatewayProcess, url: str, backoff: Backoff, say: Callable[[str], None]
) -> None:
    """Start a dead gateway again on the same port and data directory, like restart_triton."""
    say(f"the gateway exited with code {gateway.poll()}; restarting it")
    while True:
        time.sleep(backoff.next_pause())
        try:
            gateway.restart()
        except ServingError as error:
            say(f"the gateway did not come back ({error}); trying again")
            continue
        backoff.started()
        say(f"the gateway is ready again: {url}")
        return


def run_stack(settings: StackSettings, say: Callable[[str], None]) -> int:
    """Run until interrupted (exit 0), restarting whichever process dies."""
    server = TritonServer(settings.triton)
    gateway = GatewayProcess(gateway_settings(settings, server))
    triton_backoff, gateway_backoff = Backoff(), Backoff()
    try:
        with server, gateway:
            say(f"Facet is ready: {settings.gateway_url}/docs (Triton gRPC {server.grpc_url})")
            say(f"  logs: {settings.gateway_log}, {server.log_path}; Ctrl-C stops both.")
            while True:
                time.sleep(WATCH_INTERVAL_S)
                if server.poll() is not None:
                    restart_triton(server, triton_backoff, say)
                if gateway.poll() is not None:
                    restart_gateway(gateway, settings.gateway_url, gateway_backoff, say)
    except KeyboardInterrupt:
        say("stopping")
        return 0
