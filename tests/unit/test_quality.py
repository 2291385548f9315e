"""PSNR, SSIM and the seed's `analysis` block computed from them."""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gateway.errors import BadRequest
from gateway.quality import (
    UNAVAILABLE,
    QualityReport,
    analysis_block,
    compare_images,
    psnr,
    ssim,
)

Image = npt.NDArray[np.uint8]


def noise(height: int, width: int, seed: int = 0) -> Image:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def blur(image: Image, sigma: float) -> Image:
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), dtype=np.uint8)


def degrade(image: Image, amount: int, seed: int = 1) -> Image:
    jitter = np.random.default_rng(seed).integers(-amount, amount + 1, image.shape)
    return np.clip(image.astype(int) + jitter, 0, 255).astype(np.uint8)


def report(psnr_db: float, ssim_value: float) -> QualityReport:
    return QualityReport(psnr_db, ssim_value, (10, 10), (10, 10), resized_original=False)


@pytest.mark.parametrize("amount", [3, 20, 80])
def test_ssim_matches_scikit_image_with_wang_et_al_settings(amount):
    original = blur(noise(64, 90), 2.0)
    restored = degrade(original, amount)
    expected = structural_similarity(  # type: ignore[no-untyped-call]
        original,
        restored,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=2,
    )
    assert ssim(original, restored) == pytest.approx(expected, abs=1e-9)


def test_psnr_matches_scikit_image_and_is_infinite_for_identical_images():
    original = noise(40, 50)
    restored = degrade(original, 10)
    expected = peak_signal_noise_ratio(  # type: ignore[no-untyped-call]
        original, restored, data_range=255
    )
    assert psnr(original, restored) == pytest.approx(expected, abs=1e-9)
    assert psnr(original, original) == math.inf
    assert ssim(original, original) == pytest.approx(1.0)


def test_a_smaller_original_is_resized_bicubically_to_the_restored_size():
    original = blur(noise(40, 60), 3.0)
    restored = np.asarray(cv2.resize(original, (120, 80), interpolation=cv2.INTER_CUBIC), np.uint8)
    result = compare_images(original, restored)
    assert result.resized_original
    assert result.original_size == (60, 40) and result.compared_size == (120, 80)
    assert result.psnr_db == math.inf and result.ssim == pytest.approx(1.0)


def test_same_sized_images_are_compared_as_they_are():
    original = noise(30, 30)
    result = compare_images(original, degrade(original, 5))
    assert not result.resized_original
    assert 30 < result.psnr_db < 50


def test_images_smaller_than_the_ssim_window_are_a_bad_request():
    with pytest.raises(BadRequest, match="at least 11"):
        compare_images(noise(10, 40), noise(10, 40))


def test_the_quality_score_maps_psnr_and_ssim_onto_zero_to_ten():
    assert report(math.inf, 1.0).quality_score == 10.0
    assert report(40.0, 1.0).quality_score == 10.0
    assert report(30.0, 0.75).quality_score == 5.0
    assert report(20.0, 0.5).quality_score == 0.0
    assert report(12.0, 0.1).quality_score == 0.0


def test_the_quality_score_falls_as_the_restoration_departs_from_the_original():
    original = blur(noise(64, 64), 2.0)
    scores = [compare_images(original, degrade(original, a)).quality_score for a in (2, 15, 60)]
    assert scores[0] > scores[1] > scores[2]


def test_the_analysis_block_reports_only_what_was_measured():
    block = analysis_block(report(36.0, 0.95))
    assert block == {
        "quality_score": 8.5,
        "identity_preservation": UNAVAILABLE,
        "texture_realism": UNAVAILABLE,
    }
    assert analysis_block(report(35.0, 0.95), identity_similarity=0.9)["identity_preservation"] == (
        "excellent"
    )
    assert analysis_block(report(35.0, 0.95), identity_similarity=0.3)["identity_preservation"] == (
        "poor"
    )


def test_metrics_are_json_safe_when_the_images_are_identical():
    assert report(math.inf, 1.0).metrics() == {"psnr": None, "ssim": 1.0}
    assert report(31.234567, 0.91234567).metrics() == {"psnr": 31.2346, "ssim": 0.912346}
