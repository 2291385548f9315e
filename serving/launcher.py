"""Find a tritonserver install, assemble its backend directory and run it as a child process.

The pytriton wheel is the default install: it bundles tritonserver 2.51 with the Python backend
and one stub per Python version. An NGC image (`tritonserver` on PATH, backends under
/opt/tritonserver/backends) works too.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Self

from serving.errors import (
    BackendAssemblyError,
    PortInUseError,
    ServingError,
    TritonNotFoundError,
    TritonStartError,
)

BACKENDS_SOURCE = Path(__file__).resolve().parent / "backends"
# Our Python-based backends; each gets the shared core copied next to its model.py, since
# Triton lets a backend import only what its own folder holds.
BACKEND_NAMES = ("facet_ort", "facet_openvino")
SHARED_BACKEND_SOURCES = (BACKENDS_SOURCE / "shared" / "backend_core.py",)
OPENVINO_CACHE_ENV = "FACET_OPENVINO_CACHE_DIR"
STUB_NAME = "triton_python_backend_stub"
PYTHON_BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
NGC_BACKENDS = Path("/opt/tritonserver/backends")
SHARED_MEMORY_DIR = Path("/dev/shm")
LOG_TAIL_LINES = 40
LOG_ERROR_LINES = 10
_TRITON_ERROR_LINE = re.compile(r"^E\d{4} ")
_READY_POLL_S = 0.2

ModelControlMode = Literal["none", "explicit"]


@dataclass(frozen=True)
class TritonInstall:
    """Where the pieces of one tritonserver installation live."""

    binary: Path
    python_backend_dir: Path  # holds libtriton_python.so and triton_python_backend_utils.py
    stub: Path  # triton_python_backend_stub built for the running Python
    libs_dir: Path | None  # shared libraries the binary needs on LD_LIBRARY_PATH

    def missing_files(self) -> list[Path]:
        """Return the files this install needs but does not have."""
        needed = [self.binary, self.stub]
        needed += [self.python_backend_dir / name for name in PYTHON_BACKEND_FILES]
        return [path for path in needed if not path.is_file()]


@dataclass
class TritonSettings:
    """Everything that decides how one tritonserver process is started."""

    repository: Path | Sequence[Path]
    host: str = "127.0.0.1"
    grpc_port: int = 8001
    http_port: int = 8003
    metrics_port: int = 8002
    log_file: Path | None = None  # default: <run_dir>/tritonserver.log
    model_control_mode: ModelControlMode = "none"
    load_models: list[str] = field(default_factory=list)
    model_config_name: str | None = None
    extra_args: list[str] = field(default_factory=list)
    startup_timeout_s: float = 120.0
    # Triton waits up to 30 s (its --exit-timeout-secs) for in-flight requests after SIGTERM.
    stop_timeout_s: float = 40.0
    run_dir: Path = Path("run/triton")

    @property
    def repositories(self) -> list[Path]:
        """Return the model repositories as a list, whichever form was given."""
        if isinstance(self.repository, Path | str):
            return [Path(self.repository)]
        return [Path(path) for path in self.repository]

    @property
    def resolved_log_file(self) -> Path:
        """Return the file that receives tritonserver's stdout and stderr."""
        return self.log_file if self.log_file is not None else self.run_dir / "tritonserver.log"


def find_tritonserver() -> TritonInstall:
    """Return the pytriton wheel's tritonserver, else one on PATH (NGC image layout)."""
    reasons: list[str] = []
    for candidate in (_find_wheel_install(reasons), _find_path_install(reasons)):
        if candidate is None:
            continue
        missing = candidate.missing_files()
        if not missing:
            return candidate
        reasons.append(f"{candidate.binary}: missing {', '.join(map(str, missing))}")
    raise TritonNotFoundError("no usable tritonserver found: " + "; ".join(reasons))


def _find_wheel_install(reasons: list[str]) -> TritonInstall | None:
    """Describe the tritonserver bundled in the nvidia-pytriton wheel, if installed."""
    # find_spec locates the package without importing it (pytriton's import is slow and noisy).
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        reasons.append("the nvidia-pytriton wheel is not installed")
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    root = package / "tritonserver"
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    libs_dir = package.parent / "nvidia_pytriton.libs"  # auditwheel puts vendored libs here
    return TritonInstall(
        binary=root / "bin" / "tritonserver",
        python_backend_dir=root / "backends" / "python",
        stub=root / "python_backend_stubs" / python_version / STUB_NAME,
        libs_dir=libs_dir if libs_dir.is_dir() else None,
    )


