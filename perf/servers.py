"""The processes a benchmark talks to: Triton (serving.launcher) and the gateway (`python -m
gateway`), each on free ports, plus the model repositories they serve."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from serving.errors import PortInUseError
from serving.gateway_process import GatewayProcess, GatewaySettings
from serving.launcher import TritonServer, TritonSettings, free_ports

ROOT = Path(__file__).resolve().parents[1]
COMMITTED_REPOSITORY = ROOT / "model_repository"
GATEWAY_READY_TIMEOUT_S = 90.0
GATEWAY_STOP_TIMEOUT_S = 20.0
TRITON_STARTUP_TIMEOUT_S = 300.0  # x4plus takes a while to load on a busy 2-core box
MODEL_FILE = "model.onnx"


def read_config(path: Path) -> model_config_pb2.ModelConfig:
    """Parse a config.pbtxt into Triton's own ModelConfig message."""
    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def config_threads(config: model_config_pb2.ModelConfig) -> tuple[int, int]:
    """(intra_op, inter_op) thread counts a facet_ort config gives ONNX Runtime (default 1)."""

    def read(key: str) -> int:
        value = config.parameters[key].string_value if key in config.parameters else ""
        return int(value) if value else 1

    return read("intra_op_thread_count"), read("inter_op_thread_count")


def has_model_file(model_dir: Path) -> bool:
    return any(model_dir.glob(f"[0-9]*/{MODEL_FILE}"))


def installed_models(repository: Path) -> list[str]:
    """Models of a repository that can load: a config plus a model file, or an ensemble whose
    steps are all installed."""
    configs = {
        d.name: read_config(d / "config.pbtxt")
        for d in sorted(repository.iterdir())
        if (d / "config.pbtxt").is_file()
    }
    ready = {name for name in configs if has_model_file(repository / name)}
    for name, config in configs.items():
        if config.platform == "ensemble":
            steps = {step.model_name for step in config.ensemble_scheduling.step}
            if steps <= ready:
                ready.add(name)
    return sorted(ready)


def build_repository(root: Path, models: list[str], *, tiny: bool, weights: str) -> Path:
    """Export `models` (and what they need) into `root` with the committed configs, as
    `make models` does; up-to-date exports are skipped."""
    from export.pipeline import ExportOptions
    from export.repository import build_repository as assemble_repository

    options = ExportOptions(
        repository=root,
        weights=weights,  # type: ignore[arg-type]
        tiny=tiny,
        show_progress=False,
    )
    assemble_repository(models, options)
    return root


def without_batching(source: Path, model: str, dest: Path) -> Path:
    """A one-model repository: `model` with its config's dynamic_batching removed (Triton's
    default scheduler then runs one request at a time), sharing the same model file."""
    config = read_config(source / model / "config.pbtxt")
    config.ClearField("dynamic_batching")
    model_dir = dest / model
    version_dir = model_dir / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))
    target = version_dir / MODEL_FILE
    original = source / model / "1" / MODEL_FILE
    if not target.exists():
        try:
            os.link(original, target)
        except OSError:
            shutil.copy2(original, target)
    return dest


PORT_ATTEMPTS = 3


def start_triton(repository: Path, run_dir: Path, models: list[str]) -> TritonServer:
    """A ready Triton on free ports serving only `models` (explicit model control, so other,
    unrelated entries of the repository cannot stop it from starting); raises serving's errors
    with the log tail on failure. A port taken between choosing and starting (another
    process's outgoing connection can land on it) means fresh ports, a few times."""
    for _ in range(PORT_ATTEMPTS - 1):
        try:
            return _start_on_free_ports(repository, run_dir, models)
        except PortInUseError:
            continue
    return _start_on_free_ports(repository, run_dir, models)


def _start_on_free_ports(repository: Path, run_dir: Path, models: list[str]) -> TritonServer:
    grpc_port, http_port, metrics_port = free_ports(3)
    server = TritonServer(
        TritonSettings(
            repository=repository,
            grpc_port=grpc_port,
            http_port=http_port,
            metrics_port=metrics_port,
            run_dir=run_dir,
            startup_timeout_s=TRITON_STARTUP_TIMEOUT_S,
            model_control_mode="explicit",
            load_models=models,
        )
    )
    server.start()
    return server


@dataclass
class Gateway:
    """One `python -m gateway` (serving.gateway_process) on a free port, configured through
    FACET_* variables; `triton_grpc_url` may be filled in once Triton is up, before start()."""

    triton_grpc_url: str
    repository: Path
    data_dir: Path
    settings: Mapping[str, str] = field(default_factory=dict)
    port: int = 0
    process: GatewayProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "gateway.log"

    def launch_settings(self) -> GatewaySettings:
        return GatewaySettings(
            port=self.port,
            triton_grpc_url=self.triton_grpc_url,
            data_dir=self.data_dir,
            overrides={"FACET_RATE_LIMITS_ENABLED": "false", **self.settings},
            log_file=self.log_path,
            cwd=ROOT,
            start_timeout_s=GATEWAY_READY_TIMEOUT_S,
            stop_timeout_s=GATEWAY_STOP_TIMEOUT_S,
        )

    def start(self) -> None:
        self.port = self.port or free_ports(1)[0]
        self.process = GatewayProcess(self.launch_settings())
        self.process.start()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.stop()

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
