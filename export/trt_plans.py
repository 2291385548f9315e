"""The TensorRT plans' preparation, the half that runs where the exporter runs: for every model
whose spec has a TensorRTProfile and whose folder has a gpu_trt_plan config, check that config
against the profile and write the job `python3 -m export.trt_build` builds the plan from
(export/trt_job.py): `<model>/1/trt_build.json` (the min/opt/max shapes of every input, FP16,
the profile's opt_source, the family's tolerance, the ONNX file's sha256, the output names) and
`<model>/1/trt_sample.npz` (the export's validation sample at the batch it validates with, and
ONNX Runtime FP32's outputs on it, on the CPU).

`python -m export` does this after installing each model, so a repository it filled is ready for
the GPU half; `python -m export.trt_plans prepare` does it again for models already exported. A
job that is up to date (same export, same ONNX file, same profile and tolerance) is kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from export.errors import ExportError, PlanConfigError, TensorRTError
from export.hashing import sha256_of
from export.manifest import read_manifest
from export.pipeline import MODEL_FILE, VERSION, sample_feeds
from export.registry import MODELS, ExportSpec
from export.spec import Array, ModelSpec, TensorRTProfile
from export.triton_config import GPU_TRT_PLAN, parse_config
from export.trt_commands import InputProfile, shape_text
from export.trt_job import JOB_FILE, SAMPLE_FILE, PlanJob, Sample, SampleTensor, read_job, write_job
from export.trt_parity import tolerance_for
from export.validate import open_session

# The export's validation runs its sample at batch 2 so that the dynamic batch axis is
# exercised; the plan is checked on the same inputs.
SAMPLE_BATCH = 2
PRECISION = "fp16"
TENSORRT_PLATFORM = "tensorrt_plan"


def profile_problems(profile: TensorRTProfile) -> list[str]:
    shapes = (profile.min_shape, profile.opt_shape, profile.max_shape)
    if len({len(shape) for shape in shapes}) != 1:
        return [f"min/opt/max shapes {shapes} have different numbers of axes"]
    problems = []
    if min(profile.min_shape) < 1:
        problems.append(f"min_shape {profile.min_shape} has an axis below 1")
    for axis, (low, opt, high) in enumerate(zip(*shapes, strict=True)):
        if not low <= opt <= high:
            problems.append(f"axis {axis}: min {low} ≤ opt {opt} ≤ max {high} does not hold")
    return problems


def input_profiles(spec: ModelSpec) -> tuple[InputProfile, ...]:
    """The spec's TensorRTProfile for each of its inputs (one profile serves them all)."""
    profile = spec.tensorrt
    if profile is None:
        raise PlanConfigError(f"{spec.name}: its spec has no TensorRTProfile")
    problems = profile_problems(profile)
    if problems:
        raise PlanConfigError(f"{spec.name}: its TensorRTProfile is inconsistent: {problems}")
    return tuple(
        InputProfile(tensor.name, profile.min_shape, profile.opt_shape, profile.max_shape)
        for tensor in spec.inputs
    )


def check_config(
    model: str, profiles: Sequence[InputProfile], config: mc.ModelConfig, path: Path
) -> None:
    """Refuse a gpu_trt_plan config that a plan built from `profiles` could not serve."""
    problems = config_problems(profiles, config)
    if problems:
        raise PlanConfigError(
            f"{model}: {path} disagrees with the TensorRT profile of its spec "
            f"(export/models/): {'; '.join(problems)}. Fix the spec (its TensorRTProfile or "
            "its batching) and render the configs again with `python -m export configs`"
        )


def config_problems(profiles: Sequence[InputProfile], config: mc.ModelConfig) -> list[str]:
    problems = []
    if config.platform != TENSORRT_PLATFORM:
        runtime = config.platform or config.backend or "none"
        problems.append(f"its platform is '{runtime}', not '{TENSORRT_PLATFORM}'")
    if not config.default_model_filename:
        problems.append("it names no default_model_filename (the plan file)")
    declared = [tensor.name for tensor in config.input]
    wanted = [profile.name for profile in profiles]
    if declared != wanted:
        return [*problems, f"its inputs {declared} are not the model's {wanted}"]
    for tensor, profile in zip(config.input, profiles, strict=True):
        problems += _input_problems(tensor, profile, config.max_batch_size)
    return problems


