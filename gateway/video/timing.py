"""Which decoded frames to write, and when: output timestamps from the source's.

Without an output frame rate every frame keeps its own timestamp (a variable frame rate stays
variable). With one, frames are picked on a regular clock: at each output tick, the source
frame on screen nearest to that instant, the earlier one on a tie. A lower rate so drops
frames, a higher rate repeats them, and the same input always gives the same choice, since all
arithmetic is exact (fractions, never floats). Decisions come one frame late: whether a frame
is nearest to a tick is known once the next frame's time is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

# The output clock for a set frame rate runs near 90 kHz (MPEG's system clock), fine enough
# that rounding the first frame's time onto it moves the video by less than 0.02 ms.
_CLOCK_HZ: Final = 90_000
_MAX_RATE_DENOMINATOR: Final = 1001  # NTSC rates (30000/1001) stay exact
_NTSC_SLACK: Final = Fraction(1, 200)  # 23.976 is 0.0002 from 24000/1001


@dataclass(frozen=True)
class Stamp:
    """One output frame's time, in the output time base."""

    pts: int
    duration: int


@dataclass(frozen=True)
class Decision:
    """What becomes of one source frame (counted from 0 in presentation order): written once per
    stamp, so no stamp drops it and several repeat it."""

    index: int
    stamps: tuple[Stamp, ...]


def as_rate(fps: float | Fraction) -> Fraction:
    """A frame rate as an exact fraction; 29.97, 23.976 and 59.94 are read as the NTSC rates
    (30000/1001, …) that people abbreviate so."""
    if fps <= 0:
        raise ValueError(f"a frame rate must be positive, got {fps}")
    rate = Fraction(fps).limit_denominator(_MAX_RATE_DENOMINATOR)
    ntsc = Fraction(round(fps * Fraction(1001, 1000)) * 1000, 1001)
    if rate.denominator != 1 and abs(ntsc - rate) < _NTSC_SLACK:
        return ntsc
    return rate


def output_clock(fps: Fraction) -> tuple[Fraction, int]:
    """(time base, ticks per frame) of a regular output at `fps`: whole ticks per frame."""
    per_frame = max(1, math.ceil(_CLOCK_HZ / fps.numerator))
    return Fraction(1, fps.numerator * per_frame), fps.denominator * per_frame


class Retimer:
    """Feed it every decoded frame's pts and duration (source time base), in presentation
    order, then call finish(); each call returns the decisions it could settle, in order, so
    every frame gets exactly one.

    A missing pts continues from the previous frame, and one not after the previous frame's is
    moved one tick past it: encoders and muxers refuse timestamps that do not increase.
    `keep_time_base` is the output's clock when frames keep their times (default: the
    source's); give the muxer's own when it is coarser (WebM counts milliseconds), so two
    frames never round onto one instant.
    """

    def __init__(
        self,
        time_base: Fraction,
        output_fps: Fraction | None = None,
        *,
        keep_time_base: Fraction | None = None,
    ) -> None:
        self.source_time_base = time_base
        self.output_fps = output_fps
        self._ticks_per_frame: int | None = None
        self.output_time_base = keep_time_base or time_base
        if output_fps is not None:
            self.output_time_base, self._ticks_per_frame = output_clock(output_fps)
        # Frames are tracked on the output's clock when they keep their times, on the
        # source's when ticks are picked (the exact source times decide which is nearest).
        self._unit = time_base if output_fps is not None else self.output_time_base
        self._count = 0
        self._held: tuple[int, int, int | None] | None = None  # index, pts, duration
        self._last_gap: int | None = None
        self._origin: int | None = None  # the first output tick, in output units
        self._next_tick = 0  # how many output ticks have been given out

    def push(self, pts: int | None, duration: int | None = None) -> list[Decision]:
        current = self._continue(self._in_units(pts))
        settled: list[Decision] = []
        if self._held is not None:
            index, held_pts, _ = self._held
            self._last_gap = current - held_pts
            settled.append(self._settle(index, held_pts, current, last=False))
        self._held = (self._count, current, self._in_units(duration))
        self._count += 1
        return settled

    def finish(self) -> list[Decision]:
        if self._held is None:
            return []
        index, held_pts, duration = self._held
        self._held = None
        shown_for = duration if duration is not None and duration > 0 else self._last_gap or 1
        return [self._settle(index, held_pts, held_pts + shown_for, last=True)]

    def _in_units(self, value: int | None) -> int | None:
        if value is None or self._unit == self.source_time_base:
            return value
        return round(value * self.source_time_base / self._unit)

    def _continue(self, pts: int | None) -> int:
        if self._held is None:
            return 0 if pts is None else pts
        previous = self._held[1]
        if pts is None:
            return previous + (self._last_gap or 1)
        return max(pts, previous + 1)

    def _settle(self, index: int, pts: int, following: int, *, last: bool) -> Decision:
        """Frame `index` shows from `pts`; `following` is the next frame's pts (or, for the
        last frame, when it stops showing)."""
        if self._ticks_per_frame is None:
            return Decision(index, (Stamp(pts, following - pts),))
        start = self._to_output(pts)
        if self._origin is None:
            self._origin = round(start)
        # Nearest frame: ticks up to the midpoint belong to this frame (a tie to the earlier);
        # the last frame keeps every tick until it stops showing.
        until = self._to_output(following) if last else (start + self._to_output(following)) / 2
        stamps: list[Stamp] = []
        while True:
            tick = self._origin + self._next_tick * self._ticks_per_frame
            if tick > until or (last and tick >= until):
                break
            stamps.append(Stamp(tick, self._ticks_per_frame))
            self._next_tick += 1
        return Decision(index, tuple(stamps))

    def _to_output(self, pts: int) -> Fraction:
        return pts * self.source_time_base / self.output_time_base


def retime(
    pts: Sequence[int | None],
    time_base: Fraction,
    output_fps: Fraction | None = None,
    durations: Sequence[int | None] | None = None,
) -> list[Decision]:
    """Every decision for a whole timeline at once (what Retimer gives frame by frame)."""
    retimer = Retimer(time_base, output_fps)
    shown = durations if durations is not None else [None] * len(pts)
    decisions = [d for p, s in zip(pts, shown, strict=True) for d in retimer.push(p, s)]
    return decisions + retimer.finish()


def expected_output_frames(
    frame_count: int,
    time_base: Fraction,
    start_pts: int,
    end_pts: int,
    output_fps: Fraction | None,
) -> int:
    """How many frames the output will have, from the probe's span (for progress reports)."""
    if output_fps is None:
        return frame_count
    output_time_base, ticks_per_frame = output_clock(output_fps)
    origin = round(start_pts * time_base / output_time_base)
    end = end_pts * time_base / output_time_base
    return max(0, math.ceil((end - origin) / ticks_per_frame))
