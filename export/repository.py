"""Assembling a Triton model repository: the exports, the committed configs, the ensembles whose
steps are all present, and the Python-backend models with the shared modules they import.

`make models` installs into the committed `model_repository/` itself; tests and benchmarks build
the same thing elsewhere through `build_repository`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from export.pipeline import VERSION, ExportOptions, ExportOutcome, export_any
from export.registry import ENSEMBLES, PYTHON_MODELS, expand
from export.triton_config import PythonModelSpec, parse_config, to_text
from export.weight_facts import apply_facts, has_facts, installed_facts

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
    """Write the installed model's weight facts (from its manifest) into each of its configs,
    config.pbtxt and the alternatives under configs/, so Triton serves them with the config.
    A config already right is left untouched; returns the files rewritten."""
    facts = installed_facts(model_dir)
    if facts is None:
        return []
    rewritten = []
    for path in [model_dir / "config.pbtxt", *sorted((model_dir / "configs").glob("*.pbtxt"))]:
        if not path.is_file():
            continue
        config = parse_config(path)
        if not has_facts(config, facts):
            apply_facts(config, facts)
            path.write_text(to_text(config))
            rewritten.append(path)
    return rewritten


def _same_folder(a: Path, b: Path) -> bool:
    return b.exists() and a.resolve() == b.resolve()