def _find_path_install(reasons: list[str]) -> TritonInstall | None:
    """Describe a tritonserver found on PATH, laid out like the NGC image."""
    found = shutil.which("tritonserver")
    if found is None:
        reasons.append("no tritonserver on PATH")
        return None
    root = Path(found).resolve().parent.parent
    backends = root / "backends" if (root / "backends").is_dir() else NGC_BACKENDS
    libs_dir = root / "lib"
    return TritonInstall(
        binary=Path(found),
        python_backend_dir=backends / "python",
        stub=backends / "python" / STUB_NAME,
        libs_dir=libs_dir if libs_dir.is_dir() else None,
    )


def assemble_backend_dir(install: TritonInstall, dest: Path) -> Path:
    """Build a `--backend-directory` holding the Python backend and our Python-based backends.

    Files are copied, not linked: Triton resolves symlinks and refuses a backend library
    whose real path escapes the backend directory.
    """
    python_dir = dest / "python"
    try:
        _recreate_dir(python_dir)
        for name in PYTHON_BACKEND_FILES:
            shutil.copy2(install.python_backend_dir / name, python_dir / name)
        shutil.copy2(install.stub, python_dir / STUB_NAME)
        for name in BACKEND_NAMES:
            ours = dest / name
            _recreate_dir(ours)
            shutil.copy2(BACKENDS_SOURCE / name / "model.py", ours / "model.py")
            for shared in SHARED_BACKEND_SOURCES:
                shutil.copy2(shared, ours / shared.name)
    except OSError as error:
        raise BackendAssemblyError(f"cannot assemble backend directory {dest}: {error}") from error
    return dest


def _recreate_dir(path: Path) -> None:
    """Empty `path` so files from an older assembly cannot linger."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def build_command(install: TritonInstall, settings: TritonSettings, backend_dir: Path) -> list[str]:
    """Return the tritonserver command line for these settings."""
    if settings.load_models and settings.model_control_mode != "explicit":
        raise ServingError("load_models needs model_control_mode='explicit'")
    host = settings.host
    command = [str(install.binary)]
    command += [f"--model-repository={path.resolve()}" for path in settings.repositories]
    command += [
        f"--backend-directory={backend_dir.resolve()}",
        f"--http-address={host}",
        f"--http-port={settings.http_port}",
        f"--grpc-address={host}",
        f"--grpc-port={settings.grpc_port}",
        f"--metrics-address={host}",
        f"--metrics-port={settings.metrics_port}",
        f"--model-control-mode={settings.model_control_mode}",
        # Python-backend shared-memory regions are host-global; a per-server prefix lets
        # several servers (parallel tests, a dev server) coexist.
        f"--backend-config=python,shm-region-prefix-name={_shm_prefix(settings)}",
    ]
    command += [f"--load-model={name}" for name in settings.load_models]
    if settings.model_config_name:
        command.append(f"--model-config-name={settings.model_config_name}")
    return command + list(settings.extra_args)


def _shm_prefix(settings: TritonSettings) -> str:
    """Return a shared-memory prefix unique to this process and port."""
    return f"facet_{os.getpid()}_{settings.grpc_port}_"


def build_environment(
    install: TritonInstall, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Return the environment tritonserver needs on top of `base` (default: os.environ)."""
    env = dict(os.environ if base is None else base)
    # The stub embeds Python and finds its site-packages (numpy, onnxruntime) through the
    # first python on PATH, so the running interpreter's bin dir must come first.
    python_bin = str(Path(sys.executable).parent)
    env["PATH"] = _prepend_path(python_bin, env.get("PATH"))
    if install.libs_dir is not None:
        env["LD_LIBRARY_PATH"] = _prepend_path(str(install.libs_dir), env.get("LD_LIBRARY_PATH"))
    return env


def _prepend_path(entry: str, current: str | None) -> str:
    """Put `entry` first in a colon-separated search path."""
    return entry if not current else f"{entry}{os.pathsep}{current}"


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is free right now (for tests; it may be taken again later)."""
    return free_ports(1, host)[0]


_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Return `count` distinct free TCP ports, never one this process was handed before.

    The kernel may give a port that was just closed to the next bind(0); remembering what was
    handed out keeps two servers started side by side from being told the same port.
    """
    with _handed_out_lock:
        chosen: list[int] = []
        sockets: list[socket.socket] = []
        try:
            while len(chosen) < count:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(sock)
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
                if port not in _handed_out:
                    chosen.append(port)
        finally:
            for sock in sockets:
                sock.close()
        _handed_out.update(chosen)
        return chosen


def _port_is_free(host: str, port: int) -> bool:
    """Tell whether `port` can be bound on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def read_log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last `lines` lines of a log file, or a note when there is none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        return f"(no log at {path}: {error})"
    return "\n".join(text.splitlines()[-lines:])


def read_log_errors(path: Path, limit: int = LOG_ERROR_LINES) -> list[str]:
    """Return Triton's error-level lines (`E<mmdd> ...`), which a long tail can push out."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    errors = [line for line in text.splitlines() if _TRITON_ERROR_LINE.match(line)]
    # Without a GPU every start logs this CUDA complaint; it explains no failure.
    errors = [line for line in errors if "CudaDriverHelper has not been initialized" not in line]
    return errors[:limit]