def _input_problems(tensor: mc.ModelInput, profile: InputProfile, batch: int) -> list[str]:
    name = f"input '{tensor.name}'"
    # The engine's shape: Triton's batch axis first when the config batches.
    shape = (-1, *tensor.dims) if batch > 0 else tuple(tensor.dims)
    if len(shape) != len(profile.opt):
        return [
            f"{name} is {shape_text(shape)} with the batch axis ({len(shape)} axes), the "
            f"profile's {shape_text(profile.opt)} ({len(profile.opt)})"
        ]
    problems = []
    if batch > 0:
        if profile.min[0] != 1:
            problems.append(f"{name}: the profile's smallest batch is {profile.min[0]}, not 1")
        if profile.max[0] < batch:
            problems.append(
                f"{name}: max_batch_size {batch} exceeds the profile's largest batch "
                f"{profile.max[0]} (Triton would send batches the plan cannot take)"
            )
        if profile.opt[0] > batch:
            problems.append(
                f"{name}: the profile's optimum batch {profile.opt[0]} exceeds max_batch_size "
                f"{batch} (Triton never sends it)"
            )
    for axis, size in enumerate(shape):
        low, opt, high = profile.min[axis], profile.opt[axis], profile.max[axis]
        if size >= 0 and not low == opt == high == size:
            problems.append(
                f"{name} axis {axis}: the config fixes it at {size}, the profile spans "
                f"{low}..{high} (optimum {opt})"
            )
    return problems


def plan_config(repository: Path, spec: ModelSpec) -> Path:
    return repository / spec.name / "configs" / f"{GPU_TRT_PLAN}.pbtxt"


def sample_of(spec: ModelSpec, tiny: bool, profiles: Sequence[InputProfile]) -> dict[str, Array]:
    """The export's validation inputs for the installed variant, by input name."""
    feeds = sample_feeds(spec, tiny, SAMPLE_BATCH)
    for profile in profiles:
        shape = tuple(feeds[profile.name].shape)
        if not profile.admits(shape):
            raise TensorRTError(
                f"{spec.name}: its sample's '{profile.name}' {shape_text(shape)} lies outside "
                f"the profile {shape_text(profile.min)}..{shape_text(profile.max)}"
            )
    return feeds


def reference_label() -> str:
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__} FP32, CPUExecutionProvider"


def sample_description(spec: ModelSpec) -> str:
    kind = "the spec's feeds" if spec.feeds is not None else "the sample photo and its flip"
    return f"the export's validation sample (export.pipeline.sample_feeds: {kind})"


def job_for(
    spec: ModelSpec,
    config: mc.ModelConfig,
    feeds: dict[str, Array],
    onnx_sha256: str,
    variant: str = "full",
    fingerprint: str = "",
) -> PlanJob:
    """The job for `spec` (its sample's sha256 left to `write_job`), with the variant and the
    export's fingerprint of its manifest."""
    profile = spec.tensorrt
    assert profile is not None
    profiles = input_profiles(spec)
    return PlanJob(
        model=spec.name,
        variant=variant,
        export_fingerprint=fingerprint,
        onnx_file=MODEL_FILE,
        onnx_sha256=onnx_sha256,
        plan_file=config.default_model_filename,
        precision=PRECISION,
        inputs=profiles,
        outputs=tuple(tensor.name for tensor in spec.outputs),
        optimum_source=profile.opt_source,
        tolerance=tolerance_for(spec.name),
        sample=Sample(
            file=SAMPLE_FILE,
            sha256="",
            batch=SAMPLE_BATCH,
            inputs=tuple(
                SampleTensor(p.name, tuple(feeds[p.name].shape), str(feeds[p.name].dtype))
                for p in profiles
            ),
            description=sample_description(spec),
            reference=reference_label(),
        ),
    )


