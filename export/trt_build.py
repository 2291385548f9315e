"""`python3 -m export.trt_build`: build the TensorRT plans that the gpu_trt_plan configs serve,
from the jobs the export left in each model's version folder, check each plan against the ONNX
Runtime FP32 outputs stored with its job, and record it in the model's manifest.json.

This is the GPU half of the plans; the export prepared the rest (export/trt_plans.py writes
`<model>/1/trt_build.json` and `trt_sample.npz`). It runs inside NVIDIA's stock tritonserver
image (docker-compose.yml's `trt-plans`), which has trtexec, Python 3.10 and numpy and none of
the exporter's packages, so this module and the project modules it imports use the standard
library and numpy only (tests/unit/test_trt_plans.py reads their imports to keep it so).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from export.errors import ExportError, TensorRTError
from export.hashing import sha256_of
from export.trt_commands import (
    NGC_TRTEXEC,
    TIMING_CACHE_FILE,
    Array,
    build_command,
    command_text,
    gpu_from_log,
    parse_exported_outputs,
    run_command,
    shape_text,
    tensorrt_version_from_log,
)
from export.trt_job import (
    JOB_FILE,
    SAMPLE_FILE,
    VERSION,
    PlanJob,
    job_path,
    read_job,
    read_manifest,
    read_sample,
    record_in_manifest,
)
from export.trt_parity import TOLERANCE_METRIC, PlanRecord, compare_plan, is_current

EXIT_FAILED = 1  # a model failed: its job, build or parity
EXIT_UNUSABLE = 2  # nothing could run: no trtexec, no GPU, no job at all
TENSORRT_CONFIG = "configs/gpu_trt_plan.pbtxt"

DESCRIPTION = f"""\
Build the TensorRT plans (<model>/1/model.plan) that the gpu_trt_plan configs serve, from the
jobs that `python -m export` writes for every model with a TensorRT profile ({VERSION}/{JOB_FILE}
and {VERSION}/{SAMPLE_FILE}: the min/opt/max shapes, FP16, the family's tolerance, and the
export's validation sample with ONNX Runtime FP32's outputs on it).

Each plan is FP16 with one optimisation profile, built with a timing cache shared by every model
and kept between runs. It then runs once on the job's sample; its largest error on the output's
scale must stay within the stored tolerance. The result (errors, tolerance, TensorRT version,
GPU, build time) goes into the model's manifest.json under `tensorrt`; a plan that fails is
deleted and the command exits 1. An unchanged plan (same ONNX, profile, TensorRT and GPU) is not
built again unless --force.

Needs trtexec and a CUDA GPU, and nothing but Python 3.10+ with numpy: it runs inside NVIDIA's
stock tritonserver image (trtexec at --trtexec, {NGC_TRTEXEC}, then PATH). --dry-run prints
the exact trtexec commands and needs neither.
"""


@dataclass(frozen=True)
class Located:
    """A job and where its model lives."""

    job: PlanJob
    model_dir: Path
    work: Path  # its raw sample inputs, exported outputs and trtexec logs

    @property
    def name(self) -> str:
        return self.job.model

    @property
    def version_dir(self) -> Path:
        return self.model_dir / VERSION

    @property
    def onnx(self) -> Path:
        return self.version_dir / self.job.onnx_file

    @property
    def plan(self) -> Path:
        return self.version_dir / self.job.plan_file

    @property
    def staged(self) -> Path:
        """Where the plan is built, beside its final name until it has passed."""
        return self.plan.with_name(f"{self.plan.name}.new")

    @property
    def exported(self) -> Path:
        """The plan's outputs on the sample, as trtexec exports them."""
        return self.work / "outputs.json"

    def input_files(self) -> list[tuple[str, tuple[int, ...], Path]]:
        return [(t.name, t.shape, self.work / f"{t.name}.bin") for t in self.job.sample.inputs]


@dataclass
class Selection:
    jobs: list[Located] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # models left out, and why
    errors: list[str] = field(default_factory=list)  # models refused


@dataclass(frozen=True)
class Toolchain:
    trtexec: Path
    tensorrt_version: str | None
    gpu: str | None


