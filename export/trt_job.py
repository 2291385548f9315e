"""The job the export hands to the TensorRT build: `<model>/1/trt_build.json` and its sample
`<model>/1/trt_sample.npz`, written by `python -m export` (export/trt_plans.py, with the
exporter's whole stack) and read by `python -m export.trt_build` inside NVIDIA's stock
tritonserver image, which has Python 3.10 and numpy but no torch, onnx, onnxruntime or
tritonclient.

The job says everything the build needs and nothing it would have to work out: the ONNX file and
its sha256 (a job prepared for another file is refused), the plan's file name (the gpu_trt_plan
config's default_model_filename, checked against the profile by the export), the min/opt/max
shapes of every input, the precision, the outputs to compare, the family's FP16 tolerance, and
the sample: the export's validation inputs at the batch it validates with, and ONNX Runtime
FP32's outputs on them (CPUExecutionProvider), computed where the export ran.

Standard library and numpy only, Python 3.10 syntax (tests/unit/test_trt_plans.py checks)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from export.errors import TensorRTError
from export.hashing import sha256_of
from export.trt_commands import Array, InputProfile, Shape
from export.trt_parity import TOLERANCE_METRIC, Fp16Tolerance

JOB_FILE = "trt_build.json"
SAMPLE_FILE = "trt_sample.npz"
JOB_FORMAT = 1
VERSION = "1"  # the version folder, as export/pipeline.py installs it
MANIFEST_NAME = "manifest.json"  # export/manifest.py's; the test keeps the two equal


@dataclass(frozen=True)
class SampleTensor:
    name: str
    shape: Shape
    dtype: str


@dataclass(frozen=True)
class Sample:
    """The sample file: the inputs (`input_<i>`, in the job's input order) and the reference
    outputs (`output_<i>`, in the job's output order)."""

    file: str
    sha256: str  # of the file as written; a changed file is refused
    batch: int
    inputs: tuple[SampleTensor, ...]
    description: str  # what the inputs are
    reference: str  # what computed the outputs


@dataclass(frozen=True)
class PlanJob:
    model: str
    variant: str  # the manifest's: full, tiny
    export_fingerprint: str  # the manifest's fingerprint when the job was written
    onnx_file: str  # in the version folder
    onnx_sha256: str
    plan_file: str  # in the version folder: the config's default_model_filename
    precision: str
    inputs: tuple[InputProfile, ...]
    outputs: tuple[str, ...]
    optimum_source: str
    tolerance: Fp16Tolerance
    sample: Sample
    prepared_at: str = ""

    def profile(self) -> dict[str, dict[str, list[int]]]:
        """The optimisation profile as the manifest records it."""
        return {profile.name: profile.as_dict() for profile in self.inputs}

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": JOB_FORMAT,
            "model": self.model,
            "variant": self.variant,
            "export_fingerprint": self.export_fingerprint,
            "onnx_file": self.onnx_file,
            "onnx_sha256": self.onnx_sha256,
            "plan_file": self.plan_file,
            "precision": self.precision,
            "inputs": [{"name": p.name, **p.as_dict()} for p in self.inputs],
            "outputs": list(self.outputs),
            "optimum_source": self.optimum_source,
            "tolerance": {"metric": TOLERANCE_METRIC, **self.tolerance.as_dict()},
            "sample": {
                "file": self.sample.file,
                "sha256": self.sample.sha256,
                "batch": self.sample.batch,
                "inputs": [
                    {"name": t.name, "shape": list(t.shape), "dtype": t.dtype}
                    for t in self.sample.inputs
                ],
                "description": self.sample.description,
                "reference": self.sample.reference,
            },
            "prepared_at": self.prepared_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PlanJob:
        if data.get("format") != JOB_FORMAT:
            raise TensorRTError(
                f"job format {data.get('format')!r}, this build reads {JOB_FORMAT}: "
                "export the model again with this checkout"
            )
        tolerance = data["tolerance"]
        if tolerance.get("metric") != TOLERANCE_METRIC:
            raise TensorRTError(f"tolerance metric {tolerance.get('metric')!r} is not known")
        sample = data["sample"]
        return cls(
            model=str(data["model"]),
            variant=str(data["variant"]),
            export_fingerprint=str(data["export_fingerprint"]),
            onnx_file=str(data["onnx_file"]),
            onnx_sha256=str(data["onnx_sha256"]),
            plan_file=str(data["plan_file"]),
            precision=str(data["precision"]),
            inputs=tuple(InputProfile.from_dict(str(i["name"]), i) for i in data["inputs"]),
            outputs=tuple(str(name) for name in data["outputs"]),
            optimum_source=str(data["optimum_source"]),
            tolerance=Fp16Tolerance.from_dict(tolerance),
            sample=Sample(
                file=str(sample["file"]),
                sha256=str(sample["sha256"]),
                batch=int(sample["batch"]),
                inputs=tuple(
                    SampleTensor(str(t["name"]), tuple(int(n) for n in t["shape"]), str(t["dtype"]))
                    for t in sample["inputs"]
                ),
                description=str(sample["description"]),
                reference=str(sample["reference"]),
            ),
            prepared_at=str(data.get("prepared_at", "")),
        )


def job_path(model_dir: Path) -> Path:
    return model_dir / VERSION / JOB_FILE


def read_job(model_dir: Path) -> PlanJob | None:
    """The model's job; None when it has none. Raises TensorRTError for one it cannot read."""
    path = job_path(model_dir)
    if not path.is_file():
        return None
    try:
        return PlanJob.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TensorRTError(f"{path} cannot be read ({type(exc).__name__}: {exc})") from None
    except TensorRTError as exc:
        raise TensorRTError(f"{path}: {exc}") from None


def _write_atomically(path: Path, write: Any) -> None:
    staged = path.with_name(f".{path.name}.new")
    with staged.open("wb") as handle:
        write(handle)
    os.replace(staged, path)


def write_job(
    model_dir: Path, job: PlanJob, inputs: Mapping[str, Array], reference: Mapping[str, Array]
) -> PlanJob:
    """Write the sample, then the job naming its sha256; the job as written comes back."""
    version_dir = model_dir / VERSION
    arrays = {f"input_{i}": np.ascontiguousarray(inputs[p.name]) for i, p in enumerate(job.inputs)}
    arrays |= {f"output_{i}": np.asarray(reference[n]) for i, n in enumerate(job.outputs)}
    sample_path = version_dir / job.sample.file
    _write_atomically(sample_path, lambda handle: np.savez(handle, **arrays))
    tensors = tuple(
        SampleTensor(p.name, tuple(int(n) for n in inputs[p.name].shape), str(inputs[p.name].dtype))
        for p in job.inputs
    )
    written = replace(
        job, sample=replace(job.sample, sha256=sha256_of(sample_path), inputs=tensors)
    )
    text = json.dumps(written.as_dict(), indent=2) + "\n"
    _write_atomically(job_path(model_dir), lambda handle: handle.write(text.encode()))
    return written


def read_sample(model_dir: Path, job: PlanJob) -> tuple[dict[str, Array], dict[str, Array]]:
    """The sample's inputs and reference outputs, by name, as the job describes them."""
    path = model_dir / VERSION / job.sample.file
    if not path.is_file():
        raise TensorRTError(f"{job.model}: its sample {path} is missing: export it again")
    if sha256_of(path) != job.sample.sha256:
        raise TensorRTError(f"{job.model}: {path} is not the sample its job was written with")
    with np.load(path, allow_pickle=False) as stored:
        inputs = {p.name: stored[f"input_{i}"] for i, p in enumerate(job.inputs)}
        outputs = {name: stored[f"output_{i}"] for i, name in enumerate(job.outputs)}
    for tensor in job.sample.inputs:
        got = inputs[tensor.name]
        if tuple(got.shape) != tensor.shape or str(got.dtype) != tensor.dtype:
            raise TensorRTError(
                f"{job.model}: sample input '{tensor.name}' is {got.shape} {got.dtype}, its job "
                f"says {tensor.shape} {tensor.dtype}"
            )
    return inputs, outputs


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def record_in_manifest(model_dir: Path, record: Mapping[str, object]) -> Path:
    """Rewrite the model's manifest.json with `record` as its `tensorrt` entry (replacing any
    earlier one), every other key as it was: the text export/manifest.py's `Manifest.to_json`
    would write for the same manifest (its reader, `load_manifest`, takes it back)."""
    data = read_manifest(model_dir)
    if data is None:
        raise TensorRTError(f"no {MANIFEST_NAME} in {model_dir}: export the model first")
    data["tensorrt"] = dict(record)
    text = json.dumps(data, indent=2) + "\n"
    path = model_dir / MANIFEST_NAME
    _write_atomically(path, lambda handle: handle.write(text.encode()))
    return path