def _unchanged(old: PlanJob, new: PlanJob) -> bool:
    """The same job but for when it was written and its sample's hash."""
    blank = {"prepared_at": "", "sample": {**new.as_dict()["sample"], "sha256": ""}}
    return {**old.as_dict(), **blank} == {**new.as_dict(), **blank}


def prepare_model(repository: Path, spec: ExportSpec, force: bool = False) -> str | None:
    """Write the model's TensorRT job; what was done, or None for a model that gets no plan
    (no TensorRTProfile, or no gpu_trt_plan config in its folder). Raises ExportError for a
    config that disagrees with the profile, or a model not exported."""
    if not isinstance(spec, ModelSpec) or spec.tensorrt is None:
        return None
    config_path = plan_config(repository, spec)
    if not config_path.is_file():
        return None
    profiles = input_profiles(spec)
    config = parse_config(config_path)
    check_config(spec.name, profiles, config, config_path)
    model_dir = repository / spec.name
    onnx = model_dir / VERSION / MODEL_FILE
    manifest = read_manifest(model_dir)
    if manifest is None or not onnx.is_file():
        raise TensorRTError(f"{spec.name}: not exported (python -m export {spec.name} first)")
    variant = str(manifest.get("variant", "full"))
    feeds = sample_of(spec, variant == "tiny", profiles)
    fingerprint = str(manifest.get("fingerprint", ""))
    job = job_for(spec, config, feeds, sha256_of(onnx), variant, fingerprint)
    existing = None if force else _existing(model_dir)
    if existing is not None and _unchanged(existing, job):
        return f"{spec.name}: TensorRT job up to date ({VERSION}/{JOB_FILE})"
    session = open_session(onnx)
    reference = dict(zip(job.outputs, session.run(list(job.outputs), feeds), strict=True))
    now = datetime.now(UTC).isoformat(timespec="seconds")
    write_job(model_dir, dataclasses.replace(job, prepared_at=now), feeds, reference)
    return (
        f"{spec.name}: TensorRT job written ({VERSION}/{JOB_FILE}, {VERSION}/{SAMPLE_FILE}); "
        "the plan is built on a GPU by python3 -m export.trt_build"
    )


def _existing(model_dir: Path) -> PlanJob | None:
    try:
        job = read_job(model_dir)
    except TensorRTError:
        return None  # unreadable: written again
    if job is None or not (model_dir / VERSION / job.sample.file).is_file():
        return None
    if sha256_of(model_dir / VERSION / job.sample.file) != job.sample.sha256:
        return None
    return job


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export.trt_plans",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser(
        "prepare", help="write the TensorRT jobs of models already exported"
    )
    prepare.add_argument(
        "--repository",
        type=Path,
        default=Path("model_repository"),
        help="Triton model repository holding the exported models (default: model_repository)",
    )
    with_profile = ", ".join(name for name, spec in MODELS.items() if spec.tensorrt)
    prepare.add_argument(
        "--models", nargs="+", metavar="MODEL", help=f"only these (default: all of {with_profile})"
    )
    prepare.add_argument("--force", action="store_true", help="write up-to-date jobs again")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    unknown = sorted(set(args.models or ()) - set(MODELS))
    if unknown:
        sys.stderr.write(f"unknown model(s) {unknown}; known: {', '.join(MODELS)}\n")
        return 2
    status = 0
    for name, spec in MODELS.items():
        if args.models and name not in args.models:
            continue
        if not args.models and not (args.repository / name / VERSION / MODEL_FILE).is_file():
            continue  # every model: those not exported are left out; named ones fail
        try:
            done = prepare_model(args.repository, spec, args.force)
        except ExportError as exc:
            sys.stderr.write(f"refused: {exc}\n")
            status = 1
            continue
        if done is None and args.models:
            config = plan_config(args.repository, spec)
            why = "no TensorRTProfile" if spec.tensorrt is None else f"no {config}"
            sys.stderr.write(f"refused: {name}: {why}, so no plan is built\n")
            status = 1
        elif done is not None:
            sys.stdout.write(f"{done}\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
