"""Weight sources, tried in a fixed order and always honest about which one was used:
official checkpoint (pinned sha256) → real weights from a registry package → seeded synthetic."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from export.errors import WeightsError
from export.hashing import sha256_of
from export.spec import ModelSpec, OfficialWeights, PackageFiles, StateDict, WeightKind

WeightsMode = Literal["auto", "official", "package", "synthetic"]
SYNTHETIC_SEED = 20240601
DOWNLOAD_TIMEOUT_S = 60


@dataclass(frozen=True)
class SourceFile:
    path: str
    sha256: str


@dataclass(frozen=True)
class ResolvedWeights:
    kind: WeightKind
    state_dict: StateDict
    licence: str
    files: tuple[SourceFile, ...]
    detail: str


def choose_source(spec: ModelSpec, mode: WeightsMode, weights_dir: Path) -> WeightKind:
    """Which source `mode` selects. `auto` never touches the network: official only when the
    file is already in `weights_dir`, else the registry package, else synthetic."""
    if mode != "auto":
        return mode
    if spec.official and (weights_dir / spec.official.filename).is_file():
        return "official"
    return "package" if spec.package is not None else "synthetic"


def source_files(spec: ModelSpec, kind: WeightKind, weights_dir: Path) -> tuple[SourceFile, ...]:
    """The files behind a source with their hashes: cheap, so re-runs can be skipped early."""
    if kind == "official":
        path = _official_path(spec, weights_dir)
        return (SourceFile(path.name, sha256_of(path)),)
    if kind == "package":
        package = _require_package(spec)
        return tuple(
            SourceFile(f"{package.package}:{p.name}", sha256_of(p)) for p in package.locate()
        )
    return ()


def load_weights(
    spec: ModelSpec, kind: WeightKind, weights_dir: Path, model: nn.Module
) -> ResolvedWeights:
    if kind == "official":
        return _official(spec, weights_dir)
    if kind == "package":
        return _package(spec)
    return synthetic_weights(model)


def _official_path(spec: ModelSpec, weights_dir: Path) -> Path:
    """The checkpoint in `weights_dir`, downloaded from its official URL first if absent
    (only ever reached when official weights were asked for, or found present by `auto`)."""
    if spec.official is None:
        raise WeightsError(f"{spec.name}: no official checkpoint is known")
    path = weights_dir / spec.official.filename
    if not path.is_file():
        if not spec.official.download:
            raise WeightsError(
                f"{spec.name}: place {spec.official.filename} (from {spec.official.url}) in "
                f"{weights_dir}; it is never downloaded"
            )
        _download(spec.official, path)
    return path


def _official(spec: ModelSpec, weights_dir: Path) -> ResolvedWeights:
    path = _official_path(spec, weights_dir)
    official = spec.official
    assert official is not None  # checked by _official_path
    digest = sha256_of(path)
    if digest != official.sha256:
        raise WeightsError(
            f"{spec.name}: {path} has sha256 {digest}, expected {official.sha256}; "
            "refusing a checkpoint that is not the pinned one"
        )
    if official.convert is not None:
        state = official.convert(path)
    else:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = select_state_dict(checkpoint, official.state_keys, spec.name)
    return ResolvedWeights(
        kind="official",
        state_dict=state,
        licence=official.licence,
        files=(SourceFile(official.filename, digest),),
        detail=official.url,
    )


def select_state_dict(
    checkpoint: Mapping[str, object], keys: tuple[str, ...], name: str
) -> StateDict:
    """Take the first of `keys` present; a bare state dict (tensors at top level) is taken as is."""
    for key in keys:
        value = checkpoint.get(key)
        if isinstance(value, Mapping):
            return dict(value)
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return {k: v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    raise WeightsError(f"{name}: checkpoint has none of the keys {keys}: {sorted(checkpoint)}")


def _download(official: OfficialWeights, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".part")
    try:
        with urllib.request.urlopen(official.url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            partial.write_bytes(response.read())
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise WeightsError(
            f"cannot download {official.url} ({exc}); place {official.filename} in {path.parent}"
        ) from exc
    partial.rename(path)


def _require_package(spec: ModelSpec) -> PackageFiles:
    if spec.package is None:
        raise WeightsError(f"{spec.name}: no registry package ships its weights")
    return spec.package


def _package(spec: ModelSpec) -> ResolvedWeights:
    package = _require_package(spec)
    files = package.locate()
    return ResolvedWeights(
        kind="package",
        state_dict=package.convert(files),
        licence=package.licence,
        files=tuple(SourceFile(f"{package.package}:{p.name}", sha256_of(p)) for p in files),
        detail=f"converted from the files of the '{package.package}' package",
    )


def synthetic_weights(model: nn.Module) -> ResolvedWeights:
    """Seeded random weights of the true architecture: every path runs, no output is meaningful."""
    generator = torch.Generator().manual_seed(SYNTHETIC_SEED)
    state: StateDict = {}
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            fan_in = max(1, tensor[0].numel()) if tensor.dim() > 1 else 1
            # Kaiming-like scale, shrunk as BasicSR's default_init_weights does, keeps deep
            # residual stacks from blowing up so outputs stay in a sane range.
            std = 0.1 * (2.0 / fan_in) ** 0.5 if tensor.dim() > 1 else 0.01
            state[key] = torch.randn(tensor.shape, generator=generator) * std
        else:
            state[key] = tensor.clone()
    return ResolvedWeights(
        kind="synthetic",
        state_dict=state,
        licence="n/a (seeded random weights, not a trained model)",
        files=(),
        detail=f"seeded random weights (seed {SYNTHETIC_SEED}); outputs are not meaningful",
    )


def load_strict(model: nn.Module, weights: ResolvedWeights, name: str) -> nn.Module:
    """Load with strict=True: a key mismatch is an error, never a silently untrained model."""
    try:
        model.load_state_dict(weights.state_dict, strict=True)
    except RuntimeError as exc:
        raise WeightsError(
            f"{name}: {weights.kind} weights do not fit the architecture: {exc}"
        ) from exc
    return model.eval()


def load_official_onnx(spec: ModelSpec, weights_dir: Path) -> ResolvedWeights:
    """An official checkpoint that is an ONNX file: never downloaded (upstream publishes it
    inside an archive), only checked against its pinned sha256 where it was placed."""
    official = spec.official
    if official is None:
        raise WeightsError(f"{spec.name}: no official checkpoint is known")
    path = weights_dir / official.filename
    if not path.is_file():
        raise WeightsError(
            f"{spec.name}: place {official.filename} (from {official.url}) in {weights_dir}"
        )
    digest = sha256_of(path)
    if digest != official.sha256:
        raise WeightsError(
            f"{spec.name}: {path} has sha256 {digest}, expected {official.sha256}; "
            "refusing a file that is not the pinned one"
        )
    return ResolvedWeights(
        kind="official",
        state_dict={},
        licence=official.licence,
        files=(SourceFile(official.filename, digest),),
        detail=official.url,
    )