def _is_ready(url: str) -> bool:
    """Tell whether Triton's readiness endpoint answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


_RUNNING: weakref.WeakSet[TritonServer] = weakref.WeakSet()


@atexit.register
def _stop_all_servers() -> None:
    # Children run in their own session (so Ctrl-C reaches only us), hence nothing else
    # would stop them if the interpreter exits without calling stop().
    for server in list(_RUNNING):
        server.stop()


class TritonServer:
    """One tritonserver child process; use as a context manager or call start()/stop()."""

    def __init__(self, settings: TritonSettings, install: TritonInstall | None = None):
        self.settings = settings
        self._install = install
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
        return self.settings.resolved_log_file

    @property
    def grpc_url(self) -> str:
        """`host:port`, the form tritonclient.grpc expects."""
        return f"{self._client_host}:{self.settings.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self._client_host}:{self.settings.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self._client_host}:{self.settings.metrics_port}/metrics"

    @property
    def _client_host(self) -> str:
        # A wildcard bind address is not something a client can connect to.
        return "127.0.0.1" if self.settings.host in ("0.0.0.0", "") else self.settings.host

    def start(self) -> None:
        """Spawn tritonserver and return once every model is ready; raise with the log tail."""
        if self._process is not None:
            raise ServingError("this TritonServer is already started")
        install = self._install or find_tritonserver()
        self._check_ports_free()
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        backend_dir = assemble_backend_dir(install, self.settings.run_dir / "backends")
        command = build_command(install, self.settings, backend_dir)
        env = build_environment(install)
        # Compiled OpenVINO blobs survive restarts of this server (compiling GFPGAN takes s).
        env.setdefault(OPENVINO_CACHE_ENV, str(self.settings.run_dir / "openvino_cache"))
        self._spawn(command, env)
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise

    def _check_ports_free(self) -> None:
        """Refuse to start when a port is taken: an old server would answer our health check."""
        settings = self.settings
        for port in (settings.grpc_port, settings.http_port, settings.metrics_port):
            if not _port_is_free(settings.host, port):
                raise PortInUseError(f"port {port} on {settings.host} is already in use")

    def _spawn(self, command: list[str], env: dict[str, str]) -> None:
        """Start the process with its output going to the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        # A new session keeps terminal Ctrl-C away from Triton so that stop() alone decides
        # how it shuts down (and kill can reach the stub processes through the group).
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        _RUNNING.add(self)

    def _wait_until_ready(self) -> None:
        """Poll /v2/health/ready until it answers, the process dies or time runs out."""
        url = f"{self.http_url}/v2/health/ready"
        deadline = time.monotonic() + self.settings.startup_timeout_s
        while time.monotonic() < deadline:
            code = self.poll()
            if code is not None:
                raise self._start_error(f"tritonserver exited with code {code} before ready")
            if _is_ready(url):
                return
            time.sleep(_READY_POLL_S)
        raise self._start_error(
            f"tritonserver not ready after {self.settings.startup_timeout_s:.0f} s"
        )

    def _start_error(self, reason: str) -> TritonStartError:
        if self._log is not None:
            self._log.flush()
        return TritonStartError(
            f"{reason} (log: {self.log_path})",
            read_log_tail(self.log_path),
            read_log_errors(self.log_path),
        )

    def poll(self) -> int | None:
        """Return the exit code once the process has ended, else None."""
        return None if self._process is None else self._process.poll()

    def kill(self) -> None:
        """SIGKILL Triton at once, as a crash would (tests of what survives one); `stop()`
        afterwards reaps its stubs."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def stop(self) -> None:
        """SIGTERM, wait for Triton to drain and unload, SIGKILL if it hangs; reap its stubs."""
        process, self._process = self._process, None
        if process is not None:
            _RUNNING.discard(self)
            if process.poll() is None:
                self._terminate(process)
            self._reap_leftovers(process.pid)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _terminate(self, process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self.settings.stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _reap_leftovers(self, group: int) -> None:
        """Kill Python-backend stubs that outlived Triton, and free their shared memory.

        A Triton signalled while still loading models (Ctrl-C during start) dies without
        stopping its stubs; they sit in its process group, blocked forever.
        """
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            return  # the usual case: Triton stopped its stubs itself
        for region in SHARED_MEMORY_DIR.glob(f"{_shm_prefix(self.settings)}*"):
            region.unlink(missing_ok=True)
