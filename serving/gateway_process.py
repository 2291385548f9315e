"""Run Facet's REST gateway (`python -m gateway`) as a child process, beside serving.launcher's
tritonserver.

The gateway reads every setting from a FACET_* environment variable (gateway/settings.py).
GatewaySettings names the few that decide where the process listens and keeps its jobs, and
passes any other as an override (`tile_size=32` becomes FACET_TILE_SIZE=32). Its own process is
the only thing that may import the gateway: nothing that imports torch shares its interpreter.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from serving.errors import ServingError
from serving.launcher import _port_is_free, read_log_tail

GATEWAY_COMMAND = (sys.executable, "-m", "gateway")
READY_PATH = "/openapi.json"  # served once the app is built and uvicorn listens
SETTING_PREFIX = "FACET_"
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_READY_POLL_S = 0.2
_READY_REQUEST_TIMEOUT_S = 2.0

SettingValue = str | int | float | bool | Path
# Variables GatewaySettings sets from its own fields; the launcher relies on host and port.
_FIELD_VARIABLES = {
    "FACET_HOST": "host",
    "FACET_PORT": "port",
    "FACET_TRITON_GRPC_URL": "triton_grpc_url",
    "FACET_DATA_DIR": "data_dir",
}


def setting_variable(name: str) -> str:
    """Return the environment variable of a gateway setting: `tile_size` -> FACET_TILE_SIZE."""
    if not _SETTING_NAME.match(name):
        raise ServingError(f"{name!r} is not a gateway setting name")
    upper = name.upper()
    return upper if upper.startswith(SETTING_PREFIX) else SETTING_PREFIX + upper


def setting_text(value: SettingValue) -> str:
    """Return a value as pydantic-settings reads it back (booleans as true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class GatewaySettings:
    """Everything that decides how one `python -m gateway` process is started."""

    port: int = 8000
    host: str = "127.0.0.1"
    triton_grpc_url: str | None = None  # FACET_TRITON_GRPC_URL; None: the environment's
    data_dir: Path | None = None  # FACET_DATA_DIR; None: the environment's or run/gateway
    # Any other FACET_* setting, by its name in gateway/settings.py or its variable.
    overrides: Mapping[str, SettingValue] = field(default_factory=dict)
    # The variables the gateway starts from; None: this process's environment at start().
    environment: Mapping[str, str] | None = None
    log_file: Path = Path("run/gateway.log")  # appended to, so a restart keeps the crash
    cwd: Path | None = None  # working directory (relative FACET_* paths); None: ours
    start_timeout_s: float = 60.0
    # uvicorn lets in-flight requests finish after SIGTERM before the app shuts down.
    stop_timeout_s: float = 15.0

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ServingError(f"gateway port {self.port} is not a TCP port")
        for name in self.overrides:
            variable = setting_variable(name)
            if variable in _FIELD_VARIABLES:
                raise ServingError(
                    f"set {variable} through GatewaySettings.{_FIELD_VARIABLES[variable]}, "
                    "not as an override"
                )


def build_environment(settings: GatewaySettings) -> dict[str, str]:
    """Return the gateway's environment: the base, then the overrides, then the named fields."""
    env = dict(os.environ if settings.environment is None else settings.environment)
    env.update(
        {setting_variable(name): setting_text(value) for name, value in settings.overrides.items()}
    )
    env["FACET_HOST"] = settings.host
    env["FACET_PORT"] = str(settings.port)
    if settings.triton_grpc_url is not None:
        env["FACET_TRITON_GRPC_URL"] = settings.triton_grpc_url
    if settings.data_dir is not None:
        env["FACET_DATA_DIR"] = str(settings.data_dir)
    return env


def _answers(url: str) -> bool:
    """Tell whether `url` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=_READY_REQUEST_TIMEOUT_S) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


_RUNNING: weakref.WeakSet[GatewayProcess] = weakref.WeakSet()


@atexit.register
def _stop_all_gateways() -> None:
    # Like tritonserver, the gateway runs in its own session, out of reach of our Ctrl-C.
    for gateway in list(_RUNNING):
        gateway.stop()


class GatewayProcess:
    """One `python -m gateway` child process; use as a context manager or call start()/stop().

    start() may be called again once the process has ended (after kill() or a crash); it keeps
    the port, data directory and log, so jobs written before survive.
    """

    def __init__(self, settings: GatewaySettings, command: Sequence[str] | None = None):
        self.settings = settings
        self._command = list(GATEWAY_COMMAND if command is None else command)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def log_path(self) -> Path:
        return self.settings.log_file

    @property
    def url(self) -> str:
        return f"http://{self._client_host}:{self.settings.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def _client_host(self) -> str:
        # A wildcard bind address is not something a client can connect to.
        return "127.0.0.1" if self.settings.host in ("0.0.0.0", "") else self.settings.host

    def environment(self) -> dict[str, str]:
        """Return the environment the gateway process gets."""
        return build_environment(self.settings)

    def start(self) -> None:
        """Spawn the gateway and return once it answers; raise ServingError with the log tail."""
        if self._process is not None and self._process.poll() is None:
            raise ServingError("this GatewayProcess is already started")
        self._release()
        settings = self.settings
        if not _port_is_free(settings.host, settings.port):
            # Another gateway there would answer our readiness check in place of this one.
            raise ServingError(f"port {settings.port} on {settings.host} is already in use")
        if settings.data_dir is not None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._spawn()
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _spawn(self) -> None:
        """Start the process with its output appended to the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        # A new session keeps terminal Ctrl-C away from the gateway: stop() decides when it ends.
        self._process = subprocess.Popen(
            self._command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.environment(),
            cwd=self.settings.cwd,
            start_new_session=True,
        )
        _RUNNING.add(self)

    def _wait_until_ready(self) -> None:
        """Poll /openapi.json until it answers, the process dies or time runs out."""
        url = f"{self.url}{READY_PATH}"
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            code = self.poll()
            if code is not None:
                raise self._start_error(f"the gateway exited with code {code} at start")
            if _answers(url):
                return
            time.sleep(_READY_POLL_S)
        timeout = self.settings.start_timeout_s
        raise self._start_error(f"the gateway did not answer on {self.url} within {timeout:.0f} s")

    def _start_error(self, reason: str) -> ServingError:
        if self._log is not None:
            self._log.flush()
        tail = read_log_tail(self.log_path)
        return ServingError(
            f"{reason} (log: {self.log_path})\n--- last lines of the gateway log ---\n{tail}"
        )

    def poll(self) -> int | None:
        """Return the exit code once the process has ended, else None (also before start)."""
        return None if self._process is None else self._process.poll()

    def kill(self, sig: int = signal.SIGKILL) -> int | None:
        """Send `sig` and wait up to stop_timeout_s; return the exit code, None if it runs on.

        Unlike stop(), the ended process stays known: poll() reports how it ended and start()
        brings a new one up on the same port and data directory.
        """
        process = self._process
        if process is None or process.poll() is not None:
            return self.poll()
        process.send_signal(sig)
        try:
            return process.wait(timeout=self.settings.stop_timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        """SIGTERM, wait for the gateway to shut down, SIGKILL if it hangs."""
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.settings.stop_timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._release()

    def restart(self) -> None:
        """Stop the gateway (if it still runs) and start it again with the same settings."""
        self.stop()
        self.start()

    def _release(self) -> None:
        """Forget an ended process and close its log."""
        if self._process is not None:
            _RUNNING.discard(self)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