@dataclass(frozen=True)
class RunOptions:
    timing_cache: Path  # the file
    force: bool
    timeout_s: float


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m export.trt_build",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--repository",
        type=Path,
        default=Path("model_repository"),
        help="Triton model repository the export filled (default: model_repository)",
    )
    parser.add_argument(
        "--models", nargs="+", metavar="MODEL", help="only these (default: every prepared model)"
    )
    parser.add_argument(
        "--timing-cache",
        type=Path,
        default=Path("build/trt/timing_cache"),
        help=f"folder of the timing cache file ({TIMING_CACHE_FILE}) shared by every build and "
        "kept between runs (default: build/trt/timing_cache)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "facet-trt",
        help="where each model's raw sample inputs, exported outputs and trtexec logs go; a "
        "model's folder is removed once its plan has passed (default: %(default)s)",
    )
    parser.add_argument("--trtexec", type=Path, help=f"trtexec to run (default: {NGC_TRTEXEC})")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="read every job and print the trtexec commands (build, then the parity run) "
        "without running anything; needs no TensorRT and no GPU",
    )
    parser.add_argument(
        "--force", action="store_true", help="rebuild plans that are up to date as well"
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=3600.0,
        help="limit for one trtexec call in seconds (default: 3600)",
    )
    return parser


def _has_plan_config(model_dir: Path) -> bool:
    config = model_dir / TENSORRT_CONFIG
    return config.is_file() and 'platform: "tensorrt_plan"' in config.read_text()


def select_jobs(repository: Path, names: Sequence[str] | None, work_dir: Path) -> Selection:
    """Every model of `repository` with a job (or the named ones, which must have one)."""
    selection = Selection()
    if names:
        folders = [repository / name for name in dict.fromkeys(names)]
    else:
        folders = (
            sorted(p for p in repository.iterdir() if p.is_dir()) if repository.is_dir() else []
        )
    for model_dir in folders:
        try:
            job = read_job(model_dir)
        except TensorRTError as exc:
            selection.errors.append(f"{model_dir.name}: {exc}")
            continue
        if job is None:
            if names or _has_plan_config(model_dir):
                note = (
                    f"{model_dir.name}: no {job_path(model_dir)}, so no plan is built (export "
                    f"it with `python -m export {model_dir.name}`, which writes the job)"
                )
                (selection.errors if names else selection.notes).append(note)
            continue
        if job.model != model_dir.name:
            selection.errors.append(f"{model_dir.name}: its job is for '{job.model}'")
            continue
        selection.jobs.append(Located(job, model_dir, work_dir / model_dir.name))
    return selection


def commands(located: Located, trtexec: Path, timing_cache: Path) -> tuple[list[str], list[str]]:
    """The build, then the parity run."""
    job = located.job
    build = build_command(trtexec, located.onnx, located.staged, job.inputs, timing_cache)
    run = run_command(trtexec, located.staged, located.input_files(), located.exported)
    return build, run


def write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def optimum_text(job: PlanJob) -> str:
    return ", ".join(f"{p.name} {shape_text(p.opt)}" for p in job.inputs)


def sample_text(job: PlanJob) -> str:
    tensors = ", ".join(f"{t.name} {shape_text(t.shape)} {t.dtype}" for t in job.sample.inputs)
    return f"{job.sample.description}, {tensors}"


def dry_run(selection: Selection, trtexec: Path, timing_cache: Path) -> None:
    """Print what a run would do; reads the jobs only."""
    for located in selection.jobs:
        job = located.job
        write(f"# {job.model} ({job.variant}): optimum {optimum_text(job)}, {job.optimum_source}")
        if not located.onnx.is_file():
            write(f"# {job.model}: {located.onnx} is missing (python -m export {job.model})")
        for command in commands(located, trtexec, timing_cache):
            write(command_text(command))
    for note in selection.notes:
        write(f"# skipped {note}")


