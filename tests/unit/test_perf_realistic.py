"""The user-level benchmark's arithmetic, report and options, from fake measurements (no
server, no model)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from perf.benchmark import build_parser, main
from perf.realistic_options import from_args, scenario_list
from perf.realistic_report import render_markdown, write_report
from perf.realistic_results import (
    DIRECT,
    FLOORS,
    GATEWAY,
    MEMORY,
    ORT_F32,
    OV_F32,
    RESTORE,
    SEEDS,
    TRITON_SERVED,
    UPSCALE,
    CaseCost,
    CaseRun,
    FloorRun,
    LeakCheck,
    MemoryPeak,
    RealisticResults,
    Setup,
)
from perf.realistic_stack import (
    DETECTOR,
    DETECTOR_NETS,
    exported_models,
    missing_models,
    served_models,
)
from perf.realistic_targets import evaluate
from perf.report import Target
from perf.results import Point, StageTimes
from perf.servers import COMMITTED_REPOSITORY
from perf.stats import LatencySummary

SWEEP = "realesr_general_x4v3"
X4PLUS = "realesrgan_x4plus"
GFPGAN = "gfpgan_v1_4"
GROUP_SIDE = 1280


def point(path: str, level: int, images_per_s: float) -> Point:
    latency = 1000.0 * level / images_per_s
    return Point(
        path=path,
        concurrency=level,
        unit="images/s",
        throughputs=[images_per_s],
        latency=LatencySummary(level, latency, latency, latency * 1.1, latency * 1.2),
        requests_per_repeat=max(2, level),
        own_cores=[2.0],
        other_cores=[0.1],
    )


def stage(model: str, path: str, level: int, per_item: float, batch: float) -> StageTimes:
    return StageTimes(
        model=model,
        path=path,
        concurrency=level,
        requests=8,
        inferences=int(8 * batch),
        executions=8,
        request_ms=per_item * batch + 3.0,
        queue_ms=3.0,
        compute_input_ms=0.1,
        compute_infer_ms=per_item * batch,
        compute_output_ms=0.1,
        compute_per_inference_ms=per_item,
    )


# images/s by (side, path, concurrency)
UPSCALE_RATES = {
    (256, GATEWAY): {1: 0.6, 4: 0.65, 8: 0.64},
    (256, DIRECT): {1: 0.7, 8: 0.8},
    (256, SEEDS): {1: 0.5, 4: 0.5, 8: 0.4},
    (512, GATEWAY): {1: 0.16, 4: 0.17, 8: 0.17},
    (512, DIRECT): {1: 0.17, 8: 0.18},
    (512, SEEDS): {1: 0.09, 4: 0.1, 8: 0.08},
}


def fake_results() -> RealisticResults:
    runs = []
    for (side, path), rates in UPSCALE_RATES.items():
        for level, rate in rates.items():
            run = CaseRun(UPSCALE, SWEEP, side, point(path, level, rate))
            if path == SEEDS:
                run.notes = {"decode_ms": 2.0, "model_ms": 900.0 * (side / 256) ** 2}
            else:
                run.stages = [
                    stage(SWEEP, path, level, 400.0, 4.0),
                    stage(f"upscale_{SWEEP}", path, level, 410.0, 4.0),
                ]
            if path == GATEWAY:
                run.notes = {"queue_ms": 50.0, "processing_ms": 1500.0, "download_ms": 4.0}
            runs.append(run)
    gateway_restore = CaseRun(RESTORE, GFPGAN, GROUP_SIDE, point(GATEWAY, 1, 1 / 20.0))
    gateway_restore.notes = {"faces": 6, "processing_ms": 19000.0, "download_ms": 30.0}
    gateway_restore.stages = [
        stage(GFPGAN, GATEWAY, 1, 2600.0, 3.0),
        stage("face_detect_mtcnn", GATEWAY, 1, 500.0, 1.0),
    ]
    direct_restore = CaseRun(RESTORE, GFPGAN, GROUP_SIDE, point(DIRECT, 1, 1 / 19.0))
    direct_restore.notes = {"faces": 6, "pipeline_ms": 19000.0, "detect_ms": 500.0}
    seeds_restore = CaseRun(RESTORE, GFPGAN, GROUP_SIDE, point(SEEDS, 1, 1 / 70.0))
    seeds_restore.notes = {"faces": 6, "face_ms": 11000.0, "detect_ms": 900.0}
    runs += [gateway_restore, direct_restore, seeds_restore]
    floors = [
        FloorRun(X4PLUS, "148² tile", ORT_F32, 1, [5500.0, 5400.0, 5600.0], threads=2),
        FloorRun(X4PLUS, "148² tile", OV_F32, 1, [5900.0, 5800.0, 6000.0], threads=2),
        FloorRun(X4PLUS, "148² tile", TRITON_SERVED, 1, [5600.0], 5500.0, 2),
        FloorRun(X4PLUS, "148² tile", ORT_F32, 4, [21000.0], threads=2),
        FloorRun(X4PLUS, "148² tile", TRITON_SERVED, 4, [24000.0], 5900.0, 2),
        FloorRun(GFPGAN, "512² face", ORT_F32, 1, [3000.0], threads=2),
        FloorRun(GFPGAN, "512² face", OV_F32, 1, [2500.0], threads=2),
        FloorRun(GFPGAN, "512² face", TRITON_SERVED, 1, [2000.0], 1950.0, 2),  # 1.5×: met
    ]
    costs = [
        CaseCost(UPSCALE, SWEEP, 256, 20000, 256**2, 4, 4 * 148**2, 1.0, 20.0, 2, 5.0),
        CaseCost(UPSCALE, SWEEP, 512, 70000, 512**2, 16, 16 * 148**2, 3.0, 80.0, 2, 20.0),
        CaseCost(RESTORE, GFPGAN, GROUP_SIDE, 128824, 1280 * 886, 6, 6 * 512**2, 9, 60, 1, 80),
    ]
    return RealisticResults(
        started_at="2026-12-01T10:00:00+00:00",
        duration_s=1400.0,
        machine={"hostname": "vm", "cores": 2, "cpu_model": "AMD EPYC", "gpu": "none"},
        setup=Setup(
            repository="model_repository",
            tiny=False,
            scenarios=[UPSCALE, RESTORE, FLOORS, MEMORY],
            budget_s=1500.0,
            sizes=[256, 512],
            levels=[1, 4, 8],
            direct_levels=[1, 8],
            sweep_model=SWEEP,
            latency_model="",
            latency_side=256,
            requests={1: 2, 4: 4, 8: 8},
            restore_requests=2,
            restore_photo="insightface t1.jpg",
            restore_upscale=2,
            floor_runs=3,
            floor_batches=[1, 4],
            weights={X4PLUS: "package", GFPGAN: "synthetic"},
            threads={X4PLUS: 2, GFPGAN: 2},
            served_runtime={X4PLUS: "facet_ort", GFPGAN: "facet_openvino"},
            gateway_settings={"FACET_UPSCALE_MODEL": SWEEP},
            tile=128,
            tile_pad=10,
            pre_pad=10,
        ),
        runs=runs,
        costs=costs,
        floors=floors,
        memory=[MemoryPeak("triton", 3500.0, 2900.0, 9, "floors x", {"floors x": 3500.0})],
        leak=LeakCheck(1000, ["GET /health"], 100, 180.0, 183.5, 10.0, [[0, 180.0], [1000, 183.5]]),
        timeline=[[0.0, "triton", 100.0], [0.5, "triton", 200.0], [0.5, "gateway", 150.0]],
        skipped=[{"step": "floors gfpgan batch 4 openvino_f32", "reason": "needs ~60 s"}],
    )


def targets_by_key() -> dict[str, Target]:
    return {t.key: t for t in evaluate(fake_results())}


def test_served_models_are_judged_against_ort_at_batch_1() -> None:
    targets = targets_by_key()
    x4plus = targets[f"served_{X4PLUS}"]
    # Best served: batch 1, 5600 ms per tile; ORT batch 1: median 5500 ms.
    assert x4plus.value == pytest.approx(5500.0 / 5600.0)
    assert not x4plus.met and x4plus.status == "missed by 35%"
    assert any("facet_ort backend" in line for line in x4plus.why)
    assert any("OpenVINO FP32 in-process is 0.93× ORT" in line for line in x4plus.why)
    gfpgan = targets[f"served_{GFPGAN}"]
    assert gfpgan.value == pytest.approx(1.5) and gfpgan.met and gfpgan.why == []


def test_restore_and_upscale_are_judged_against_the_seeds() -> None:
    targets = targets_by_key()
    restore = targets[f"restore_vs_seeds_{GROUP_SIDE}"]
    assert restore.value == pytest.approx(70.0 / 20.0) and restore.met
    assert restore.name == "restore group photo (6 faces) vs seeds"
    upscale = targets["upscale_vs_seeds_512"]
    assert upscale.value == pytest.approx(0.17 / 0.08) and upscale.met
    assert upscale.name.endswith("(c=8)")
    small = targets["upscale_vs_seeds_256"]
    assert small.value == pytest.approx(0.64 / 0.4) and small.met


def test_a_missed_upscale_target_explains_tiling_and_kernel_speed() -> None:
    results = fake_results()
    seeds = results.run(UPSCALE, SWEEP, 256, SEEDS, 8)
    assert seeds is not None
    seeds.point.throughputs = [1.0]  # now far faster than the gateway
    target = next(t for t in evaluate(results) if t.key == "upscale_vs_seeds_256")
    assert target.status == "missed by 57%"
    why = "\n".join(target.why)
    assert "compute 1.34× the image's pixels (4 windows of 148² for a 256² photo)" in why
    # Served: 400 ms per 148² window; seeds: 900 ms per 256² image at c=1.
    kernel = (900.0 / 256**2) / (400.0 / 148**2)
    assert f"Per pixel the served model is {kernel:.2f}× PyTorch's" in why
    assert "waiting in the job queue 50.0 ms; the job itself 1,500 ms" in why


def test_gateway_overhead_is_a_ceiling_with_the_codec_taken_out() -> None:
    targets = targets_by_key()
    overhead = targets["overhead_upscale_512"]
    # c=8: gateway 1/0.17 s, direct 1/0.18 s; codec 2 × 3 + 80 ms.
    expected = (1000 / 0.17 - 86.0) / (1000 / 0.18) - 1
    assert overhead.at_most and overhead.comparator == "≤"
    assert overhead.value == pytest.approx(expected) and overhead.met
    small = targets["overhead_upscale_256"]
    assert small.value == pytest.approx((1000 / 0.64 - 22.0) / (1000 / 0.8) - 1)
    assert not small.met and small.status == "missed: 23% > 15%"
    assert any("runs 1 (default) job(s) at once" in line for line in small.why)
    restore = targets[f"overhead_restore_{GROUP_SIDE}"]
    assert restore.value == pytest.approx((20000 - 69.0) / 19000 - 1)


def test_an_unmeasured_target_says_so() -> None:
    results = fake_results()
    results.runs = [r for r in results.runs if r.path != SEEDS]
    results.floors = []
    targets = {t.key: t for t in evaluate(results)}
    assert targets[f"served_{X4PLUS}"].status == "not measured"
    assert targets["upscale_vs_seeds_256"].value is None
    assert targets[f"restore_vs_seeds_{GROUP_SIDE}"].status == "not measured"


def test_saved_results_come_back_equal_and_render_the_same() -> None:
    results = fake_results()
    reloaded = RealisticResults.from_dict(json.loads(json.dumps(results.as_dict())))
    assert reloaded == results
    assert render_markdown(reloaded, evaluate(reloaded), []) == render_markdown(
        results, evaluate(results), []
    )
    assert results.missing_numbers() == []


def test_the_report_has_every_section_the_issue_asks_for(tmp_path: Path) -> None:
    markdown, targets = write_report(fake_results(), tmp_path, "2026-12-01-vm-realistic")
    text = markdown.read_text()
    for heading in (
        "## Targets",
        "## Machine",
        "## Upscale: throughput and latency",
        "## Upscale: where a request's time goes",
        "## Restore: throughput and latency",
        "## Floors: the served models at their serving shape",
        "## Memory",
        "## Skipped and failed steps",
        "## Plots",
    ):
        assert heading in text, heading
    assert "| served x4plus / in-process ORT FP32 (148² tiles) | 0.98 | ≥ 1.50 |" in text
    assert "**Verdict: no leak: growth +3.5 MiB within the 10.0 MiB noise threshold.**" in text
    assert "- skipped: floors gfpgan batch 4 openvino_f32 (needs ~60 s)" in text
    assert "| triton | 3,500 | 2,900 | 9 |" in text
    for suffix in ("upscale-throughput", "upscale-latency", "floors", "memory"):
        png = tmp_path / f"2026-12-01-vm-realistic-{suffix}.png"
        assert png.stat().st_size > 1000 and f"]({png.name})" in text
    assert len(targets) == 8


def test_the_leak_verdict_compares_growth_with_the_threshold() -> None:
    quiet = LeakCheck(1000, [], 100, 180.0, 185.0, 10.0)
    assert not quiet.leaked and quiet.verdict.startswith("no leak: growth +5.0 MiB")
    leaky = LeakCheck(1000, [], 100, 180.0, 200.0, 10.0)
    assert leaky.leaked and "possible leak" in leaky.verdict


def test_scenarios_are_a_checked_comma_list_in_run_order() -> None:
    assert scenario_list("memory,upscale") == [UPSCALE, MEMORY]
    with pytest.raises(Exception, match="scenarios are a comma list"):
        scenario_list("upscale,gpu")


def test_full_options_take_their_own_defaults_and_the_shared_flags(tmp_path: Path) -> None:
    parser = build_parser()
    args = parser.parse_args(["--full", "--scenarios", "memory", "--leak-requests", "50"])
    options = from_args(args, tmp_path)
    assert options.scenarios == [MEMORY] and options.leak_requests == 50
    assert options.levels == [1, 4, 8] and options.sizes == [256, 512]
    assert options.budget_s == 25 * 60 and options.latency_model == X4PLUS
    assert [options.requests(c) for c in (1, 4, 8)] == [2, 4, 8]
    tiny = from_args(parser.parse_args(["--full", "--tiny", "--concurrency", "1,3"]), tmp_path)
    assert tiny.levels == [1, 3] and tiny.sizes == [64] and tiny.group_photo == "built"
    none = from_args(parser.parse_args(["--full", "--latency-model", "none"]), tmp_path)
    assert none.latency_model == ""


def test_quick_and_full_exclude_each_other() -> None:
    with pytest.raises(SystemExit):
        main(["--quick", "--full"])
    with pytest.raises(SystemExit):
        main(["--tiny"])


def test_triton_loads_what_the_scenarios_need() -> None:
    memory_only = served_models([MEMORY], SWEEP, X4PLUS)
    assert memory_only == ["image_to_tensor", "tensor_to_image", SWEEP, f"upscale_{SWEEP}"]
    everything = served_models([UPSCALE, RESTORE, FLOORS, MEMORY], SWEEP, X4PLUS)
    for name in (X4PLUS, f"upscale_{X4PLUS}", GFPGAN, "restore_gfpgan_v1_4", "mtcnn_onet"):
        assert name in everything
    assert len(everything) == len(set(everything))
    floats, detector = exported_models(everything)
    assert floats == [SWEEP, X4PLUS, GFPGAN] and detector == ["face_detect_mtcnn"]


def test_the_detector_counts_as_installed_once_the_export_copied_its_shared_module(
    tmp_path: Path,
) -> None:
    for name in (DETECTOR, *DETECTOR_NETS):
        (tmp_path / name / "1").mkdir(parents=True)
        shutil.copy(COMMITTED_REPOSITORY / name / "config.pbtxt", tmp_path / name)
    for name in DETECTOR_NETS:
        (tmp_path / name / "1" / "model.onnx").write_bytes(b"onnx")
    (tmp_path / DETECTOR / "1" / "model.py").write_text("# the BLS model\n")
    wanted = [DETECTOR, *DETECTOR_NETS]
    assert missing_models(wanted, tmp_path) == {DETECTOR}
    (tmp_path / DETECTOR / "1" / "detector_io.py").write_text("# copied by the export\n")
    assert missing_models(wanted, tmp_path) == set()
    assert missing_models(wanted, tmp_path / "absent") == set(wanted)
