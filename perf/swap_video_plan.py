"""The face-swap video benchmark's arithmetic, free of servers: how long a clip the budget
affords, at what frame rate the memory clip can run, per-frame costs from measured parts, and
the slope of a memory timeline."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from perf.swap_video_clip import faces_in_frame, frame_count

# Frames are cut in thirds (1, 2, 3 faces), so a clip shortened to a multiple of three keeps
# two faces per frame on average.
THIRDS = 3


@dataclass(frozen=True)
class PathCosts:
    """Seconds one path spends per frame and per face (measured or guessed)."""

    per_frame_s: float  # decode, detection, encode
    per_face_s: float  # swap (+ latent, align, paste)

    def frame_s(self, faces_per_frame: float) -> float:
        return self.per_frame_s + faces_per_frame * self.per_face_s


@dataclass(frozen=True)
class ClipPlan:
    """The clip both paths process: what was asked for and what the budget allowed."""

    wanted_seconds: float
    fps: int
    frames: int
    seconds_left: float  # what the two paths could spend when the plan was made
    seconds_per_frame: float  # both paths together, estimated
    faces: int  # summed over the clip's frames

    @property
    def seconds(self) -> float:
        return self.frames / self.fps

    @property
    def wanted_frames(self) -> int:
        return frame_count(self.wanted_seconds, self.fps)

    @property
    def shortened(self) -> bool:
        return self.frames < self.wanted_frames

    @property
    def estimate_s(self) -> float:
        return self.frames * self.seconds_per_frame


def clip_faces(frames: int) -> int:
    return sum(faces_in_frame(index, frames) for index in range(frames))


def plan_clip(
    wanted_seconds: float, fps: int, seconds_left: float, seconds_per_frame: float
) -> ClipPlan:
    """The longest clip up to `wanted_seconds` whose frames both paths can process in
    `seconds_left` at `seconds_per_frame` (the two paths' costs added); shortened clips keep
    a multiple of three frames (equal thirds), and never fewer than three."""
    if fps < 1:
        raise ValueError(f"fps must be at least 1, got {fps}")
    wanted = frame_count(wanted_seconds, fps)
    frames = wanted
    if seconds_per_frame > 0 and math.isfinite(seconds_per_frame):
        affordable = math.floor(max(0.0, seconds_left) / seconds_per_frame)
        if affordable < wanted:
            frames = max(THIRDS, affordable - affordable % THIRDS)
    return ClipPlan(
        wanted_seconds=wanted_seconds,
        fps=fps,
        frames=frames,
        seconds_left=seconds_left,
        seconds_per_frame=seconds_per_frame,
        faces=clip_faces(frames),
    )


@dataclass(frozen=True)
class MemoryPlan:
    wanted_seconds: float
    wanted_fps: int
    seconds: float
    fps: int

    @property
    def frames(self) -> int:
        return frame_count(self.seconds, self.fps)

    @property
    def reduced(self) -> bool:
        return self.fps < self.wanted_fps or self.seconds < self.wanted_seconds


def plan_memory(
    wanted_seconds: float, wanted_fps: int, seconds_left: float, seconds_per_frame: float
) -> MemoryPlan:
    """The memory clip keeps its length (a minute of video is the point) and lowers its frame
    rate to what `seconds_left` affords; below 1 fps it is shortened instead."""
    if seconds_per_frame <= 0 or not math.isfinite(seconds_per_frame):
        return MemoryPlan(wanted_seconds, wanted_fps, wanted_seconds, wanted_fps)
    affordable = max(0.0, seconds_left) / seconds_per_frame
    fps = min(wanted_fps, math.floor(affordable / wanted_seconds))
    if fps >= 1:
        return MemoryPlan(wanted_seconds, wanted_fps, wanted_seconds, fps)
    seconds = float(max(THIRDS, math.floor(affordable)))
    return MemoryPlan(wanted_seconds, wanted_fps, min(seconds, wanted_seconds), 1)


def slope_per_minute(samples: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) samples, in MiB per minute; None for fewer than
    two distinct times."""
    if len(samples) < 2:
        return None
    times = [t for t, _ in samples]
    mean_t = sum(times) / len(times)
    mean_v = sum(v for _, v in samples) / len(samples)
    spread = sum((t - mean_t) ** 2 for t in times)
    if spread <= 0:
        return None
    covariance = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return 60.0 * covariance / spread


def later_half(samples: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The samples after the midpoint in time: the steady state, start-up allocations past."""
    if not samples:
        return []
    start, end = samples[0][0], samples[-1][0]
    middle = (start + end) / 2
    return [(t, v) for t, v in samples if t >= middle]


def settled_sample(
    samples: Sequence[tuple[float, float]], wall_s: float, share: float
) -> tuple[float, float]:
    """The first sample past `share` of the job's time: the upload received and the pipeline's
    buffers filled, so what grows after it grows with the clip (the last one if none is)."""
    if not samples:
        raise ValueError("no samples")
    return next((s for s in samples if s[0] >= share * wall_s), samples[-1])
