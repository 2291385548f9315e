"""The face-swap video benchmark's pure logic: the clip's layout, the budget → clip length and
memory frame rate, the memory slope and verdict, and its results' JSON round trip."""

from __future__ import annotations

import itertools
import json

import pytest

from perf.swap_video_clip import PAN_AMPLITUDE_PX, WINDOWS, faces_in_frame, pan_offset
from perf.swap_video_plan import (
    PathCosts,
    clip_faces,
    later_half,
    plan_clip,
    plan_memory,
    settled_sample,
    slope_per_minute,
)
from perf.swap_video_results import (
    BASELINE,
    FACET,
    BatchCost,
    MemoryRun,
    ModelDelta,
    PathRun,
    SwapVideoResults,
)


def test_clip_shows_one_two_three_faces_by_thirds() -> None:
    assert [faces_in_frame(i, 9) for i in range(9)] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert clip_faces(300) == 600  # two faces per frame on average
    with pytest.raises(ValueError):
        faces_in_frame(3, 3)


def test_pan_is_a_bounded_triangle_wave() -> None:
    offsets = [pan_offset(i) for i in range(200)]
    assert max(offsets) == PAN_AMPLITUDE_PX and min(offsets) == -PAN_AMPLITUDE_PX
    assert all(abs(a - b) <= 2 for a, b in itertools.pairwise(offsets))
    assert len(set(offsets)) > 10  # frames differ
    assert set(WINDOWS) == {1, 2, 3}


def test_plan_clip_keeps_the_whole_clip_when_it_fits() -> None:
    plan = plan_clip(10.0, 30, seconds_left=1000.0, seconds_per_frame=1.0)
    assert (plan.frames, plan.shortened, plan.seconds) == (300, False, 10.0)


def test_plan_clip_shortens_to_whole_thirds_of_what_the_budget_affords() -> None:
    plan = plan_clip(10.0, 30, seconds_left=500.0, seconds_per_frame=9.0)
    assert plan.frames == 54  # 55 affordable, cut to a multiple of three
    assert plan.shortened and plan.wanted_frames == 300
    assert plan.faces == 108 and plan.estimate_s <= 500.0
    assert plan_clip(10.0, 30, seconds_left=1.0, seconds_per_frame=9.0).frames == 3


def test_path_costs_add_faces_to_frames() -> None:
    assert PathCosts(per_frame_s=0.5, per_face_s=4.0).frame_s(2.0) == pytest.approx(8.5)


def test_plan_memory_lowers_the_frame_rate_then_the_length() -> None:
    full = plan_memory(60.0, 30, seconds_left=10_000.0, seconds_per_frame=0.1)
    assert (full.fps, full.seconds, full.reduced) == (30, 60.0, False)
    lowered = plan_memory(60.0, 30, seconds_left=300.0, seconds_per_frame=0.4)
    assert (lowered.fps, lowered.seconds, lowered.frames) == (12, 60.0, 720)
    short = plan_memory(60.0, 30, seconds_left=20.0, seconds_per_frame=0.5)
    assert (short.fps, short.seconds) == (1, 40.0)


def test_slope_and_later_half() -> None:
    rising = [(float(t), 100.0 + 0.5 * t) for t in range(0, 121, 10)]
    assert slope_per_minute(rising) == pytest.approx(30.0)
    assert slope_per_minute([(0.0, 1.0)]) is None
    assert slope_per_minute([(5.0, 1.0), (5.0, 2.0)]) is None
    assert [t for t, _ in later_half(rising)] == [60.0, 70.0, 80.0, 90.0, 100.0, 110.0, 120.0]
    assert settled_sample(rising, 120.0, 0.1) == (20.0, 110.0)


def memory(samples: list[list[float]], wall_s: float) -> MemoryRun:
    settled = settled_sample([(t, v) for t, v in samples], wall_s, 0.1)[1]
    later = slope_per_minute(later_half([(t, v) for t, v in samples]))
    return MemoryRun(
        tiny=True,
        seconds=60.0,
        fps=10,
        frames=600,
        faces=1200,
        wall_s=wall_s,
        interval_s=0.5,
        samples={"gateway": samples},
        peak_mb={"gateway": max(v for _, v in samples)},
        start_mb={"gateway": samples[0][1]},
        settled_mb={"gateway": settled},
        end_mb={"gateway": samples[-1][1]},
        slope_mb_per_min={"gateway": None},
        later_slope_mb_per_min={"gateway": later},
        threshold_mb={"gateway": 10.0},
        reason="test",
    )


