"""`manifest.json`, written next to each installed model: what was exported, from which weights,
under which licence, with which tools, and how well it matched its reference."""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from export.validate import CheckResult
from export.weights import SourceFile

MANIFEST_NAME = "manifest.json"
TOOL_PACKAGES = ("torch", "onnx", "onnxruntime", "numpy", "ncnn")


@dataclass
class Manifest:
    model: str
    description: str
    variant: str
    weights_kind: str
    weights_licence: str
    weights_detail: str
    weights_files: list[SourceFile]
    onnx_file: str
    onnx_sha256: str
    opset: int
    opset_reason: str
    validation: list[CheckResult]
    fingerprint: str
    created_at: str
    tools: dict[str, str] = field(default_factory=dict)
    # Which CPU runtime and precision serve it, and the timings and checks behind the choice.
    cpu_runtime: dict[str, object] = field(default_factory=dict)
    # The TensorRT plan built from this ONNX file (`python3 -m export.trt_build`, which
    # rewrites this file with plain json: export/trt_job.py's record_in_manifest): profile,
    # versions, GPU, build time and its FP16 parity with ONNX Runtime. Empty: none built; a
    # new export writes a manifest without it (and removes the plan, built from the old file).
    tensorrt: dict[str, object] = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return self.weights_kind == "synthetic"

    def to_json(self) -> str:
        data = asdict(self)
        # Said at the top level so that health output and responses can repeat it verbatim.
        data["synthetic"] = self.synthetic
        if self.synthetic:
            data["warning"] = "synthetic weights: outputs are not meaningful"
        return json.dumps(data, indent=2) + "\n"


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in TOOL_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


# Written by `to_json` from the other fields, so never read back as fields of their own.
DERIVED_KEYS = frozenset({"synthetic", "warning"})


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    path = directory / MANIFEST_NAME
    path.write_text(manifest.to_json())
    return path


def manifest_from_dict(data: Mapping[str, Any]) -> Manifest:
    """The Manifest a `to_json` text was written from (its nested records as their classes).
    Raises ValueError for a key this code does not know, rather than dropping it on rewrite."""
    names = {f.name for f in dataclasses.fields(Manifest)}
    unknown = sorted(set(data) - names - DERIVED_KEYS)
    if unknown:
        raise ValueError(f"manifest has keys this exporter does not know: {unknown}")
    values = {key: value for key, value in data.items() if key in names}
    values["weights_files"] = [SourceFile(**item) for item in data.get("weights_files", [])]
    values["validation"] = [CheckResult(**item) for item in data.get("validation", [])]
    return Manifest(**values)


def load_manifest(directory: Path) -> Manifest | None:
    data = read_manifest(directory)
    return None if data is None else manifest_from_dict(data)


def read_manifest(directory: Path) -> dict[str, object] | None:
    path = directory / MANIFEST_NAME
    if not path.is_file():
        return None
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded
