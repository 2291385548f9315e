"""Assembling a Triton model repository: the exports, the committed configs, the ensembles whose
steps are all present, and the Python-backend models with the shared modules they import.

`make models` installs into the committed `model_repository/` itself; tests and benchmarks build
the same thing elsewhere through `build_repository`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from tritonclient.grpc.model_config_pb2 import ModelConfig

from export.manifest import read_manifest
from export.pipeline import VERSION, ExportOptions, ExportOutcome, export_any
from export.registry import ENSEMBLES, PYTHON_MODELS, expand
from export.triton_config import (
    CPU_OPENVINO,
    CPU_ORT,
    OPENVINO_BACKEND,
    PythonModelSpec,
    parse_config,
    to_text,
)
from export.weight_facts import apply_facts, installed_facts

ROOT = Path(__file__).resolve().parents[1]
COMMITTED_REPOSITORY = ROOT / "model_repository"
SHARED_SOURCES = ROOT / "serving" / "bls"


def python_models(names: Iterable[str]) -> list[PythonModelSpec]:
    """The Python-backend models among `names` (`all` names every one)."""
    wanted = list(names)
    return [s for n, s in PYTHON_MODELS.items() if "all" in wanted or n in wanted]


def install_python_model(spec: PythonModelSpec, repository: Path) -> Path:
    """Put a Python-backend model into `repository`: its committed folder (when installing
    elsewhere) and a fresh copy of each shared module it imports."""
    source, target = COMMITTED_REPOSITORY / spec.name, repository / spec.name
    if not _same_folder(source, target):
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(source, target, dirs_exist_ok=True, ignore=ignore)
    for name in spec.shared_sources:
        shutil.copyfile(SHARED_SOURCES / name, target / VERSION / name)
    for name, locate in spec.package_files:
        shutil.copyfile(locate(), target / VERSION / name)
    return target


def build_repository(names: Sequence[str], options: ExportOptions) -> list[ExportOutcome]:
    """Export `names` (and what they need) into `options.repository`, then add the committed
    configs, the ensembles that can run and the Python-backend models, exactly as
    `make models` leaves `model_repository/`."""
    root = options.repository
    specs = expand(names)
    outcomes = [export_any(spec, options) for spec in specs]
    exported = {spec.name for spec in specs}
    ensembles = {e.name for e in ENSEMBLES.values() if all(s.model in exported for s in e.steps)}
    for name in sorted(exported | ensembles):
        (root / name / VERSION).mkdir(parents=True, exist_ok=True)
        committed, target = (
            COMMITTED_REPOSITORY / name / "config.pbtxt",
            root / name / "config.pbtxt",
        )
        if not (target.exists() and target.samefile(committed)):
            shutil.copy(committed, target)
        stamp_weight_facts(root / name)
    for spec in python_models(names):
        install_python_model(spec, root)
    return outcomes


def stamp_weight_facts(model_dir: Path) -> list[Path]:
    """Make the installed model's configs say what is installed (from its manifest): the CPU
    runtime the install chose becomes config.pbtxt (from configs/cpu_<runtime>.pbtxt, with the
    chosen precision), and every config carries the weight facts, so Triton serves them. A
    config already right is left untouched; returns the files rewritten."""
    facts = installed_facts(model_dir)
    if facts is None:
        return []
    rewritten = []
    main = model_dir / "config.pbtxt"
    chosen = chosen_cpu_config(model_dir)
    for path in [main, *sorted((model_dir / "configs").glob("*.pbtxt"))]:
        if not path.is_file():
            continue
        config = chosen if path == main and chosen is not None else parse_config(path)
        apply_facts(config, facts)
        text = to_text(config)
        if text != path.read_text():
            path.write_text(text)
            rewritten.append(path)
    return rewritten


def chosen_cpu_config(model_dir: Path) -> ModelConfig | None:
    """The alternative config of the runtime the manifest says was chosen, with its precision;
    None when there is no choice or no such alternative (e.g. a test repository)."""
    manifest = read_manifest(model_dir) or {}
    choice = manifest.get("cpu_runtime")
    if not isinstance(choice, dict) or "runtime" not in choice:
        return None
    name = CPU_OPENVINO if choice["runtime"] == "openvino" else CPU_ORT
    path = model_dir / "configs" / f"{name}.pbtxt"
    if not path.is_file():
        return None
    config = parse_config(path)
    if config.backend == OPENVINO_BACKEND:
        config.parameters["precision"].string_value = str(choice.get("precision", "f32"))
    return config


def _same_folder(a: Path, b: Path) -> bool:
    return b.exists() and a.resolve() == b.resolve()