def test_memory_verdict_ignores_the_working_set_and_catches_growth() -> None:
    # The working set fills in the first seconds, then stays: flat.
    filling = [[0.0, 100.0], [5.0, 180.0]] + [[float(t), 181.0] for t in range(20, 241, 10)]
    assert memory(filling, 240.0).flat("gateway")
    # 1 MiB every 10 s keeps growing: 12 MiB across the later two minutes.
    growing = [[float(t), 180.0 + t / 10] for t in range(0, 241, 10)]
    run = memory(growing, 240.0)
    assert not run.flat("gateway") and run.drift_mb("gateway") == pytest.approx(12.0)


def test_batch_cost_and_fps_ratio() -> None:
    cost = BatchCost(batch=4, calls_ms=[16_000.0, 15_000.0, 17_000.0], server_ms=[15_800.0])
    assert cost.ms_per_face == pytest.approx(4_000.0)
    assert cost.server_ms_per_face == pytest.approx(3_950.0)

    def run(path: str, wall_s: float) -> PathRun:
        return PathRun(path, 54, 110, 108, wall_s, {"swap": 1.0}, {"swap": "test"})

    results = SwapVideoResults("2026-12-01T00:00:00+00:00", 1.0, {}, {})
    assert results.fps_ratio is None
    results.runs = [run(FACET, 300.0), run(BASELINE, 450.0)]
    assert results.fps_ratio == pytest.approx(1.5)


def test_rounds_combine_and_the_ratio_takes_medians() -> None:
    def run(path: str, wall_s: float, round_: int) -> PathRun:
        delta = ModelDelta("inswapper_128", 2, 16, 2, 0.0, 8.0, 8.0, {8: [2.0, 8.0]})
        return PathRun(
            path,
            8,
            16,
            16,
            wall_s,
            {"swap": wall_s / 2},
            {"swap": "t"},
            triton=[delta],
            other_cores=1.0 if round_ == 1 else 0.0,
            round=round_,
        )

    results = SwapVideoResults("2026-12-01T00:00:00+00:00", 1.0, {}, {})
    results.runs = [run(FACET, 100.0, 1), run(BASELINE, 150.0, 1)]
    results.runs += [run(BASELINE, 120.0, 2), run(FACET, 60.0, 2)]
    # Medians of 8/100, 8/60 and of 8/150, 8/120.
    assert results.fps_ratio == pytest.approx((0.08 + 8 / 60) / (8 / 150 + 8 / 120))
    facet = results.run(FACET)
    assert facet is not None
    assert (facet.frames, facet.wall_s, facet.stages_s["swap"]) == (16, 160.0, 80.0)
    assert facet.other_cores == pytest.approx(100.0 / 160.0)
    swapper = facet.model("inswapper_128")
    assert swapper is not None and swapper.by_batch == {8: [4.0, 16.0]}
    assert swapper.average_batch == pytest.approx(8.0)


def test_results_survive_json() -> None:
    delta = ModelDelta("inswapper_128", 14, 108, 14, 0.1, 400.0, 400.0, {8: [13.0, 390.0]})
    facet = PathRun(FACET, 54, 110, 108, 300.0, {"swap": 1.0}, {"swap": "t"}, triton=[delta])
    results = SwapVideoResults(
        "2026-12-01T00:00:00+00:00",
        1.0,
        {"cores": 2},
        {"tiny": False},
        runs=[facet],
        batch_costs=[BatchCost(1, [4000.0])],
        memory=memory([[0.0, 1.0], [10.0, 1.0]], 10.0),
    )
    again = SwapVideoResults.from_dict(json.loads(json.dumps(results.as_dict())))
    assert again == results
    assert again.runs[0].model("inswapper_128") is not None
    assert again.runs[0].triton[0].average_batch == pytest.approx(108 / 14)
