"""Tiled upscaling sends fixed-shape batches and stitches them back without seams."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from gateway.errors import JobCancelled, UpstreamError
from gateway.pipelines.upscale import UpscaleOptions, upscale_image
from triton_core.tiling import cut_tiles, plan_tiles, pre_pad_image, stitch_tiles

Batch = npt.NDArray[np.uint8]
SIZES = [(1, 1), (7, 300), (128, 128), (129, 257), (300, 200)]


def nearest4(batch: Batch) -> Batch:
    return batch.repeat(4, axis=1).repeat(4, axis=2)


def zero_padded_blur_then_nearest4(batch: Batch) -> Batch:
    """3×3 box blur with zero padding, as the real networks' convolutions pad, then ×4."""
    height, width = batch.shape[1:3]
    padded = np.pad(batch.astype(np.uint16), ((0, 0), (1, 1), (1, 1), (0, 0)))
    total = sum(padded[:, dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3))
    return nearest4((np.asarray(total) // 9).astype(np.uint8))


def blur_then_nearest4(batch: Batch) -> Batch:
    """3×3 box blur with mirrored borders (as the tiler pads), then nearest ×4: radius 1."""
    height, width = batch.shape[1:3]
    padded = np.pad(batch.astype(np.uint16), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    total = sum(padded[:, dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3))
    return nearest4((np.asarray(total) // 9).astype(np.uint8))


class FakeSession:
    """A deterministic ×4 'model' that records what it was sent and how many calls overlapped."""

    scale = 4

    def __init__(
        self, model: Callable[[Batch], Batch] = nearest4, delay: float = 0.0, batch: int = 4
    ) -> None:
        self.model = model
        self.delay = delay
        self.batch = batch
        self.shapes: list[tuple[int, ...]] = []
        self.running = 0
        self.most_running = 0

    async def batch_limit(self) -> int:
        return self.batch

    async def upscale_tiles(self, tiles: Batch) -> Batch:
        self.shapes.append(tiles.shape)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await asyncio.sleep(self.delay)
            return self.model(tiles)
        finally:
            self.running -= 1


def random_image(height: int, width: int, seed: int = 0) -> Batch:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def untiled(model: Callable[[Batch], Batch], rgb: Batch, pre_pad: int) -> Batch:
    """The whole pre-padded image through the model at once, cropped as upstream does."""
    height, width = rgb.shape[:2]
    return model(pre_pad_image(rgb, pre_pad)[None])[0, : height * 4, : width * 4]


def run(
    rgb: Batch,
    session: FakeSession,
    options: UpscaleOptions,
    alpha: Batch | None = None,
    on_progress: Callable[[float], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> tuple[Batch, Batch | None]:
    job = upscale_image(
        rgb, alpha, session, options, on_progress=on_progress, is_cancelled=is_cancelled
    )
    return asyncio.run(job)


@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize(("tile", "pad"), [(16, 3), (32, 10), (128, 10)])
def test_tile_cores_cover_the_image_exactly_once(height: int, width: int, tile: int, pad: int):
    coverage = np.zeros((height, width), int)
    for plan in plan_tiles(height, width, tile, pad):
        assert 1 <= plan.height <= tile and 1 <= plan.width <= tile
        dy, dx = plan.core_offset
        size = tile + 2 * pad
        assert dy >= 0 and dy + plan.height <= size and dx >= 0 and dx + plan.width <= size
        coverage[plan.top : plan.top + plan.height, plan.left : plan.left + plan.width] += 1
    assert (coverage == 1).all()


@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize(("tile", "pad"), [(16, 3), (32, 10), (128, 10)])
def test_every_cut_tile_has_the_same_fixed_window_shape(
    height: int, width: int, tile: int, pad: int
):
    plans = plan_tiles(height, width, tile, pad)
    tiles = cut_tiles(pre_pad_image(random_image(height, width), 10), plans, tile, pad)
    assert tiles.shape == (len(plans), tile + 2 * pad, tile + 2 * pad, 3)
    assert tiles.dtype == np.uint8


def test_a_cut_tile_holds_the_image_at_its_core() -> None:
    rgb = random_image(50, 70)
    plans = plan_tiles(50, 70, 16, 4)
    tiles = cut_tiles(rgb, plans, 16, 4)
    for window, plan in zip(tiles, plans, strict=True):
        dy, dx = plan.core_offset
        core = window[dy : dy + plan.height, dx : dx + plan.width]
        expected = rgb[plan.top : plan.top + plan.height, plan.left : plan.left + plan.width]
        np.testing.assert_array_equal(core, expected)


def test_stitching_identity_tiles_rebuilds_the_image() -> None:
    rgb = random_image(45, 61)
    plans = plan_tiles(45, 61, 16, 5)
    np.testing.assert_array_equal(stitch_tiles(cut_tiles(rgb, plans, 16, 5), plans, 1, 45, 61), rgb)


@pytest.mark.parametrize("model", [nearest4, blur_then_nearest4], ids=["nearest", "blur"])
@pytest.mark.parametrize(("height", "width"), SIZES)
@pytest.mark.parametrize(
    ("tile", "pad", "pre_pad"), [(16, 3, 10), (32, 10, 0), (128, 10, 10), (64, 1, 5)]
)
def test_tiled_upscale_equals_the_untiled_result_exactly(
    model: Callable[[Batch], Batch], height: int, width: int, tile: int, pad: int, pre_pad: int
):
    rgb = random_image(height, width, seed=height * 1000 + width)
    options = UpscaleOptions(outscale=4, tile_size=tile, tile_pad=pad, pre_pad=pre_pad)
    tiled, alpha = run(rgb, FakeSession(model), options)
    assert alpha is None
    np.testing.assert_array_equal(tiled, untiled(model, rgb, pre_pad))


def test_progress_rises_after_every_batch_and_ends_at_one() -> None:
    reports: list[float] = []
    session = FakeSession(batch=3)
    options = UpscaleOptions(tile_size=16)
    run(random_image(100, 90), session, options, on_progress=reports.append)
    assert len(reports) == len(session.shapes)
    assert all(0 < r <= 1 for r in reports)
    assert reports == sorted(reports) and len(set(reports)) == len(reports)
    assert reports[-1] == 1.0


def test_cancellation_between_batches_raises_job_cancelled_and_stops_sending() -> None:
    session = FakeSession(batch=2)
    polls = 0

    def cancelled_after_three_polls() -> bool:
        nonlocal polls
        polls += 1
        return polls > 3

    options = UpscaleOptions(tile_size=16)
    with pytest.raises(JobCancelled):
        run(random_image(100, 100), session, options, is_cancelled=cancelled_after_three_polls)
    total_batches = -(-len(plan_tiles(100, 100, 16, 10)) // 2)
    assert 0 < len(session.shapes) < total_batches


def test_a_failing_batch_stops_the_job_and_leaves_no_batch_running() -> None:
    calls = 0

    def fail_on_second_batch(batch: Batch) -> Batch:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("triton went away")
        return nearest4(batch)

    session = FakeSession(fail_on_second_batch, delay=0.001, batch=2)
    with pytest.raises(RuntimeError, match="triton went away"):
        run(random_image(64, 64), session, UpscaleOptions(tile_size=16))
    assert session.running == 0


def test_a_model_answer_of_the_wrong_shape_is_an_upstream_error() -> None:
    session = FakeSession(lambda batch: batch.repeat(2, axis=1).repeat(2, axis=2))
    with pytest.raises(UpstreamError, match="expected"):
        run(random_image(20, 20), session, UpscaleOptions(tile_size=16))


def test_outscale_two_gives_half_the_native_size_by_area_averaging() -> None:
    rgb = random_image(37, 53)
    out, _ = run(rgb, FakeSession(), UpscaleOptions(outscale=2, tile_size=16))
    assert out.shape == (74, 106, 3)
    # Area-halving a nearest ×4 image averages equal pixels, which is nearest ×2.
    np.testing.assert_array_equal(out, rgb.repeat(2, axis=0).repeat(2, axis=1))


@pytest.mark.parametrize("outscale", [2, 4])
def test_alpha_comes_back_at_the_output_size(outscale: int) -> None:
    rgb = random_image(30, 41)
    alpha = np.full((30, 41), 200, np.uint8)
    options = UpscaleOptions(outscale=outscale, tile_size=16)
    out, out_alpha = run(rgb, FakeSession(), options, alpha=alpha)
    assert out_alpha is not None
    assert out_alpha.shape == out.shape[:2] == (30 * outscale, 41 * outscale)
    assert (out_alpha == 200).all()


def test_batches_never_exceed_the_sessions_batch_limit_and_all_tiles_share_one_shape() -> None:
    session = FakeSession(batch=4)
    options = UpscaleOptions(tile_size=32, tile_pad=10)
    run(random_image(129, 257), session, options)
    assert sum(shape[0] for shape in session.shapes) == len(plan_tiles(129, 257, 32, 10))
    assert all(1 <= shape[0] <= 4 for shape in session.shapes)
    assert {shape[1:] for shape in session.shapes} == {(52, 52, 3)}


def test_at_most_two_batches_are_in_flight_at_once() -> None:
    session = FakeSession(delay=0.002, batch=2)
    run(random_image(100, 100), session, UpscaleOptions(tile_size=16))
    assert session.most_running == 2


@pytest.mark.parametrize(("height", "width"), [(70, 90), (129, 257), (300, 200)])
@pytest.mark.parametrize(("tile", "pad", "pre_pad"), [(16, 3, 10), (32, 10, 0), (64, 1, 5)])
def test_a_zero_padding_model_tiles_exactly_where_the_image_holds_a_window(
    height: int, width: int, tile: int, pad: int, pre_pad: int
) -> None:
    """Windows move inwards at the edges instead of being reflect-padded, so a network's own
    zero padding meets the same border tiled as untiled."""
    rgb = random_image(height, width, seed=height + width)
    options = UpscaleOptions(outscale=4, tile_size=tile, tile_pad=pad, pre_pad=pre_pad)
    tiled, _ = run(rgb, FakeSession(zero_padded_blur_then_nearest4), options)
    np.testing.assert_array_equal(tiled, untiled(zero_padded_blur_then_nearest4, rgb, pre_pad))


def test_an_image_smaller_than_one_window_differs_only_near_its_edges() -> None:
    """Where no window fits, the tiler must pad (by reflection) where the network zero-pads:
    the results then differ within the receptive field (here 1 px, 4 px out) of the edges."""
    rgb = random_image(20, 30, seed=7)
    options = UpscaleOptions(outscale=4, tile_size=32, tile_pad=10, pre_pad=0)
    tiled, _ = run(rgb, FakeSession(zero_padded_blur_then_nearest4), options)
    reference = untiled(zero_padded_blur_then_nearest4, rgb, 0)
    differs = np.any(tiled != reference, axis=2)
    assert differs.any()
    np.testing.assert_array_equal(differs[4:-4, 4:-4], False)


def test_options_refuse_an_outscale_other_than_two_or_four() -> None:
    with pytest.raises(ValueError, match="outscale"):
        UpscaleOptions(outscale=3)


def test_async_progress_and_cancel_callbacks_are_awaited() -> None:
    reports: list[float] = []
    checks = 0

    async def record(fraction: float) -> None:
        reports.append(fraction)

    async def never_cancelled() -> bool:
        nonlocal checks
        checks += 1
        return False

    session = FakeSession(batch=2)
    run(
        random_image(64, 64),
        session,
        UpscaleOptions(tile_size=16),
        on_progress=record,  # type: ignore[arg-type]
        is_cancelled=never_cancelled,  # type: ignore[arg-type]
    )
    assert reports[-1] == 1.0 and len(reports) == len(session.shapes) and checks > 0
