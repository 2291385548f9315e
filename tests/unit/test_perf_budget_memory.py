"""The user-level benchmark's machinery that needs no server: the time budget over its steps,
memory sampling with psutil, the leak check's loop, and the realistic inputs."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perf.budget import Budget, SkipStep, Step, StepRunner
from perf.leakcheck import EXPECTED, MIX, noise_threshold, run_leak_check
from perf.memory import MemorySampler, find_child, process_usage, tree_usage
from perf.photos import (
    built_group_photo,
    group_photo,
    not_an_image,
    square_photo,
    t1_from_wheel,
    upscale_uploads,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_steps_that_no_longer_fit_the_budget_are_skipped_and_said_so() -> None:
    clock = Clock()
    ran: list[str] = []
    heard: list[str] = []

    def work(name: str, seconds: float) -> Step:
        def run() -> None:
            ran.append(name)
            clock.now += seconds

        return Step(name, run, lambda: seconds)

    runner = StepRunner(Budget(100.0, clock=clock), on_step=heard.append, show_progress=False)
    runner.run(
        [
            work("a", 60.0),
            work("too long", 50.0),  # 40 s left
            work("b", 30.0),
            Step("required", lambda: ran.append("required"), lambda: 1e9, required=True),
        ]
    )
    assert ran == ["a", "b", "required"] and heard == ran
    (skipped,) = runner.skipped
    assert skipped.name == "too long"
    assert skipped.reason == "needs ~50 s, 40 s of the 100 s budget left"


def test_a_failed_step_is_recorded_and_the_run_goes_on() -> None:
    def boom() -> None:
        raise RuntimeError("gateway said 503\nwith a traceback")

    def cannot() -> None:
        raise SkipStep("its warm-up did not run")

    ran: list[str] = []
    runner = StepRunner(Budget(10.0), show_progress=False)
    runner.run(
        [
            Step("broken", boom, lambda: 0.0),
            Step("needs the warm-up", cannot, lambda: 0.0),
            Step("fine", lambda: ran.append("fine"), lambda: 0.0),
        ]
    )
    assert ran == ["fine"]
    assert [(f.name, f.reason) for f in runner.failed] == [
        ("broken", "RuntimeError: gateway said 503")
    ]
    assert [(s.name, s.reason) for s in runner.skipped] == [
        ("needs the warm-up", "its warm-up did not run")
    ]
    with pytest.raises(ValueError):
        Budget(0.0)


def test_a_required_step_that_fails_stops_the_run() -> None:
    def boom() -> None:
        raise RuntimeError("Triton did not start")

    runner = StepRunner(Budget(10.0), show_progress=False)
    with pytest.raises(RuntimeError, match="Triton did not start"):
        runner.run([Step("start", boom, lambda: 0.0, required=True)])


def test_a_process_tree_is_found_by_its_arguments_and_summed() -> None:
    marker = "--perf-memory-test-marker"
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; x = bytearray(50 << 20); time.sleep(30)", marker]
    )
    try:
        for _ in range(100):
            if process_usage(child.pid).rss_mb > 50:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert find_child(marker) == child.pid
        alone = process_usage(child.pid)
        assert alone.processes == 1 and alone.rss_mb > 50 and alone.pss_mb > 0
        mine = tree_usage(os.getpid())
        assert mine.processes >= 2 and mine.rss_mb > alone.rss_mb
    finally:
        child.kill()
        child.wait()
    assert find_child(marker) is None
    assert tree_usage(child.pid).processes == 0


def test_the_sampler_keeps_peaks_per_process_and_per_step() -> None:
    # A fresh child that allocates on cue: this test process's own RSS after hundreds of tests
    # may not grow at all (freed arenas are reused), so it cannot be the subject.
    grow = (
        "import sys, time; sys.stdin.readline(); block = bytearray(80 << 20); "
        "block[::4096] = b'x' * len(block[::4096]); print('grown', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", grow], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        sampler = MemorySampler({"me": lambda: child.pid, "gone": lambda: None}, solo={"me"})
        sampler.sample()
        sampler.step = "allocating"
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "grown"
        sampler.sample()
    finally:
        child.kill()
        child.wait()
    assert set(sampler.peaks) == {"me"}
    peak = sampler.peaks["me"]
    assert peak.step == "allocating" and peak.processes == 1
    by_step = sampler.step_peaks["me"]
    assert by_step["allocating"] >= by_step["start-up"] + 60
    assert len(sampler.timeline) == 2 and sampler.timeline[1][1] == "me"
    with sampler.running():
        pass  # starts and stops its thread cleanly
    assert sampler.samples >= 3


def test_the_leak_check_samples_rss_and_counts_unexpected_answers() -> None:
    sent: list[int] = []
    rss = iter([100.0 + 0.01 * n for n in range(100)])

    def send(index: int) -> int:
        sent.append(index)
        if index == 7:
            return 500
        return EXPECTED[index % len(MIX)]

    check = run_leak_check(
        send, 123, requests=40, warmup=4, rss=lambda pid: next(rss), settle_s=0.0
    )
    assert sent == list(range(44))
    assert check.failures == 1 and check.requests == 40 and check.warmup == 4
    assert check.before_mb == 100.0 and check.samples[0] == [0.0, 100.0]
    assert check.samples[-1][0] == 40.0 and len(check.samples) == 11
    assert check.threshold_mb == 10.0 and not check.leaked
    assert noise_threshold(400.0) == 20.0


def test_upscale_inputs_are_real_photos_as_jpeg() -> None:
    uploads = upscale_uploads(256)
    assert [u.name for u in uploads] == ["astronaut-256.jpg", "coffee-256.jpg", "chelsea-256.jpg"]
    for upload in uploads:
        image = Image.open(io.BytesIO(upload.data))
        assert image.format == "JPEG" and image.size == (256, 256) == (upload.width, upload.height)
    assert len({u.data for u in uploads}) == 3
    assert square_photo("chelsea", 512).shape == (512, 512, 3)  # 300×451 enlarged


def test_the_built_group_photo_has_six_distinct_faces(tmp_path: Path) -> None:
    image = built_group_photo()
    assert image.shape == (320, 480, 3) and image.dtype == np.uint8
    cells = [
        image[r * 160 : (r + 1) * 160, c * 160 : (c + 1) * 160] for r in (0, 1) for c in (0, 1, 2)
    ]
    assert len({cell.tobytes() for cell in cells}) == 6
    built = group_photo("built", tmp_path)
    assert built.upload.name == "group.jpg" and "built offline" in built.source
    assert not_an_image()[:3] != b"\xff\xd8\xff"


def test_t1_is_taken_from_the_wheel_only_with_its_pinned_hash(tmp_path: Path) -> None:
    wheel = tmp_path / "insightface-2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("insightface/data/images/t1.jpg", b"not the real photo")
    with pytest.raises(ValueError, match="pinned sha256"):
        t1_from_wheel(wheel)
    # auto falls back to the built photo, saying why; t1 alone fails.
    fallback = group_photo("auto", tmp_path)
    assert fallback.upload.name == "group.jpg" and "t1.jpg unavailable" in fallback.source
    with pytest.raises(ValueError):
        group_photo("t1", tmp_path)
