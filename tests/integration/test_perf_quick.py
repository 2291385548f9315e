"""`python -m perf.benchmark --quick`: the whole benchmark (ORT, two real Tritons, the gateway
process, PyTorch) on tiny synthetic models; every measurement must come out as a number."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Quick mode takes ~20 s on 2 cores (under a minute is its contract); the generous cap only
# keeps a hung server from stalling the suite, without flaking on a busy machine.
HANG_TIMEOUT_S = 180


def numbers_in(value: object) -> list[object]:
    """Every leaf of a JSON document that should be a number (throughputs, latencies, times)."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in numbers_in(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in numbers_in(item)]
    return [value]


def test_quick_benchmark_measures_every_path_and_writes_its_report(tmp_path: Path) -> None:
    out, work = tmp_path / "report", tmp_path / "work"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "perf.benchmark", "--quick", "--out", str(out), "--work", str(work)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
        check=False,
    )
    print(f"quick benchmark took {time.monotonic() - started:.0f} s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "quick check passed" in done.stdout

    (markdown,) = out.glob("*-quick.md")
    stem = markdown.stem
    for suffix in ("-throughput.png", "-latency.png"):
        assert (out / f"{stem}{suffix}").stat().st_size > 1000
    text = markdown.read_text()
    for heading in ("## Ratios", "## Machine", "## Throughput and latency", "## Plots"):
        assert heading in text

    results = json.loads((out / "raw" / f"{stem}.json").read_text())
    paths = {(p["path"], p["concurrency"]) for p in results["points"]}
    assert paths == {
        (path, level)
        for path in ("ort", "triton_batching", "triton_no_batching", "gateway", "pytorch")
        for level in results["setup"]["concurrency"]
    }
    for point in results["points"]:
        assert point["throughput"] > 0
        for value in numbers_in(point["latency"]) + point["throughputs"]:
            assert isinstance(value, int | float) and math.isfinite(value), point
    stage_models = {stage["model"] for stage in results["stages"]}
    assert {"realesrgan_x4plus", "image_to_tensor", "tensor_to_image"} <= stage_models
    for stage in results["stages"]:
        for key in ("queue_ms", "compute_input_ms", "compute_infer_ms", "compute_output_ms"):
            assert math.isfinite(stage[key]) and stage[key] >= 0, stage
    assert results["codec"]["decode_ms"] > 0 and results["codec"]["encode_ms"] > 0


def test_full_tiny_run_measures_every_scenario_and_writes_its_report(tmp_path: Path) -> None:
    """`--full --tiny`, pared down to one level and one floor batch (~30 s): every scenario of
    the user-level benchmark end to end (the gateway, Triton direct, the seeds' way, the
    floors, the memory check) on tiny synthetic models and the real MTCNN."""
    out, work = tmp_path / "report", tmp_path / "work"
    command = [sys.executable, "-m", "perf.benchmark", "--full", "--tiny"]
    command += ["--out", str(out), "--work", str(work), "--concurrency", "1"]
    command += ["--direct-levels", "1", "--floor-batches", "1", "--latency-model", "none"]
    command += ["--leak-requests", "40", "--leak-warmup", "8"]
    started = time.monotonic()
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=HANG_TIMEOUT_S, check=False
    )
    print(f"tiny user-level benchmark took {time.monotonic() - started:.0f} s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    (markdown,) = out.glob("*-realistic-tiny.md")
    text = markdown.read_text()
    for heading in ("## Targets", "## Machine", "## Floors", "## Memory", "## Plots"):
        assert heading in text
    for suffix in ("upscale-throughput", "upscale-latency", "floors", "memory"):
        assert (out / f"{markdown.stem}-{suffix}.png").stat().st_size > 1000

    results = json.loads((out / "raw" / f"{markdown.stem}.json").read_text())
    assert results["kind"] == "realistic"
    assert results["skipped"] == [] and results["failed"] == []
    runs = {(r["scenario"], r["point"]["path"], r["point"]["concurrency"]) for r in results["runs"]}
    assert runs == {
        (scenario, path, 1)
        for scenario in ("upscale", "restore")
        for path in ("gateway", "triton_direct", "seeds")
    }
    for run in results["runs"]:
        assert run["point"]["throughputs"][0] > 0, run
    restored = [r for r in results["runs"] if r["scenario"] == "restore"]
    assert all(r["notes"]["faces"] >= 5 for r in restored)
    floors = {(f["model"], f["runtime"]) for f in results["floors"]}
    assert len(floors) == 6 and all(f["runs_ms"][0] > 0 for f in results["floors"])
    peaks = {peak["process"]: peak["peak_rss_mb"] for peak in results["memory"]}
    assert peaks["triton"] > peaks["gateway"] > 0
    assert results["leak"]["requests"] == 40 and results["leak"]["failures"] == 0
