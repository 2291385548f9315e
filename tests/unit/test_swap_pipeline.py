"""The face-swap pipeline with deterministic fake detector, embedder, latent, swapper and
restorer sessions.

The fakes do not make the choices the tests check: the detector returns given faces, the
embedder reads a face's colour as an identity, the latent maker is a fixed random emap and the
swapper inverts or paints its crops; alignment, selection, latent math, batching, masks and
paste-back are the pipeline's.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from gateway.errors import BadRequest, UpstreamError
from gateway.faces.align import (
    FFHQ_TEMPLATE_512,
    arcface_template,
    estimate_affine,
    invert_affine,
    transform_points,
)
from gateway.faces.pixel_boost import merge
from gateway.faces.swap_pipeline import (
    NoSourceFace,
    SourceIdentity,
    SwapOptions,
    SwapOutcome,
    box_mask,
    source_identity,
    swap_frames,
)
from gateway.faces.types import Face

Image = npt.NDArray[np.uint8]
T = TypeVar("T")

TEMPLATE_128 = arcface_template(128)
# Two orthonormal directions of identity space; a face's red channel sets its angle between them.
BASIS = np.linalg.qr(np.random.default_rng(1).normal(size=(512, 2)))[0].T
EMAP = np.random.default_rng(2).normal(size=(512, 512)) / math.sqrt(512)


def run(job: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(job)


def unit(vectors: npt.ArrayLike) -> npt.NDArray[np.float64]:
    array = np.asarray(vectors, dtype=np.float64)
    return array / np.linalg.norm(array, axis=-1, keepdims=True)


def identity_of(colour: Sequence[float]) -> npt.NDArray[np.float64]:
    """A raw embedding: direction from red (0 → BASIS[0], 255 → −BASIS[0]); length from green,
    as ArcFace's length follows image quality rather than identity."""
    angle = colour[0] / 255 * math.pi
    length = 1.0 + 3.0 * colour[1] / 255
    return length * (math.cos(angle) * BASIS[0] + math.sin(angle) * BASIS[1])


def face_at(x: float, y: float, scale: float, score: float = 0.99, angle: float = 0.0) -> Face:
    """A face whose ArcFace-128 points sit at (x, y) + scale·R(angle)·template; its box is the
    aligned 128² square's bounding box in the image."""
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    placement = np.array([[cos, -sin, x], [sin, cos, y]])
    landmarks = transform_points(TEMPLATE_128, placement)
    corners = transform_points([[0, 0], [128, 0], [0, 128], [128, 128]], placement)
    (x1, y1), (x2, y2) = corners.min(axis=0), corners.max(axis=0)
    return Face(box=(x1, y1, x2, y2), score=score, landmarks=landmarks.astype(np.float32))


def draw_face(image: Image, face: Face, colour: tuple[int, int, int]) -> None:
    """A disc of one colour around the nose, wide enough to fill the embedder's patch."""
    x, y = face.landmarks[2]
    cv2.circle(image, (round(x), round(y)), round(1.2 * face.eye_distance), colour, thickness=-1)


def noise(height: int, width: int, seed: int = 0) -> Image:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def frame_with(faces: Sequence[tuple[Face, tuple[int, int, int]]], seed: int = 0) -> Image:
    image = noise(200, 260, seed)
    for face, colour in faces:
        draw_face(image, face, colour)
    return image


class FakeDetector:
    """Returns the faces given for each frame (by object identity)."""

    def __init__(self, faces: dict[int, list[Face]]) -> None:
        self.faces = faces
        self.min_scores: list[float] = []

    async def detect(self, rgb: Image, *, min_score: float) -> list[Face]:
        self.min_scores.append(min_score)
        return list(self.faces.get(id(rgb), []))


