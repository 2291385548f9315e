"""Output timestamps: kept exactly (variable frame rates included) without an output frame rate;
with one, the nearest source frame at each output tick, deterministically."""

from __future__ import annotations

from fractions import Fraction

import pytest

from gateway.video.timing import (
    Decision,
    Retimer,
    Stamp,
    as_rate,
    expected_output_frames,
    output_clock,
    retime,
)

MS = Fraction(1, 1000)
# A phone-like variable frame rate: gaps of 33, 50, 17 and 100 ms in 1 ms ticks.
VFR_PTS = [0, 33, 83, 100, 200, 233, 283, 300]


def kept(decisions: list[Decision]) -> list[tuple[int, list[int]]]:
    return [(d.index, [s.pts for s in d.stamps]) for d in decisions]


def test_every_frame_keeps_its_timestamp_on_a_variable_frame_rate() -> None:
    decisions = retime(VFR_PTS, MS)

    assert [d.index for d in decisions] == list(range(len(VFR_PTS)))
    assert [d.stamps[0].pts for d in decisions] == VFR_PTS
    assert [d.stamps[0].duration for d in decisions[:-1]] == [33, 50, 17, 100, 33, 50, 17]


def test_the_last_frame_lasts_its_own_duration_or_else_the_last_gap() -> None:
    assert retime([0, 40, 80], MS, durations=[40, 40, 25])[-1].stamps == (Stamp(80, 25),)
    assert retime([0, 40, 80], MS)[-1].stamps == (Stamp(80, 40),)


def test_missing_and_repeated_timestamps_are_moved_forward_to_keep_increasing() -> None:
    pts = [stamps[0] for _, stamps in kept(retime([0, 40, None, 80, 80, 70], MS))]

    assert pts == [0, 40, 80, 81, 82, 83]


def test_a_lower_rate_keeps_the_frame_nearest_to_each_tick() -> None:
    # 30 fps in a 1/15360 base (what FFmpeg's MP4 muxer uses), to 15 fps: every other frame.
    time_base = Fraction(1, 15360)
    pts = [512 * i for i in range(60)]
    decisions = retime(pts, time_base, Fraction(15))
    out_base, step = output_clock(Fraction(15))

    chosen = [d.index for d in decisions if d.stamps]
    stamps = [s for d in decisions for s in d.stamps]
    assert chosen == list(range(0, 60, 2))
    assert [float(s.pts * out_base) for s in stamps] == pytest.approx([k / 15 for k in range(30)])
    assert all(s.duration == step for s in stamps)


def test_a_tick_halfway_between_two_frames_takes_the_earlier_one() -> None:
    # 30 → 20 fps: the tick at 50 ms lies exactly between frames at 33.3 and 66.7 ms.
    time_base = Fraction(1, 30)
    decisions = retime(list(range(6)), time_base, Fraction(20))

    assert kept(decisions)[:3] == [(0, [0]), (1, [4500]), (2, [])]


def test_a_higher_rate_repeats_frames_by_the_same_rule() -> None:
    decisions = retime(list(range(30)), Fraction(1, 30), Fraction(60))

    assert all(len(d.stamps) == 2 for d in decisions)
    stamps = [s.pts for d in decisions for s in d.stamps]
    assert stamps == sorted(set(stamps))
    assert len(stamps) == 60


def test_resampling_a_variable_frame_rate_picks_frames_by_their_real_times() -> None:
    # Ticks every 100 ms; frames at 0, 33, 83, 100, 200, 233, 283, 300 ms (300 shows 50 ms).
    decisions = retime(VFR_PTS, MS, Fraction(10), durations=[None] * 7 + [50])
    out_base, _ = output_clock(Fraction(10))

    by_frame = {d.index: [float(s.pts * out_base) for s in d.stamps] for d in decisions}
    assert by_frame == {0: [0.0], 1: [], 2: [], 3: [0.1], 4: [0.2], 5: [], 6: [], 7: [0.3]}


def test_a_long_gap_repeats_the_nearest_frame_on_each_side() -> None:
    decisions = retime([0, 1000], MS, Fraction(4), durations=[None, 250])

    assert [len(d.stamps) for d in decisions] == [3, 2]  # 0, 250, 500 | 750, 1000


def test_streaming_gives_the_same_decisions_as_the_whole_timeline() -> None:
    retimer = Retimer(MS, Fraction(24))
    streamed = [d for p in VFR_PTS for d in retimer.push(p)] + retimer.finish()

    assert streamed == retime(VFR_PTS, MS, Fraction(24))


def test_each_frame_is_decided_once_and_in_order() -> None:
    retimer = Retimer(MS, Fraction(7))
    seen = []
    for p in VFR_PTS:
        seen += [d.index for d in retimer.push(p)]
        assert seen == list(range(len(seen)))
    seen += [d.index for d in retimer.finish()]

    assert seen == list(range(len(VFR_PTS)))


def test_the_expected_frame_count_matches_what_retiming_writes() -> None:
    time_base = Fraction(1, 15360)
    pts = [512 * i for i in range(60)]
    for fps in (Fraction(15), Fraction(24), Fraction(60), Fraction(30000, 1001)):
        written = sum(len(d.stamps) for d in retime(pts, time_base, fps, [512] * 60))
        assert expected_output_frames(60, time_base, 0, 60 * 512, fps) == written


def test_rates_are_read_exactly() -> None:
    assert as_rate(29.97) == Fraction(30000, 1001)
    assert as_rate(23.976) == Fraction(24000, 1001)
    assert as_rate(15) == 15
    assert as_rate(12.5) == Fraction(25, 2)
    assert as_rate(Fraction(30000, 1001)) == Fraction(30000, 1001)
    with pytest.raises(ValueError, match="positive"):
        as_rate(0)


def test_the_output_clock_has_whole_ticks_per_frame_near_90_khz() -> None:
    for fps in (Fraction(15), Fraction(24), Fraction(30000, 1001), Fraction(60)):
        time_base, step = output_clock(fps)
        assert step * time_base == 1 / fps
        assert 80_000 <= 1 / time_base <= 200_000


def test_a_coarser_output_clock_never_puts_two_frames_on_one_tick() -> None:
    # Frames 0.2 ms apart in a 90 kHz source, written to WebM's millisecond clock.
    decisions = retime_kept([0, 18, 36, 9000, 9018], Fraction(1, 90_000), MS)

    assert decisions == [0, 1, 2, 100, 101]


def retime_kept(pts: list[int], source: Fraction, clock: Fraction) -> list[int]:
    retimer = Retimer(source, keep_time_base=clock)
    decisions = [d for p in pts for d in retimer.push(p)] + retimer.finish()
    assert retimer.output_time_base == clock
    return [d.stamps[0].pts for d in decisions]


def test_a_coarser_output_clock_rounds_times_and_durations() -> None:
    retimer = Retimer(Fraction(1, 15360), keep_time_base=MS)
    decisions = retimer.push(0, 512) + retimer.push(512, 512) + retimer.finish()

    assert [d.stamps[0] for d in decisions] == [Stamp(0, 33), Stamp(33, 33)]