def locate_trtexec(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit if explicit.is_file() else None
    if NGC_TRTEXEC.is_file():
        return NGC_TRTEXEC
    found = shutil.which("trtexec")
    return Path(found) if found else None


def probe_gpu() -> str | None:
    """The first GPU's name from nvidia-smi; None when there is no nvidia-smi to ask. Raises
    TensorRTError when nvidia-smi answers that there is no GPU."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    query = [smi, "--query-gpu=name", "--format=csv,noheader"]
    answer = subprocess.run(query, capture_output=True, text=True, timeout=60, check=False)
    names = [line.strip() for line in answer.stdout.splitlines() if line.strip()]
    if answer.returncode != 0 or not names:
        raise TensorRTError(f"nvidia-smi sees no CUDA GPU: {answer.stderr.strip() or 'none'}")
    return names[0]


def probe_tensorrt_version(trtexec: Path) -> str | None:
    """TensorRT's version from trtexec's banner (the image's Python has no tensorrt module)."""
    banner = subprocess.run(
        [str(trtexec), "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    return tensorrt_version_from_log(banner.stdout + banner.stderr)


def probe_toolchain(explicit: Path | None) -> Toolchain:
    trtexec = locate_trtexec(explicit)
    if trtexec is None:
        where = explicit or f"{NGC_TRTEXEC} or on PATH"
        raise TensorRTError(
            f"no trtexec at {where}: plans are built inside NVIDIA's tritonserver image on a "
            "GPU host (or pass --trtexec); --dry-run prints the commands anywhere"
        )
    return Toolchain(trtexec, probe_tensorrt_version(trtexec), probe_gpu())


def run_logged(command: list[str], log: Path, timeout_s: float) -> str:
    """Run `command` with its output in `log`; its output back, or TensorRTError."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        handle.write(f"$ {command_text(command)}\n")
        handle.flush()
        try:
            done = subprocess.run(
                command, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise TensorRTError(f"{command[0]} ran past {timeout_s:.0f} s; log: {log}") from None
    text = log.read_text(errors="replace")
    if done.returncode != 0:
        tail = "\n".join(text.splitlines()[-15:])
        raise TensorRTError(f"trtexec exited {done.returncode}; log: {log}\n{tail}")
    return text


def check_job(located: Located, feeds: dict[str, Array]) -> None:
    job = located.job
    for profile in job.inputs:
        shape = tuple(feeds[profile.name].shape)
        if not profile.admits(shape):
            raise TensorRTError(
                f"{job.model}: its sample's '{profile.name}' {shape_text(shape)} lies outside "
                f"the profile {shape_text(profile.min)}..{shape_text(profile.max)}"
            )


def build_plan(located: Located, tools: Toolchain, options: RunOptions) -> tuple[bool, str]:
    """Build, run and check one plan; (passed, what happened). Raises TensorRTError when the
    model cannot be built or run at all."""
    job = located.job
    manifest = read_manifest(located.model_dir)
    if manifest is None or not located.onnx.is_file():
        raise TensorRTError(f"not exported (python -m export {job.model} first)")
    onnx_sha256 = sha256_of(located.onnx)
    if onnx_sha256 != job.onnx_sha256:
        raise TensorRTError(
            f"its job was written for another {job.onnx_file} (python -m export {job.model} "
            "writes it again)"
        )
    recorded = manifest.get("tensorrt")
    if not options.force and isinstance(recorded, dict):
        profile = job.profile()
        if is_current(
            recorded, located.model_dir, onnx_sha256, profile, tools.tensorrt_version, tools.gpu
        ):
            return True, f"{job.model}: plan up to date ({located.plan})"
    feeds, reference = read_sample(located.model_dir, job)
    check_job(located, feeds)
    build, run = commands(located, tools.trtexec, options.timing_cache)
    options.timing_cache.parent.mkdir(parents=True, exist_ok=True)
    located.work.mkdir(parents=True, exist_ok=True)
    try:  # until the plan has been compared, it stays staged; any failure removes it
        started = time.perf_counter()
        log = run_logged(build, located.work / "build.log", options.timeout_s)
        build_time = time.perf_counter() - started
        for name, _, path in located.input_files():
            np.ascontiguousarray(feeds[name]).tofile(path)
        located.exported.unlink(missing_ok=True)
        run_logged(run, located.work / "run.log", options.timeout_s)
        plan_outputs = parse_exported_outputs(located.exported.read_text())
    except Exception:
        located.staged.unlink(missing_ok=True)
        raise
    record = PlanRecord(
        plan_file=located.plan.relative_to(located.model_dir).as_posix(),
        plan_sha256=None,
        onnx_sha256=onnx_sha256,
        precision=job.precision,
        profile=job.profile(),
        optimum_source=job.optimum_source,
        tensorrt_version=tools.tensorrt_version or tensorrt_version_from_log(log),
        gpu=tools.gpu or gpu_from_log(log),
        build_time_s=round(build_time, 1),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        reference=job.sample.reference,
        sample=sample_text(job),
        family=job.tolerance.family,
        tolerance_metric=TOLERANCE_METRIC,
        tolerance=job.tolerance.max_rel_error,
        tolerance_reason=job.tolerance.reason,
        outputs=compare_plan(reference, plan_outputs, job.tolerance),
    )
    return finish(located, record)


def finish(located: Located, record: PlanRecord) -> tuple[bool, str]:
    """Keep a plan that passed, delete one that did not (and the plan it would have replaced,
    unverified now), and record either in the manifest."""
    if record.passed:
        located.staged.replace(located.plan)
        record = dataclasses.replace(record, plan_sha256=sha256_of(located.plan))
        shutil.rmtree(located.work, ignore_errors=True)
    else:
        located.staged.unlink(missing_ok=True)
        located.plan.unlink(missing_ok=True)
    record_in_manifest(located.model_dir, record.as_dict())
    worst = max(record.outputs, key=lambda r: r.max_rel_error if r.passed else float("inf"))
    errors = (
        f"{TOLERANCE_METRIC} {worst.max_rel_error:.3g} on '{worst.output}' "
        f"(limit {worst.tolerance:.3g}){f', {worst.detail}' if worst.detail else ''}"
    )
    where = f"TensorRT {record.tensorrt_version or '?'} on {record.gpu or '?'}"
    name = located.name
    if record.passed:
        built = f"plan built in {record.build_time_s:.0f} s"
        return True, f"{name}: {built}, FP16 parity passed: {errors}; {where}"
    return False, f"{name}: FP16 parity FAILED: {errors}; {where}; plan deleted ({located.work})"


def build_all(selection: Selection, tools: Toolchain, options: RunOptions) -> int:
    status = 0
    total = len(selection.jobs)
    for number, located in enumerate(selection.jobs, start=1):
        job = located.job
        write(f"[{number}/{total}] {job.model}: FP16 plan, optimum {optimum_text(job)}")
        try:
            passed, message = build_plan(located, tools, options)
        except ExportError as exc:
            passed, message = False, f"{job.model}: {exc}"
        except Exception as exc:  # a tool or a bug: still name the model, go on with the rest
            passed, message = False, f"{job.model}: failed: {type(exc).__name__}: {exc}"
        status = status if passed else EXIT_FAILED
        write(message)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    selection = select_jobs(args.repository, args.models, args.work_dir)
    for error in selection.errors:
        sys.stderr.write(f"refused: {error}\n")
    if not selection.jobs and not selection.errors:
        sys.stderr.write(
            f"no TensorRT job in {args.repository}: `python -m export` writes one "
            f"({VERSION}/{JOB_FILE}) for every model with a TensorRT profile\n"
        )
        return EXIT_UNUSABLE
    timing_cache = args.timing_cache / TIMING_CACHE_FILE
    if args.dry_run:
        trtexec = locate_trtexec(args.trtexec) or args.trtexec or NGC_TRTEXEC
        dry_run(selection, trtexec, timing_cache)
        return EXIT_FAILED if selection.errors else 0
    try:
        tools = probe_toolchain(args.trtexec)
    except TensorRTError as exc:
        sys.stderr.write(f"cannot build TensorRT plans here: {exc}\n")
        return EXIT_UNUSABLE
    for note in selection.notes:
        write(f"skipped {note}")
    options = RunOptions(timing_cache, args.force, args.timeout_s)
    status = build_all(selection, tools, options)
    return EXIT_FAILED if selection.errors else status


if __name__ == "__main__":
    sys.exit(main())