class FakeEmbedder:
    """Reads the mean colour around the nose of each 112² ArcFace crop as an identity."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, ...]] = []

    async def embed(self, crops: Image) -> npt.NDArray[np.float32]:
        self.batches.append(crops.shape)
        colours = crops[:, 62:82, 46:66].reshape(len(crops), -1, 3).mean(axis=1)
        return np.stack([identity_of(colour) for colour in colours]).astype(np.float32)


class FakeLatentMaker:
    """The served `swap_latent`: normalise → @emap → normalise."""

    def __init__(self) -> None:
        self.inputs: list[npt.NDArray[np.float32]] = []

    async def latent(self, embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.inputs.append(embeddings.copy())
        return unit(unit(embeddings) @ EMAP).astype(np.float32)


class FakeSwapper:
    """Records every call; answers `model(targets)`."""

    def __init__(self, model: Callable[[Image], Image] = np.invert) -> None:
        self.model = model
        self.targets: list[Image] = []
        self.latents: list[npt.NDArray[np.float32]] = []

    async def swap(self, targets: Image, latents: npt.NDArray[np.float32]) -> Image:
        self.targets.append(targets.copy())
        self.latents.append(latents.copy())
        return self.model(targets)

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [batch.shape for batch in self.targets]


class FakeRestorer:
    def __init__(self, value: int = 255) -> None:
        self.value = value
        self.batches: list[Image] = []

    async def restore(self, faces: Image) -> Image:
        self.batches.append(faces.copy())
        return np.full_like(faces, self.value)


def paint(value: int) -> Callable[[Image], Image]:
    return lambda batch: np.full_like(batch, value)


@dataclass
class Sessions:
    faces: dict[int, list[Face]]
    embedder: FakeEmbedder = field(default_factory=FakeEmbedder)
    latent_maker: FakeLatentMaker = field(default_factory=FakeLatentMaker)
    swapper: FakeSwapper = field(default_factory=FakeSwapper)
    restorer: FakeRestorer | None = None

    def __post_init__(self) -> None:
        self.detector = FakeDetector(self.faces)


SOURCE_COLOUR = (60, 128, 0)
SOURCE = SourceIdentity(
    embedding=unit(identity_of(SOURCE_COLOUR)).astype(np.float32), faces=[], image_count=1
)
SOURCE_LATENT = unit(unit(SOURCE.embedding) @ EMAP)


def swap(
    frames: list[Image],
    sessions: Sessions,
    reference: npt.ArrayLike | None = None,
    **options: Any,
) -> list[SwapOutcome]:
    anchor = None if reference is None else np.asarray(reference, dtype=np.float32)
    return run(
        swap_frames(
            frames,
            SOURCE,
            sessions.detector,
            sessions.embedder,
            sessions.latent_maker,
            sessions.swapper,
            sessions.restorer,
            SwapOptions(**options),
            anchor,
        )
    )


def crop_polygon(shape: tuple[int, ...], faces: Sequence[Face], size: int) -> npt.NDArray[np.bool_]:
    """Where each face's aligned size² crop lands in the image, widened by two pixels: nothing
    a paste-back writes can lie outside this."""
    covered = np.zeros(shape[:2], dtype=np.uint8)
    for face in faces:
        inverse = invert_affine(estimate_affine(face.landmarks, arcface_template(size)))
        corners = transform_points([[0, 0], [size, 0], [size, size], [0, size]], inverse)
        cv2.fillConvexPoly(covered, np.rint(corners).astype(np.int32), (1,))
    return np.asarray(cv2.dilate(covered, np.ones((5, 5), np.uint8)) > 0)


def centroid(crop: Image, colour: tuple[int, int, int]) -> npt.NDArray[np.float64]:
    hits = np.argwhere(np.all(np.abs(crop.astype(int) - colour) < 60, axis=2))
    return np.asarray(hits.mean(axis=0)[::-1], dtype=np.float64)  # (row, col) → (x, y)


DOT_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255)]


@pytest.mark.parametrize("boost", [128, 256])
def test_a_target_face_is_aligned_onto_the_arcface_template_at_the_boosted_size(boost):
    frame = np.full((300, 320, 3), 30, dtype=np.uint8)
    face = face_at(70.0, 40.0, 1.1, angle=0.3)
    for (x, y), colour in zip(face.landmarks, DOT_COLOURS, strict=True):
        cv2.circle(frame, (round(x), round(y)), 3, colour, thickness=-1)
    sessions = Sessions({id(frame): [face]}, swapper=FakeSwapper(np.copy))
    swap([frame], sessions, pixel_boost=boost)
    crop = merge(sessions.swapper.targets[0], boost // 128)[0]
    assert crop.shape == (boost, boost, 3)
    for expected, colour in zip(arcface_template(boost), DOT_COLOURS, strict=True):
        assert np.abs(centroid(crop, colour) - expected).max() < 1.0 * boost / 128


def test_at_weight_one_half_every_face_gets_the_source_latent_and_nothing_is_embedded():
    faces = [face_at(10, 10, 0.6), face_at(130, 60, 0.5)]
    frame = frame_with([(faces[0], (10, 0, 0)), (faces[1], (200, 0, 0))])
    sessions = Sessions({id(frame): faces})
    swap([frame], sessions)
    assert sessions.embedder.batches == []
    assert len(sessions.latent_maker.inputs) == 1
    np.testing.assert_array_equal(sessions.latent_maker.inputs[0], SOURCE.embedding[None])
    np.testing.assert_allclose(sessions.swapper.latents[0], [SOURCE_LATENT] * 2, atol=1e-6)


@pytest.mark.parametrize("weight", [0.0, 0.2, 0.75, 1.0])
def test_the_weight_blends_each_target_identity_into_the_source_latent_after_the_emap(weight):
    first = [(face_at(10, 10, 0.7), (85, 40, 0)), (face_at(150, 70, 0.5), (170, 200, 0))]
    second = [(face_at(60, 30, 0.6), (30, 0, 0))]
    frames = [frame_with(first), frame_with(second, seed=1)]
    sessions = Sessions({id(frames[0]): [f for f, _ in first], id(frames[1]): [second[0][0]]})
    swap(frames, sessions, swapper_weight=weight)
    k = 0.35 - 0.7 * weight  # numpy.interp(w, [0, 1], [0.35, −0.35])
    colours = [first[0][1], first[1][1], second[0][1]]  # large → small, frame by frame
    expected = [SOURCE_LATENT * (1 - k) + unit(identity_of(c)) * k for c in colours]
    assert sessions.embedder.batches == [(3, 112, 112, 3)]
    np.testing.assert_allclose(sessions.swapper.latents[0], expected, atol=2e-5)


def test_the_source_identity_is_the_mean_of_the_unit_embeddings_of_each_images_largest_face():
    big, small, other = face_at(20, 20, 0.8), face_at(170, 100, 0.4), face_at(40, 30, 0.6)
    first = frame_with([(big, (40, 250, 0)), (small, (200, 0, 0))])
    second = frame_with([(other, (120, 10, 0))], seed=1)
    detector = FakeDetector({id(first): [small, big], id(second): [other]})
    embedder = FakeEmbedder()
    identity = run(source_identity([first, second], detector, embedder, min_score=0.5))
    raw = [identity_of((40, 250, 0)), identity_of((120, 10, 0))]
    expected = unit(unit(raw[0]) + unit(raw[1]))
    assert embedder.batches == [(2, 112, 112, 3)]
    assert identity.faces == [big, other] and identity.image_count == 2
    np.testing.assert_allclose(identity.embedding, expected, atol=1e-5)
    assert np.abs(unit(raw[0] + raw[1]) - expected).max() > 0.05  # a raw mean would differ


def test_no_face_in_any_source_image_is_a_bad_request():
    blank, unsure = noise(80, 80), noise(80, 80, seed=1)
    detector = FakeDetector({id(unsure): [face_at(5, 5, 0.5, score=0.3)]})
    embedder = FakeEmbedder()
    with pytest.raises(NoSourceFace) as raised:
        run(source_identity([blank, unsure], detector, embedder, min_score=0.5))
    assert isinstance(raised.value, BadRequest) and raised.value.status == 400
    assert raised.value.detail == "no face found in the source image(s)"
    assert embedder.batches == []


def test_all_faces_of_several_frames_reach_the_swapper_in_one_call():
    faces = [
        [face_at(5, 5, 0.6), face_at(140, 60, 0.6)],
        [],
        [face_at(i * 80, 40, 0.5) for i in range(3)],
    ]
    frames = [noise(200, 260, seed) for seed in range(3)]
    sessions = Sessions({id(frame): found for frame, found in zip(frames, faces, strict=True)})
    outcomes = swap(frames, sessions)
    assert sessions.swapper.shapes == [(5, 128, 128, 3)]
    assert [o.swapped_count for o in outcomes] == [2, 0, 3]
    assert [o.detected_count for o in outcomes] == [2, 0, 3]
    assert outcomes[1].image is frames[1]
    assert not np.array_equal(outcomes[0].image, frames[0])


@pytest.mark.parametrize(("boost", "factor"), [(256, 2), (512, 4)])
def test_pixel_boost_sends_b_squared_sub_crops_of_every_face_in_one_call(boost, factor):
    first, second = face_at(10, 10, 0.8), face_at(40, 20, 0.7)
    frames = [frame_with([(first, (20, 0, 0))]), frame_with([(second, (220, 0, 0))], seed=1)]
    sessions = Sessions({id(frames[0]): [first], id(frames[1]): [second]})
    swap(frames, sessions, pixel_boost=boost, swapper_weight=0.0)
    tiles = factor**2
    assert sessions.swapper.shapes == [(2 * tiles, 128, 128, 3)]
    latents = sessions.swapper.latents[0]
    assert (latents[:tiles] == latents[0]).all() and (latents[tiles:] == latents[tiles]).all()
    assert not np.allclose(latents[0], latents[tiles])


def test_pixels_outside_every_swapped_face_stay_byte_identical():
    faces = [
        face_at(20, 15, 0.6, angle=0.4),
        face_at(150, -30, 0.7),  # partly above the frame
        face_at(400, 400, 0.5),  # entirely outside it
    ]
    frame = noise(180, 240, seed=3)
    before = frame.copy()
    sessions = Sessions({id(frame): faces}, swapper=FakeSwapper(paint(77)))
    [outcome] = swap([frame], sessions)
    outside = ~crop_polygon(frame.shape, faces, 128)
    assert outside.mean() > 0.5
    assert np.array_equal(outcome.image[outside], frame[outside])
    assert np.array_equal(frame, before)  # the input frame is not written to
    x, y = np.rint(faces[0].landmarks[2]).astype(int)
    assert tuple(outcome.image[y, x]) == (77, 77, 77)  # the nose: inside the mask's plateau


def test_pasting_into_the_face_box_only_matches_a_whole_frame_paste():
    faces = [face_at(30, 20, 0.9, angle=-0.3), face_at(120, 90, 0.6, angle=0.2)]
    frame = noise(220, 260, seed=4)
    sessions = Sessions({id(frame): faces})
    [outcome] = swap([frame], sessions)
    height, width = frame.shape[:2]
    mask = box_mask(128)
    expected = frame.astype(np.float64)
    for face in faces:
        affine = estimate_affine(face.landmarks, TEMPLATE_128)
        crop = cv2.warpAffine(frame, affine, (128, 128), borderMode=cv2.BORDER_REPLICATE)
        inverse = invert_affine(affine)
        warped = cv2.warpAffine(
            np.invert(crop), inverse, (width, height), borderMode=cv2.BORDER_REPLICATE
        )
        alpha = cv2.warpAffine(mask, inverse, (width, height)).clip(0, 1)[..., None]
        mixed = alpha * warped + (1 - alpha) * expected
        expected = np.where(alpha > 0, np.rint(mixed), expected)
    difference = np.abs(outcome.image.astype(int) - expected.astype(int))
    # OpenCV rounds warp coordinates to 1/32 px from each warp's own origin; on noise a bin
    # flipped there moves a pixel by up to 255/32 levels.
    assert difference.mean() < 0.05 and difference.max() <= 8


def test_the_box_mask_is_facefusions_blurred_box_without_padding():
    mask = box_mask(128)  # blur 0.3: a = ⌊128·0.15⌋ = 19, 9 zero rows, σ = 4.75
    assert mask.shape == (128, 128) and mask.dtype == np.float32
    np.testing.assert_allclose(mask, mask.T, atol=1e-6)
    np.testing.assert_allclose(mask, mask[::-1, ::-1], atol=1e-6)
    profile = mask[:64, 64]
    assert (np.diff(profile) >= 0).all() and (mask[30:98, 30:98] > 0.999).all()
    assert mask[0, 64] < 0.1  # the blur reaches into the zero border, reflected at the edge
    assert 0.5 < mask[9, 64] < 0.6 and 0.4 < mask[8, 64] < 0.5  # the step between rows 8 and 9
    wide = box_mask(256)  # a = 38: 19 zero rows, σ = 9.5
    assert (wide[18, 128] + wide[19, 128]) / 2 == pytest.approx(0.5, abs=0.02)


def test_one_swaps_the_largest_face_even_when_another_is_further_left():
    small, large = face_at(0, 40, 0.4), face_at(120, 20, 0.8)
    frame = noise(200, 260)
    sessions = Sessions({id(frame): [small, large]})
    [outcome] = swap([frame], sessions, selector_mode="one")
    assert outcome.faces == [large] and sessions.swapper.shapes == [(1, 128, 128, 3)]


def test_many_swaps_faces_largest_first_up_to_max_faces_per_frame():
    faces = [face_at(0, 0, 0.4), face_at(60, 0, 0.7), face_at(0, 100, 0.5), face_at(150, 90, 0.45)]
    frame = noise(220, 260)
    sessions = Sessions({id(frame): faces})
    [outcome] = swap([frame], sessions, max_faces_per_frame=2)
    assert outcome.faces == [faces[1], faces[2]] and outcome.detected_count == 4


def test_low_scores_and_faces_with_eyes_under_five_pixels_apart_are_not_swapped():
    tiny, unsure, kept = face_at(5, 5, 0.1), face_at(60, 60, 0.6, score=0.4), face_at(150, 10, 0.5)
    frame = noise(200, 260)
    sessions = Sessions({id(frame): [tiny, unsure, kept]})
    [outcome] = swap([frame], sessions, min_score=0.5)
    assert tiny.eye_distance < 5
    assert outcome.faces == [kept] and sessions.detector.min_scores == [0.5]


@pytest.mark.parametrize(("distance", "swapped"), [(0.3, [[0, 1], []]), (0.4, [[0, 1], [0]])])
def test_reference_swaps_the_faces_within_the_reference_face_distance(distance, swapped):
    # Cosines to the reference 1, 0.5 and cos(105/255·π) ≈ 0.27: FaceFusion's distances
    # (1 − cos)/2 are 0, 0.25 and ≈ 0.36.
    first = [(face_at(10, 10, 0.7), (0, 90, 0)), (face_at(150, 70, 0.5), (85, 0, 0))]
    second = [(face_at(60, 30, 0.6), (105, 30, 0)), (face_at(170, 90, 0.4, score=0.2), (0, 0, 0))]
    frames = [frame_with(first), frame_with(second, seed=1)]
    per_frame = [[face for face, _ in first], [face for face, _ in second]]
    sessions = Sessions({id(frame): found for frame, found in zip(frames, per_frame, strict=True)})
    outcomes = swap(
        frames,
        sessions,
        selector_mode="reference",
        reference=5 * BASIS[0],
        reference_face_distance=distance,
    )
    assert [o.faces for o in outcomes] == [
        [found[i] for i in keep] for found, keep in zip(per_frame, swapped, strict=True)
    ]
    assert sessions.embedder.batches == [(3, 112, 112, 3)]  # every candidate, one call


def test_reference_mode_without_a_reference_is_rejected():
    frame = noise(50, 50)
    with pytest.raises(ValueError, match="reference embedding"):
        swap([frame], Sessions({}), selector_mode="reference")


def test_enhance_restores_every_swapped_face_of_every_frame_in_one_call_and_blends_it():
    faces = [[face_at(10, 10, 0.7)], [face_at(5, 5, 0.6), face_at(140, 80, 0.6)]]
    frames = [noise(200, 260, seed) for seed in range(2)]
    sessions = Sessions(
        {id(frame): found for frame, found in zip(frames, faces, strict=True)},
        swapper=FakeSwapper(paint(50)),
        restorer=FakeRestorer(255),
    )
    outcomes = swap(frames, sessions, enhance=True, enhancer_blend=0.8)
    assert sessions.restorer is not None
    [crops] = sessions.restorer.batches
    assert crops.shape == (3, 512, 512, 3)
    x, y = np.rint(FFHQ_TEMPLATE_512[2]).astype(int)
    assert (crops[:, y, x] == 50).all()  # the restorer saw the swapped faces
    for outcome, found in zip(outcomes, faces, strict=True):
        for face in found:
            nose_x, nose_y = np.rint(face.landmarks[2]).astype(int)
            assert tuple(outcome.image[nose_y, nose_x]) == (214,) * 3  # 0.8·255 + 0.2·50


@pytest.mark.parametrize("options", [{"enhance": False}, {"enhance": True, "enhancer_blend": 0.0}])
def test_without_enhancement_the_restorer_is_not_called(options):
    frame = noise(120, 120)
    sessions = Sessions({id(frame): [face_at(10, 10, 0.6)]}, restorer=FakeRestorer())
    swap([frame], sessions, **options)
    assert sessions.restorer is not None and sessions.restorer.batches == []


def test_enhance_without_a_restorer_is_rejected():
    with pytest.raises(ValueError, match="restorer"):
        swap([noise(50, 50)], Sessions({}), enhance=True)


def test_frames_without_faces_come_back_as_themselves_and_no_model_is_called():
    frames = [noise(40, 50), noise(30, 30, seed=1)]
    sessions = Sessions({})
    outcomes = swap(frames, sessions, swapper_weight=0.0)
    assert [o.image is f for o, f in zip(outcomes, frames, strict=True)] == [True, True]
    assert sessions.swapper.shapes == [] and sessions.embedder.batches == []
    assert sessions.latent_maker.inputs == []


def test_a_swapper_answering_the_wrong_shape_is_an_upstream_error():
    frame = noise(120, 120)
    sessions = Sessions(
        {id(frame): [face_at(10, 10, 0.6)]}, swapper=FakeSwapper(lambda t: t[:, :64])
    )
    with pytest.raises(UpstreamError, match="face swapper returned"):
        swap([frame], sessions)


@pytest.mark.parametrize(
    "options",
    [
        {"swapper_weight": 1.5},
        {"reference_face_distance": -0.1},
        {"enhancer_blend": 2.0},
        {"pixel_boost": 384},
        {"selector_mode": "all"},
        {"max_faces_per_frame": 0},
    ],
)
def test_out_of_range_options_are_rejected(options):
    with pytest.raises(ValueError):
        SwapOptions(**options)


def test_weight_one_half_is_exactly_no_target_shift():
    assert SwapOptions(swapper_weight=0.5).identity_shift == 0.0
    assert SwapOptions(swapper_weight=0.0).identity_shift == pytest.approx(0.35)
    assert SwapOptions(swapper_weight=1.0).identity_shift == pytest.approx(-0.35)
