"""The planner's pure parts: degradation levels and their margins, the reason, backend, weight
and background chosen, the confidence, and the blur and noise estimates they are read from."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from clients.gfpp.core.rules import (
    BLUR_HEAVY,
    BLUR_SHARP,
    NOISE_HEAVY,
    NOISE_LOW,
    PlanInputs,
    decide,
    degradation,
)
from clients.gfpp.probe.quality import (
    FACE_PROBE_SIZE,
    face_blur_variance,
    laplacian_variance,
    noise_sigma,
    probe_quality,
    to_grey,
)
from export.samples import astronaut

SERVED = {"gfpgan": True, "codeformer": False, "restoreformerpp": False, "ensemble": False}
FACE_BOX = (170.0, 60.0, 270.0, 180.0)  # the astronaut's face in the 512² photo


def inputs(**changes: object) -> PlanInputs:
    base = PlanInputs(
        requested_backend="gfpgan",
        weight=None,
        params={"version": "1.4", "upscale": 2},
        background="realesrgan",
        available=SERVED,
        background_served=True,
        face_count=1,
        restorable=1,
        blur=400.0,
        blur_measured_on="faces",
        noise=1.5,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("blur", "noise", "level"),
    [
        (BLUR_SHARP, NOISE_LOW - 0.01, "few_artifacts"),
        (BLUR_SHARP - 0.01, 1.0, "moderate_degradation"),
        (400.0, NOISE_LOW, "moderate_degradation"),
        (BLUR_HEAVY, 1.0, "moderate_degradation"),
        (BLUR_HEAVY - 0.01, 1.0, "heavy_degradation"),
        (400.0, NOISE_HEAVY, "heavy_degradation"),
        (0.0, 0.0, "heavy_degradation"),
    ],
)
def test_degradation_levels_change_exactly_at_their_thresholds(
    blur: float, noise: float, level: str
) -> None:
    found, margin = degradation(blur, noise)
    assert found == level and margin >= 0


def test_the_margin_grows_with_the_distance_from_the_nearest_threshold() -> None:
    assert degradation(2 * BLUR_SHARP, 1.0)[1] == pytest.approx(1.0)  # one octave sharper
    assert degradation(BLUR_HEAVY / 4, 1.0)[1] == pytest.approx(2.0)
    assert degradation(BLUR_SHARP, 1.0)[1] == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("blur", "noise", "reason", "weight"),
    [
        (400.0, 1.0, "few_artifacts", 0.5),
        (60.0, 1.0, "moderate_degradation", 0.6),
        (400.0, 20.0, "heavy_degradation", 0.8),
    ],
)
def test_the_weight_follows_the_degradation_unless_the_caller_gives_one(
    blur: float, noise: float, reason: str, weight: float
) -> None:
    decision = decide(inputs(blur=blur, noise=noise))
    assert decision.reason == reason and decision.params["weight"] == weight
    assert decision.params["version"] == "1.4" and decision.backend == "gfpgan"
    assert decide(inputs(blur=blur, noise=noise, weight=0.3)).params["weight"] == 0.3
    assert decide(inputs(weight=1.7)).params["weight"] == 1.0


def test_faces_not_found_or_too_small_are_the_reason_and_lower_the_confidence() -> None:
    found = decide(inputs())
    none = decide(inputs(face_count=0, restorable=0))
    tiny = decide(inputs(face_count=2, restorable=0))
    failed = decide(inputs(face_count=None, restorable=None))
    assert (none.reason, tiny.reason) == ("no_faces", "faces_too_small")
    assert failed.reason == "few_artifacts"  # measured on the image alone
    assert found.confidence > none.confidence == tiny.confidence > failed.confidence
    assert none.detail["decision_inputs"]["face_count"] == 0


def test_an_unserved_backend_falls_back_to_gfpgan_and_says_why() -> None:
    heavy = decide(inputs(requested_backend="codeformer", blur=5.0))
    assert heavy.backend == "gfpgan" and "codeformer" in heavy.detail["backend_rule"]
    assert heavy.confidence < decide(inputs(blur=5.0)).confidence
    alias = decide(inputs(requested_backend="restoreformer"))
    assert (
        alias.backend == "gfpgan"
        and "restoreformerpp is not served" in (alias.detail["backend_rule"])
    )


def test_a_server_without_gfpgan_gives_the_lowest_confidence() -> None:
    decision = decide(inputs(available={**SERVED, "gfpgan": False}))
    assert decision.reason == "no_restorer_served" and decision.confidence == 0.05


@pytest.mark.parametrize(
    ("asked", "served", "chosen"),
    [
        ("realesrgan", True, "realesrgan"),
        ("RealESRGAN", True, "realesrgan"),
        ("realesrgan", False, None),
        (None, True, None),
        ("none", True, None),
        ("swinir", True, None),
    ],
)
def test_the_background_upsampler_is_realesrgan_only_when_asked_and_served(
    asked: str | None, served: bool, chosen: str | None
) -> None:
    decision = decide(inputs(background=asked, background_served=served))
    assert decision.postproc == {"background": chosen}
    assert decision.detail["background_rule"]


def test_decisions_are_deterministic_and_explain_their_inputs() -> None:
    first, second = decide(inputs(blur=77.7, noise=6.1)), decide(inputs(blur=77.7, noise=6.1))
    assert first == second
    assert set(first.detail["routing_rules"]) >= {
        "few_artifacts",
        "moderate_degradation",
        "heavy_degradation",
    }
    assert first.detail["decision_inputs"]["noise_sigma"] == 6.1
    assert 0.05 <= first.confidence <= 0.95


# The measures -----------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0, 20.0])
def test_the_noise_estimate_recovers_gaussian_noise_on_a_flat_image(sigma: float) -> None:
    rng = np.random.default_rng(7)
    flat = np.full((200, 200, 3), 128.0) + rng.normal(0, sigma, (200, 200, 3))
    image = np.clip(np.rint(flat), 0, 255).astype(np.uint8)
    assert noise_sigma(image) == pytest.approx(sigma, rel=0.08)


def test_the_noise_estimate_is_low_on_a_clean_photo_and_rises_with_added_noise() -> None:
    photo = astronaut()
    rng = np.random.default_rng(3)
    noisy = np.clip(photo + rng.normal(0, 10, photo.shape), 0, 255).astype(np.uint8)
    assert noise_sigma(photo) < 2.5 < 8.0 < noise_sigma(noisy) < 11.0
    assert noise_sigma(photo[:2, :2]) == 0.0


def test_blur_lowers_the_laplacian_variance_of_the_face() -> None:
    photo = astronaut()
    sharp = face_blur_variance(to_grey(photo), FACE_BOX)
    blurred_photo = np.asarray(cv2.GaussianBlur(photo, (0, 0), 2), np.uint8)
    blurred = face_blur_variance(to_grey(blurred_photo), FACE_BOX)
    assert sharp is not None and blurred is not None
    assert sharp > BLUR_SHARP > BLUR_HEAVY > blurred
    assert laplacian_variance(np.zeros((8, 8))) == 0.0


def test_a_face_box_off_the_image_or_too_thin_is_not_measured() -> None:
    grey = to_grey(astronaut())
    assert face_blur_variance(grey, (600.0, 600.0, 700.0, 700.0)) is None
    assert face_blur_variance(grey, (10.0, 10.0, 12.0, 100.0)) is None
    assert FACE_PROBE_SIZE == 128


def test_the_quality_block_has_the_seeds_scores_as_none_and_the_measures_rounded() -> None:
    quality = probe_quality(astronaut(), [FACE_BOX])
    assert quality["niqe"] is None and quality["brisque"] is None
    assert set(quality) == {
        "niqe",
        "brisque",
        "blur_laplacian_var",
        "face_blur_laplacian_var",
        "noise_sigma",
    }
    assert probe_quality(astronaut(), [])["face_blur_laplacian_var"] is None
