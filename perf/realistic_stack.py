"""The served stack of the user-level benchmark: the repository (the committed one when it has
every model a run needs, else exported under the work folder; tiny synthetic models with
--tiny), one Triton serving all of it, the gateway in front, and the memory sampler watching
Triton (with its stubs), the gateway and this process."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from perf.memory import MemorySampler, find_child
from perf.realistic_results import FLOORS, RESTORE, UPSCALE
from perf.servers import Gateway, build_repository, installed_models, start_triton

ROOT = Path(__file__).resolve().parents[1]
PREPOST: Final = ("image_to_tensor", "tensor_to_image")
FACE_PREPOST: Final = ("face_to_tensor", "tensor_to_face")
RESTORER: Final = "gfpgan_v1_4"
RESTORE_ENSEMBLE: Final = f"restore_{RESTORER}"
DETECTOR: Final = "face_detect_mtcnn"
DETECTOR_NETS: Final = ("mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet")
FLOOR_MODELS: Final = ("realesrgan_x4plus", RESTORER)


def upscale_stack(model: str) -> list[str]:
    return [*PREPOST, model, f"upscale_{model}"]


def served_models(scenarios: Sequence[str], sweep_model: str, latency_model: str) -> list[str]:
    """What Triton must load for the scenarios (the sweep model's stack always: the gateway's
    upscaler, which its /health and the memory check's job use)."""
    names = upscale_stack(sweep_model)
    if UPSCALE in scenarios and latency_model:
        names += upscale_stack(latency_model)
    if RESTORE in scenarios:
        names += [*FACE_PREPOST, RESTORER, RESTORE_ENSEMBLE, DETECTOR, *DETECTOR_NETS]
    if FLOORS in scenarios:
        names += list(FLOOR_MODELS)
    return list(dict.fromkeys(names))


def exported_models(served: Sequence[str]) -> tuple[list[str], list[str]]:
    """The float models to export (ensembles and graphs follow) and the detector, which has
    real package weights even in a tiny repository."""
    skip = {*PREPOST, *FACE_PREPOST, RESTORE_ENSEMBLE, DETECTOR, *DETECTOR_NETS}
    floats = [name for name in served if name not in skip and not name.startswith("upscale_")]
    detector = [DETECTOR] if DETECTOR in served else []
    return floats, detector


def detector_installed(root: Path) -> bool:
    """The BLS detector is source (model.py) plus detector_io.py, which the export copies in."""
    version = root / DETECTOR / "1"
    return (version / "model.py").is_file() and (version / "detector_io.py").is_file()


def missing_models(served: Sequence[str], root: Path) -> set[str]:
    if not root.is_dir():
        return set(served)
    installed = set(installed_models(root))
    if DETECTOR in served and detector_installed(root):
        installed.add(DETECTOR)
    return set(served) - installed


def prepare_repository(
    served: Sequence[str], repository: Path | None, work: Path, *, tiny: bool
) -> Path:
    """A repository with every model in `served` installed."""
    floats, detector = exported_models(served)
    if tiny:
        root = work / "realistic-tiny-repository"
        root.mkdir(parents=True, exist_ok=True)
        build_repository(root, floats, tiny=True, weights="synthetic")
        if detector:
            build_repository(root, detector, tiny=False, weights="auto")
        return root
    root = repository or ROOT / "model_repository"
    if not missing_models(served, root):
        return root
    if repository is None:
        root = work / "repository"
    root.mkdir(parents=True, exist_ok=True)
    build_repository(root, [*floats, *detector], tiny=False, weights="auto")
    return root


def gateway_settings(upscale_model: str, tile: int, pad: int, pre_pad: int) -> dict[str, str]:
    return {
        "FACET_UPSCALE_MODEL": upscale_model,
        "FACET_TILE_SIZE": str(tile),
        "FACET_TILE_PAD": str(pad),
        "FACET_PRE_PAD": str(pre_pad),
        "FACET_TRITON_TIMEOUT_S": "900",
        "FACET_MAX_PENDING_JOBS": "100",
    }


@dataclass
class Stack:
    """Triton, the main gateway and (while the single-image latency case runs) a second one
    serving another upscale model; the sampler watches Triton and the main gateway."""

    repository: Path
    work: Path
    models: list[str]
    settings: dict[str, str]
    triton: Any = None  # serving.launcher.TritonServer
    gateway: Gateway | None = None
    extra: list[Gateway] = field(default_factory=list)
    sampler: MemorySampler | None = None
    _triton_pid: int | None = None

    @property
    def grpc_url(self) -> str:
        return str(self.triton.grpc_url)

    def triton_pid(self) -> int | None:
        if self._triton_pid is None and self.triton is not None:
            self._triton_pid = find_child(f"--grpc-port={self.triton.settings.grpc_port}")
        return self._triton_pid

    def gateway_pid(self) -> int | None:
        process = self.gateway.process if self.gateway else None
        return process.pid if process is not None else None

    def start_gateway(self, name: str, settings: dict[str, str]) -> Gateway:
        data = self.work / f"gateway-{name}"
        shutil.rmtree(data, ignore_errors=True)
        gateway = Gateway(self.grpc_url, self.repository, data, settings)
        gateway.start()
        return gateway

    def start_extra_gateway(self, name: str, settings: dict[str, str]) -> Gateway:
        gateway = self.start_gateway(name, settings)
        self.extra.append(gateway)
        return gateway

    def stop_extra_gateways(self) -> None:
        while self.extra:
            self.extra.pop().stop()

    def sampler_for(self, interval_s: float) -> MemorySampler:
        self.sampler = MemorySampler(
            {"triton": self.triton_pid, "gateway": self.gateway_pid, "benchmark": os.getpid},
            interval_s=interval_s,
            solo={"benchmark"},
        )
        return self.sampler


@contextmanager
def running(stack: Stack, sample_interval_s: float) -> Iterator[Stack]:
    """Triton, then the gateway, with the memory sampler on from Triton's start to the end."""
    sampler = stack.sampler_for(sample_interval_s)
    sampler.start()
    try:
        stack.triton = start_triton(stack.repository, stack.work / "triton-realistic", stack.models)
        stack.gateway = stack.start_gateway("main", stack.settings)
        yield stack
    finally:
        sampler.stop()
        stack.stop_extra_gateways()
        if stack.gateway is not None:
            stack.gateway.stop()
        if stack.triton is not None:
            stack.triton.stop()
