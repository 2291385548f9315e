"""Checks an exported ONNX file against its reference: names, then shapes, then values.

Every failure is collected before raising, so one run names everything that is wrong."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from export.errors import ValidationError
from export.samples import psnr, to_hwc_uint8, to_nchw_float
from export.spec import Array, TensorSpec, VectorTolerance


@dataclass(frozen=True)
class CheckResult:
    check: str
    output: str
    metric: str
    value: float
    tolerance: float
    passed: bool
    input: str
    detail: str = ""  # what went wrong beyond the numbers (e.g. a shape mismatch)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def open_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_names(
    session: ort.InferenceSession,
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    model: str,
) -> None:
    got_in = [i.name for i in session.get_inputs()]
    got_out = [o.name for o in session.get_outputs()]
    want_in = [t.name for t in inputs]
    want_out = [t.name for t in outputs]
    if got_in != want_in or got_out != want_out:
        raise ValidationError(
            model,
            "names",
            float("nan"),
            0.0,
            f"inputs {got_in} / outputs {got_out} != {want_in} / {want_out}",
        )


def compare_outputs(
    model: str,
    check: str,
    sample_label: str,
    expected: dict[str, Array],
    actual: dict[str, Array],
    atol: float,
) -> list[CheckResult]:
    """Shapes first, then the maximum absolute difference of each output; a wrong shape is a
    failed result of its own (metric "shape"), so every output is looked at before raising."""
    results: list[CheckResult] = []
    for name, want in expected.items():
        got = actual[name]
        if got.shape != want.shape:
            detail = f"shape {got.shape} != {want.shape}"
            results.append(
                CheckResult(check, name, "shape", float("nan"), atol, False, sample_label, detail)
            )
            continue
        error = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))
        results.append(
            CheckResult(check, name, "max_abs_error", error, atol, error <= atol, sample_label)
        )
    return results


def raise_on_failure(model: str, results: list[CheckResult]) -> None:
    """Raise one ValidationError naming every failed check (its fields are the first one's)."""
    failed = [r for r in results if not r.passed]
    if failed:
        first = failed[0]
        raise ValidationError(
            model,
            first.output,
            first.value,
            first.tolerance,
            first.metric,
            also=[describe_failure(r) for r in failed[1:]],
        )


def describe_failure(result: CheckResult) -> str:
    if result.detail:
        return f"{result.output}: {result.detail}"
    return (
        f"{result.output}: {result.metric} = {result.value:.6g} (tolerance {result.tolerance:.6g})"
    )


def check_against_reference(
    model: str,
    session: ort.InferenceSession,
    reference: Callable[[Array], Array],
    image: Array,
    min_psnr_db: float,
    check: str,
    sample_label: str,
) -> CheckResult:
    """Run the exported model and an independent implementation on one photo; compare the
    8-bit images they produce by PSNR (the measure the issue's acceptance uses)."""
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name
    ours = to_hwc_uint8(session.run([output_name], {input_name: to_nchw_float(image)})[0])
    theirs = np.round(np.clip(reference(image), 0.0, 1.0) * 255.0).astype(np.uint8)
    if ours.shape != theirs.shape:
        detail = f"shape {ours.shape} != reference {theirs.shape}"
        return CheckResult(
            check, output_name, "shape", float("nan"), min_psnr_db, False, sample_label, detail
        )
    value = psnr(ours, theirs)
    # PSNR is "higher is better": recorded with the tolerance as the floor it must reach.
    return CheckResult(
        check, output_name, "psnr_db", value, min_psnr_db, value >= min_psnr_db, sample_label
    )


def check_vector_against_reference(
    model: str,
    session: ort.InferenceSession,
    reference: Callable[[Array], Array],
    image: Array,
    feed: Array | dict[str, Array],
    tolerance: VectorTolerance,
    check: str,
    sample_label: str,
) -> list[CheckResult]:
    """Run the exported model on `feed` (the photo in its input range, or every input by name)
    and an independent implementation on the photo (or sample) itself; compare the vectors they
    produce element by element (max |Δ|) and by direction (cosine similarity, the lowest of a
    batch's rows), the measures a descriptor is used by."""
    output_name = session.get_outputs()[0].name
    feeds = feed if isinstance(feed, dict) else {session.get_inputs()[0].name: feed}
    produced = np.asarray(session.run([output_name], feeds)[0], np.float64)
    ours, theirs = produced.reshape(-1), np.asarray(reference(image), np.float64).reshape(-1)
    if ours.shape != theirs.shape:
        detail = f"shape {ours.shape} != reference {theirs.shape}"
        limit = tolerance.max_abs_error
        return [
            CheckResult(
                check, output_name, "shape", float("nan"), limit, False, sample_label, detail
            )
        ]
    error = float(np.max(np.abs(ours - theirs)))
    rows = produced.shape[0] if produced.ndim > 1 else 1
    pairs = zip(ours.reshape(rows, -1), theirs.reshape(rows, -1), strict=True)
    cosine = float(np.min([_cosine(a, b) for a, b in pairs]))  # NaN (a zero vector) fails
    return [
        CheckResult(
            check,
            output_name,
            "max_abs_error",
            error,
            tolerance.max_abs_error,
            error <= tolerance.max_abs_error,
            sample_label,
        ),
        # "Higher is better": recorded with the tolerance as the floor it must reach.
        CheckResult(
            check,
            output_name,
            "cosine_similarity",
            cosine,
            tolerance.min_cosine,
            cosine >= tolerance.min_cosine,
            sample_label,
        ),
    ]


def _cosine(a: Array, b: Array) -> float:
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / norms) if norms > 0 else float("nan")
