"""Benchmark arithmetic and report rendering, from fake measurements (no server, no model)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from perf.report import evaluate, render_markdown, write_report
from perf.results import (
    GATEWAY,
    ORT,
    PATHS,
    PYTORCH,
    TRITON,
    TRITON_NO_BATCHING,
    BatchCost,
    Codec,
    Point,
    Results,
    Setup,
    StageTimes,
)
from perf.stats import LatencySummary, is_number, median, percentile, ratio, shortfall


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy_linear_interpolation(q: float) -> None:
    values = [5.0, 1.0, 9.5, 3.25, 7.0, 2.0, 8.0]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_edge_cases() -> None:
    assert math.isnan(percentile([], 50))
    assert percentile([4.0], 99) == 4.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_median_of_odd_and_even_counts() -> None:
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5


def test_ratio_refuses_what_is_not_a_ratio() -> None:
    assert ratio(3.0, 4.0) == 0.75
    assert ratio(None, 4.0) is None
    assert ratio(3.0, None) is None
    assert ratio(3.0, 0.0) is None
    assert ratio(math.nan, 1.0) is None
    assert ratio(1.0, math.inf) is None


def test_shortfall_is_the_fraction_of_the_target_missing() -> None:
    assert shortfall(0.45, 0.9) == pytest.approx(0.5)
    assert shortfall(1.2, 0.9) == 0.0


def test_is_number_accepts_finite_numbers_only() -> None:
    assert is_number(1) and is_number(2.5)
    assert not is_number(math.nan) and not is_number(None) and not is_number(True)


def test_latency_summary_in_milliseconds_and_median_over_repeats() -> None:
    summary = LatencySummary.of_seconds([0.1, 0.2, 0.3, 0.4])
    assert summary.count == 4
    assert summary.mean_ms == pytest.approx(250.0)
    assert summary.p50_ms == pytest.approx(250.0)
    assert summary.p99_ms == pytest.approx(397.0)
    runs = [
        LatencySummary(2, 10.0, 10.0, 20.0, 30.0),
        LatencySummary(2, 30.0, 12.0, 25.0, 90.0),
        LatencySummary(2, 20.0, 11.0, 21.0, 40.0),
    ]
    combined = LatencySummary.median_of(runs)
    assert (combined.count, combined.p50_ms, combined.p95_ms, combined.p99_ms) == (6, 11, 21, 40)


# --- fake results ----------------------------------------------------------------------------

LEVELS = [1, 8]
# Tiles/s (tile paths) or images/s (image paths) by path and concurrency.
THROUGHPUT = {
    ORT: {1: 2.0, 8: 1.8},
    TRITON: {1: 0.9, 8: 1.0},  # best 1.0 vs ORT best 2.0: ratio 0.5, missed by 44%
    TRITON_NO_BATCHING: {1: 1.6, 8: 1.7},
    GATEWAY: {1: 0.2, 8: 0.25},  # 4 tiles per image
    PYTORCH: {1: 0.2, 8: 0.1},
}


def point(path: str, level: int) -> Point:
    value = THROUGHPUT[path][level]
    unit = "images/s" if path in (GATEWAY, PYTORCH) else "tiles/s"
    latency_ms = 1000.0 * level / value
    return Point(
        path=path,
        concurrency=level,
        unit=unit,
        throughputs=[value * 0.9, value, value * 1.1],
        latency=LatencySummary(
            level * 4, latency_ms, latency_ms, latency_ms * 1.2, latency_ms * 1.3
        ),
        requests_per_repeat=level * 4,
    )


def stage(model: str, path: str, level: int, batch: float, per_tile: float) -> StageTimes:
    return StageTimes(
        model=model,
        path=path,
        concurrency=level,
        requests=int(8 * batch),
        inferences=int(8 * batch),
        executions=8,
        request_ms=per_tile * batch + 5.0,
        queue_ms=5.0,
        compute_input_ms=0.1,
        compute_infer_ms=per_tile * batch,
        compute_output_ms=0.2,
        compute_per_inference_ms=per_tile,
    )


def fake_results() -> Results:
    setup = Setup(
        model="realesrgan_x4plus",
        variant="full",
        weights="package",
        tile=48,
        image_side=72,
        tiles_per_image=4,
        concurrency=LEVELS,
        repeats=3,
        tile_requests={1: 4, 8: 16},
        image_requests={1: 2, 8: 8},
        intra_op_threads=2,
        inter_op_threads=1,
        triton_batching="max_batch_size 8, preferred [4, 8], max_queue_delay 5000 µs",
        gateway_settings={"FACET_TILE_SIZE": "36"},
        quick=False,
        repository="model_repository",
    )
    results = Results(
        started_at="2026-01-02T03:04:05+00:00",
        duration_s=600.0,
        machine={
            "hostname": "box",
            "cores": 2,
            "cpu_model": "AMD EPYC",
            "ram_gib": 23.5,
            "gpu": "none",
            "os": "Debian GNU/Linux 12 (bookworm)",
            "python": "3.11.7",
            "load_average": "0.1 0.2 0.3",
            "packages": {"onnxruntime": "1.32.0"},
        },
        setup=setup,
        points=[point(path, level) for path in PATHS for level in LEVELS],
        codec=Codec("JPEG", "JPEG", 3000, decode_ms=2.0, encode_ms=30.0),
        batch_costs=[BatchCost(1, 500.0), BatchCost(4, 900.0)],
    )
    for level in LEVELS:
        results.stages.append(stage(setup.model, TRITON, level, batch=4.0, per_tile=900.0))
        results.stages.append(stage(setup.model, TRITON_NO_BATCHING, level, 1.0, 520.0))
        results.stages.append(stage(setup.model, GATEWAY, level, batch=4.0, per_tile=900.0))
        results.stages.append(stage("image_to_tensor", GATEWAY, level, 4.0, 0.5))
        results.stages.append(stage("tensor_to_image", GATEWAY, level, 4.0, 1.0))
    return results


def test_targets_are_computed_from_the_best_points() -> None:
    targets = {t.key: t for t in evaluate(fake_results())}
    triton = targets["triton_vs_ort"]
    assert triton.value == pytest.approx(1.0 / 2.0)
    assert not triton.met and triton.status == "missed by 44%"
    gateway = targets["gateway_vs_triton"]
    # Best gateway point: 0.25 images/s = 4 s per image, minus 34 ms of coding → 4 tiles.
    assert gateway.value == pytest.approx(4 / (4.0 - 0.034) / 1.0)
    assert gateway.met and gateway.status == "met" and gateway.why == []
    torch = targets["gateway_vs_pytorch"]
    assert torch.value == pytest.approx(0.25 / 0.1)
    assert torch.met and torch.name.endswith("(c=8)")


def test_a_missed_target_says_by_how_much_and_where_the_time_goes() -> None:
    results = fake_results()
    targets = evaluate(results)
    markdown = render_markdown(results, targets, [])
    assert "| Triton / ONNX Runtime | 0.50 | ≥ 0.90 | missed by 44% |" in markdown
    assert "**Triton / ONNX Runtime: missed by 44%; where the time goes**" in markdown
    assert "average batch 4.00, compute 900 ms per tile (ORT in-process: 500 ms)" in markdown
    assert "batch 1: 500 ms, batch 4: 900 ms" in markdown
    assert "Without dynamic batching Triton reaches 1.70 tiles/s" in markdown
    assert "**gateway / Triton (codec excluded):" not in markdown  # met: nothing to explain


def test_the_gateway_explanation_accounts_for_each_part_of_an_image() -> None:
    results = fake_results()
    slow = 0.05  # 20 s per image: far below Triton direct
    for p in results.points:
        if p.path == GATEWAY:
            p.throughputs = [slow]
    targets = {t.key: t for t in evaluate(results)}
    why = "\n".join(targets["gateway_vs_triton"].why)
    assert not targets["gateway_vs_triton"].met
    assert "takes 20,000 ms of wall time per image" in why
    assert "image coding (excluded from the ratio): 34.0 ms" in why
    assert "model compute (900 ms per tile, average batch 4.00): 3,600 ms" in why
    assert "the rest: HTTP" in why


def test_the_pytorch_explanation_bounds_what_the_gateway_could_reach() -> None:
    results = fake_results()
    for p in results.points:
        if p.path == PYTORCH and p.concurrency == 8:
            p.throughputs = [0.5]  # faster than the gateway's 0.25
        p.own_cores, p.other_cores = [2.0], [0.1]
    targets = {t.key: t for t in evaluate(results)}
    target = targets["gateway_vs_pytorch"]
    assert target.value == pytest.approx(0.5) and target.status == "missed by 75%"
    why = "\n".join(target.why)
    # 4 windows of 48² for a 72² image: 4 · 2304 / 5184 = 1.78× the pixels.
    assert "do 1.78× the pixels" in why
    assert "kept 2.0 (gateway) and 2.0 (PyTorch) cores busy out of 2" in why
    # Fastest repeats at c=1: PyTorch 0.22 images/s less 32 ms of coding, over 72² pixels;
    # ORT 2.2 tiles/s (faster than the 500 ms batch-1 probe) per 48² tile.
    kernel = (1000 / 0.22 - 32.0) / 72**2 / (1000 / 2.2 / 48**2)
    assert f"ONNX Runtime is {kernel:.2f}× as fast as PyTorch" in why
    assert f"at most about {kernel / (4 * 48**2 / 72**2):.2f}× PyTorch's images" in why


def test_ratios_from_the_fastest_repeats_sit_next_to_the_medians() -> None:
    results = fake_results()
    for p in results.points:
        if p.path == TRITON and p.concurrency == 8:
            p.throughputs = [0.5, 1.0, 1.9]  # one quiet repeat among disturbed ones
    target = next(t for t in evaluate(results) if t.key == "triton_vs_ort")
    assert target.value == pytest.approx(1.0 / 2.0)  # medians: 1.0 vs ORT's 2.0
    assert target.fastest == pytest.approx(1.9 / 2.2)  # fastest repeats: 1.9 vs 2.2
    markdown = render_markdown(results, [target], [])
    assert "| Triton / ONNX Runtime | 0.50 | ≥ 0.90 | missed by 44% | 0.86 |" in markdown


def test_saved_results_render_the_same_report() -> None:
    results = fake_results()
    reloaded = Results.from_dict(json.loads(json.dumps(results.as_dict())))
    assert reloaded == results
    assert render_markdown(reloaded, evaluate(reloaded), []) == render_markdown(
        results, evaluate(results), []
    )


def test_unmeasured_ratios_are_reported_as_such() -> None:
    results = fake_results()
    results.points = [p for p in results.points if p.path != PYTORCH]
    targets = {t.key: t for t in evaluate(results)}
    assert targets["gateway_vs_pytorch"].value is None
    assert targets["gateway_vs_pytorch"].status == "not measured"
    assert "pytorch@1 (not measured)" in results.missing_numbers()


def test_missing_numbers_names_each_nan() -> None:
    results = fake_results()
    assert results.missing_numbers() == []
    results.points[0].latency = LatencySummary(0, math.nan, math.nan, math.nan, math.nan)
    missing = results.missing_numbers()
    assert "ort@1.p50_ms" in missing and "ort@1.p99_ms" in missing


def test_report_files_are_written(tmp_path: Path) -> None:
    markdown, targets = write_report(fake_results(), tmp_path, "2026-01-02-box")
    assert markdown == tmp_path / "2026-01-02-box.md"
    text = markdown.read_text()
    for name in ("2026-01-02-box-throughput.png", "2026-01-02-box-latency.png"):
        assert (tmp_path / name).stat().st_size > 1000
        assert f"]({name})" in text
    assert "| CPU | AMD EPYC, 2 cores |" in text
    assert "| GPU | none |" in text
    assert len(targets) == 3
