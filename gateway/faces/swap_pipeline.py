"""Face swapping of frames, FaceFusion's inswapper path: identity → select → align → swap →
(enhance) → paste back.

Facts read from FaceFusion 3.8 (`processors/modules/face_swapper/core.py`, `face_selector.py`,
`face_masker.py`, `face_helper.py`, `processors/pixel_boost.py`, `face_enhancer/core.py`,
`program.py` for the defaults):

- Source identity: the largest face of each source image, embedded by ArcFace on its 112
  template; several images are averaged (`average_face_identity`).
- Latent: inswapper's source input is the embedding's direction times the emap matrix (the
  `LatentMaker` session). `face_swapper_weight` w then blends in the *target* face's normalised
  embedding after the emap: k = interp(w, [0, 1], [0.35, −0.35]),
  latent = latent·(1 − k) + target·k, so w = 0.5 is the source alone and w = 1 pushes away
  from the target's identity.
- Selection: faces sorted large → small (the default `face_selector_order`); "one" is the first
  of them, the largest; "reference" keeps the faces whose distance (1 − cos)/2 to the reference
  is below `reference_face_distance` (default 0.3, i.e. cosine above 0.4).
- Target crops: the ArcFace template at 128·b with replicated borders; pixel boost b runs the
  128² model on b² polyphase sub-crops (`pixel_boost.py`).
- Paste-back: the static box mask (blur 0.3, no padding), warped back with the inverse affine
  into the face's clipped bounding box only.
- Enhancer: GFPGAN on the swapped frame's faces, pasted and mixed with the swapped frame by
  `face_enhancer_blend` (default 80 %).

Deliberate differences: every crop of every frame is cut from the unswapped frame and sent to
the models in one call (FaceFusion swaps faces one after another, each crop cut from the frame
with the earlier faces already swapped: only overlapping faces can tell); the enhancer crops use
facexlib's FFHQ alignment and soft mask, as the restoration pipeline does; blends are rounded,
not truncated, and only pixels whose mask is above zero are written, so everything outside every
face's mask stays byte-identical.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

import cv2
import numpy as np
import numpy.typing as npt

from gateway.errors import BadRequest, UpstreamError
from gateway.faces import pixel_boost
from gateway.faces.align import (
    ARCFACE_SIZE,
    FFHQ_SIZE,
    FFHQ_TEMPLATE_512,
    Affine,
    arcface_template,
    estimate_affine,
    warp_face,
)
from gateway.faces.paste import Mask, blend, locate_face, paste_back
from gateway.faces.restore_pipeline import DEFAULT_MAX_FACES, MIN_EYE_DISTANCE
from gateway.faces.types import (
    Face,
    FaceDetector,
    FaceEmbedder,
    FaceRestorer,
    FaceSwapper,
    LatentMaker,
)

Image = npt.NDArray[np.uint8]
Embedding = npt.NDArray[np.float32]
SelectorMode = Literal["many", "one", "reference"]
PixelBoost = Literal[128, 256, 512]

SWAPPER_SIZE: Final = 128  # inswapper_128's fixed input
EMBEDDING_SIZE: Final = 512  # ArcFace w600k_r50's output and inswapper's source input
DEFAULT_SWAPPER_WEIGHT: Final = 0.5  # --face-swapper-weight default: the source identity alone
# balance_source_embedding: weight 0 → k = 0.35 (towards the target), 1 → −0.35 (away from it).
WEIGHT_TO_SHIFT: Final = ((0.0, 1.0), (0.35, -0.35))
DEFAULT_REFERENCE_FACE_DISTANCE: Final = 0.3  # --reference-face-distance default
DEFAULT_ENHANCER_BLEND: Final = 0.8  # --face-enhancer-blend default, 80 (percent)
DEFAULT_MIN_SCORE: Final = 0.5  # --face-detector-score default
BOX_MASK_BLUR: Final = 0.3  # --face-mask-blur default, a share of half the crop size


class NoSourceFace(BadRequest):
    """None of the source images shows a usable face."""

    def __init__(self) -> None:
        super().__init__("no face found in the source image(s)")


@dataclass(frozen=True)
class SwapOptions:
    """What to swap and how, in FaceFusion's terms (its option names in the comments)."""

    swapper_weight: float = DEFAULT_SWAPPER_WEIGHT  # face_swapper_weight
    selector_mode: SelectorMode = "many"  # face_selector_mode
    reference_face_distance: float = DEFAULT_REFERENCE_FACE_DISTANCE  # reference_face_distance
    pixel_boost: PixelBoost = SWAPPER_SIZE  # face_swapper_pixel_boost, the aligned crop's side
    enhance: bool = False  # the face_enhancer processor (GFPGAN) after the swap
    enhancer_blend: float = DEFAULT_ENHANCER_BLEND  # face_enhancer_blend / 100
    min_score: float = DEFAULT_MIN_SCORE  # face_detector_score
    max_faces_per_frame: int = DEFAULT_MAX_FACES  # each face costs b² swapper inputs

    def __post_init__(self) -> None:
        unit_ranged = {
            "swapper_weight": self.swapper_weight,
            "reference_face_distance": self.reference_face_distance,
            "enhancer_blend": self.enhancer_blend,
            "min_score": self.min_score,
        }
        for name, value in unit_ranged.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        if self.selector_mode not in get_args(SelectorMode):
            raise ValueError(f"selector_mode must be one of {get_args(SelectorMode)}")
        if self.pixel_boost not in get_args(PixelBoost):
            raise ValueError(f"pixel_boost must be one of {get_args(PixelBoost)}")
        if self.max_faces_per_frame < 1:
            raise ValueError("max_faces_per_frame must be at least 1")

    @property
    def boost_factor(self) -> int:
        return self.pixel_boost // SWAPPER_SIZE

    @property
    def identity_shift(self) -> float:
        """FaceFusion's k: how much of the target's identity the latent takes (may be < 0)."""
        (low, high), (at_low, at_high) = WEIGHT_TO_SHIFT
        return float(np.interp(self.swapper_weight, [low, high], [at_low, at_high]))

    @property
    def needs_target_embeddings(self) -> bool:
        return self.selector_mode == "reference" or self.identity_shift != 0.0


@dataclass(frozen=True)
class SourceIdentity:
    """Who is swapped in: the unit-length mean direction of the source faces' embeddings."""

    embedding: Embedding  # 512 float32, L2 norm 1
    faces: list[Face]  # the face used from each source image that had one
    image_count: int


@dataclass(frozen=True)
class SwapOutcome:
    """One frame with its faces swapped, and what was done to it."""

    image: Image
    faces: list[Face]  # swapped and pasted, in paste order (large → small)
    detected_count: int  # all detections, before the score, size and selector filters

    @property
    def swapped_count(self) -> int:
        return len(self.faces)


async def source_identity(
    images: Sequence[Image],
    detector: FaceDetector,
    embedder: FaceEmbedder,
    *,
    min_score: float = DEFAULT_MIN_SCORE,
) -> SourceIdentity:
    """The identity of the largest face in each source image, averaged over the images.

    Each embedding is normalised before the mean: ArcFace's vector length follows image quality
    (sharpness, pose), not identity, so a raw mean would let one sharp photo outvote the others;
    unit vectors give every image an equal say in the direction, the only part the swapper
    uses. (FaceFusion averages the raw vectors for inswapper.) Raises NoSourceFace when no image
    has a face.
    """
    if not images:
        raise ValueError("at least one source image is needed")
    for image in images:
        check_image(image)
    detections = await asyncio.gather(
        *(detector.detect(image, min_score=min_score) for image in images)
    )
    picks = [
        (image, face)
        for image, found in zip(images, detections, strict=True)
        if (face := largest_face(found, min_score)) is not None
    ]
    if not picks:
        raise NoSourceFace()
    crops = await asyncio.to_thread(cut_recognition_crops, picks)
    embeddings = check_embeddings(await embedder.embed(crops), len(picks))
    return SourceIdentity(
        embedding=mean_direction(unit_rows(embeddings)),
        faces=[face for _, face in picks],
        image_count=len(images),
    )


def mean_direction(units: Embedding) -> Embedding:
    """The unit mean of unit rows; refused when they cancel out (opposite identities)."""
    mean = units.astype(np.float64).mean(axis=0)
    length = float(np.linalg.norm(mean))
    if length < 1e-3:
        raise BadRequest("the source faces are too unlike each other to average into one identity")
    return np.asarray(mean / length, dtype=np.float32)


async def swap_frames(
    frames: Sequence[Image],
    identity: SourceIdentity,
    detector: FaceDetector,
    embedder: FaceEmbedder,
    latent_maker: LatentMaker,
    swapper: FaceSwapper,
    restorer: FaceRestorer | None,
    options: SwapOptions,
    reference: Embedding | None = None,
) -> list[SwapOutcome]:
    """Swap `identity` into the selected faces of every frame (H×W×3 uint8 RGB each).

    All faces of all frames reach each model in one call. A frame without a selected face is
    returned as itself, not a copy. Raises ValueError for bad arguments and UpstreamError when a
    model answers with the wrong shape; the sessions' own errors propagate unchanged.
    """
    anchor = check_swap_arguments(frames, identity, restorer, options, reference)
    detections = await asyncio.gather(
        *(detector.detect(frame, min_score=options.min_score) for frame in frames)
    )
    chosen, targets = await choose_faces(frames, detections, embedder, options, anchor)
    flat = [(index, face) for index, faces in enumerate(chosen) for face in faces]
    if not flat:
        return [
            SwapOutcome(frame, [], len(found))
            for frame, found in zip(frames, detections, strict=True)
        ]
    latents = await make_latents(identity, targets, len(flat), latent_maker, options)
    crops, affines = await asyncio.to_thread(cut_swap_crops, frames, flat, options.pixel_boost)
    swapped = await swap_crops(crops, latents, swapper, options.boost_factor)
    images = await paste_swaps(frames, flat, swapped, affines)
    if options.enhance and options.enhancer_blend > 0.0 and restorer is not None:
        images = await enhance_faces(images, flat, restorer, options.enhancer_blend)
    return [
        SwapOutcome(image, faces, len(found))
        for image, faces, found in zip(images, chosen, detections, strict=True)
    ]


def check_swap_arguments(
    frames: Sequence[Image],
    identity: SourceIdentity,
    restorer: FaceRestorer | None,
    options: SwapOptions,
    reference: Embedding | None,
) -> Embedding | None:
    """Validate the call; returns the reference as a unit vector (None outside reference mode)."""
    for frame in frames:
        check_image(frame)
    if identity.embedding.shape != (EMBEDDING_SIZE,):
        raise ValueError(f"identity embedding must be {EMBEDDING_SIZE}-d")
    if options.enhance and restorer is None:
        raise ValueError("enhance needs a face restorer")
    if options.selector_mode != "reference":
        return None
    if reference is None:
        raise ValueError("selector_mode 'reference' needs a reference embedding")
    anchor = np.asarray(reference, dtype=np.float32).reshape(1, -1)
    if anchor.shape != (1, EMBEDDING_SIZE) or not np.isfinite(anchor).all():
        raise ValueError(f"the reference must be a finite {EMBEDDING_SIZE}-d embedding")
    if not np.linalg.norm(anchor) > 0:
        raise ValueError("the reference embedding is all zeros")
    unit: Embedding = unit_rows(anchor)[0]
    return unit


def check_image(image: Image) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"images must be H×W×3 uint8, got {image.shape} {image.dtype}")


def usable_faces(detected: Sequence[Face], min_score: float) -> list[Face]:
    """Faces sure and large enough to swap, largest first (FaceFusion's default order)."""
    kept = [
        face
        for face in detected
        if face.score >= min_score and face.eye_distance >= MIN_EYE_DISTANCE
    ]
    return sorted(kept, key=lambda face: face.area, reverse=True)


def largest_face(detected: Sequence[Face], min_score: float) -> Face | None:
    faces = usable_faces(detected, min_score)
    return faces[0] if faces else None


async def choose_faces(
    frames: Sequence[Image],
    detections: Sequence[Sequence[Face]],
    embedder: FaceEmbedder,
    options: SwapOptions,
    anchor: Embedding | None,
) -> tuple[list[list[Face]], Embedding | None]:
    """The faces to swap in each frame, and their unit embeddings when the latents need them.

    The embedder runs at most once, on every candidate of every frame in reference mode and on
    the chosen faces when the weight blends in the target identity.
    """
    candidates = [usable_faces(found, options.min_score) for found in detections]
    if anchor is not None:
        return await match_reference(frames, candidates, embedder, options, anchor)
    keep = 1 if options.selector_mode == "one" else options.max_faces_per_frame
    chosen = [faces[:keep] for faces in candidates]
    if not options.needs_target_embeddings or not any(chosen):
        return chosen, None
    return chosen, await embed_faces(frames, chosen, embedder)


async def match_reference(
    frames: Sequence[Image],
    candidates: list[list[Face]],
    embedder: FaceEmbedder,
    options: SwapOptions,
    anchor: Embedding,
) -> tuple[list[list[Face]], Embedding | None]:
    """Keep the faces nearer the reference than `reference_face_distance` (FaceFusion's
    compare_faces: (1 − cos)/2 < distance), the largest `max_faces_per_frame` of each frame."""
    if not any(candidates):
        return candidates, None
    embeddings = await embed_faces(frames, candidates, embedder)
    close = face_distances(embeddings, anchor) < options.reference_face_distance
    chosen: list[list[Face]] = []
    kept_rows: list[int] = []
    row = 0
    for faces in candidates:
        rows = [row + i for i in range(len(faces)) if close[row + i]]
        rows = rows[: options.max_faces_per_frame]
        chosen.append([faces[r - row] for r in rows])
        kept_rows.extend(rows)
        row += len(faces)
    return chosen, embeddings[kept_rows]


def face_distances(embeddings: Embedding, anchor: Embedding) -> npt.NDArray[np.float64]:
    """FaceFusion's face distance of unit rows to a unit anchor: 1 − cos mapped from [0, 2] to
    [0, 1]."""
    cosine = embeddings.astype(np.float64) @ anchor.astype(np.float64)
    return np.asarray(np.interp(1.0 - cosine, [0.0, 2.0], [0.0, 1.0]), dtype=np.float64)


async def embed_faces(
    frames: Sequence[Image], faces: Sequence[Sequence[Face]], embedder: FaceEmbedder
) -> Embedding:
    """Unit ArcFace embeddings of every face, frame by frame, from one embedder call."""
    picks = [(frames[index], face) for index, found in enumerate(faces) for face in found]
    crops = await asyncio.to_thread(cut_recognition_crops, picks)
    return unit_rows(check_embeddings(await embedder.embed(crops), len(picks)))


def cut_recognition_crops(picks: Sequence[tuple[Image, Face]]) -> Image:
    template = arcface_template(ARCFACE_SIZE)
    return np.stack(
        [
            warp_replicated(image, estimate_affine(face.landmarks, template), ARCFACE_SIZE)
            for image, face in picks
        ]
    )


def check_embeddings(embeddings: npt.NDArray[np.float32], count: int) -> Embedding:
    if embeddings.shape != (count, EMBEDDING_SIZE) or not np.isfinite(embeddings).all():
        raise UpstreamError(
            f"face embedder returned {embeddings.shape} {embeddings.dtype}; "
            f"expected finite ({count}, {EMBEDDING_SIZE})"
        )
    if not (np.linalg.norm(embeddings, axis=1) > 0).all():
        raise UpstreamError("face embedder returned an all-zero embedding")
    return np.asarray(embeddings, dtype=np.float32)


def unit_rows(vectors: npt.NDArray[np.float32]) -> Embedding:
    rows = vectors.astype(np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.asarray(rows / norms, dtype=np.float32)


async def make_latents(
    identity: SourceIdentity,
    targets: Embedding | None,
    count: int,
    latent_maker: LatentMaker,
    options: SwapOptions,
) -> Embedding:
    """One latent per face: the source latent, blended with each target's unit embedding by
    FaceFusion's k (after the emap, as its balance_source_embedding does)."""
    source = await latent_maker.latent(identity.embedding[None, :])
    if source.shape != (1, EMBEDDING_SIZE) or not np.isfinite(source).all():
        raise UpstreamError(
            f"latent model returned {source.shape}; expected finite (1, {EMBEDDING_SIZE})"
        )
    return blend_identity(source.astype(np.float32), targets, count, options.identity_shift)


def blend_identity(
    source: Embedding, targets: Embedding | None, count: int, shift: float
) -> Embedding:
    """source·(1 − k) + target·k per face; k = 0 (or no targets) repeats the source."""
    if shift == 0.0 or targets is None:
        return np.repeat(source, count, axis=0)
    k = np.float32(shift)
    return np.asarray(source * (1 - k) + targets * k, dtype=np.float32)


def cut_swap_crops(
    frames: Sequence[Image], flat: Sequence[tuple[int, Face]], size: int
) -> tuple[Image, list[Affine]]:
    template = arcface_template(size)
    affines = [estimate_affine(face.landmarks, template) for _, face in flat]
    crops = np.stack(
        [
            warp_replicated(frames[index], affine, size)
            for (index, _), affine in zip(flat, affines, strict=True)
        ]
    )
    return crops, affines


def warp_replicated(image: Image, affine: Affine, size: int) -> Image:
    """A size² crop with the image's edge pixels repeated past its borders (FaceFusion's
    BORDER_REPLICATE): a face at the frame edge continues instead of meeting a gray bar."""
    crop = cv2.warpAffine(
        image, affine, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(crop, dtype=np.uint8)


async def swap_crops(crops: Image, latents: Embedding, swapper: FaceSwapper, factor: int) -> Image:
    """Every (boosted) crop through the swapper in one call: b² sub-crops per face, each with
    its face's latent."""
    tiles = pixel_boost.split(crops, factor)
    swapped = await swapper.swap(tiles, np.repeat(latents, factor**2, axis=0))
    if swapped.shape != tiles.shape or swapped.dtype != np.uint8:
        raise UpstreamError(
            f"face swapper returned {swapped.shape} {swapped.dtype}; expected {tiles.shape} uint8"
        )
    return pixel_boost.merge(swapped, factor)


def rows_by_frame(flat: Sequence[tuple[int, Face]], frame_count: int) -> list[list[int]]:
    """For each frame, the positions of its faces in the flat list of all faces."""
    rows: list[list[int]] = [[] for _ in range(frame_count)]
    for row, (index, _) in enumerate(flat):
        rows[index].append(row)
    return rows


async def paste_swaps(
    frames: Sequence[Image],
    flat: Sequence[tuple[int, Face]],
    swapped: Image,
    affines: Sequence[Affine],
) -> list[Image]:
    """Each frame with its swapped crops pasted, the frames in parallel threads."""
    mask = box_mask(swapped.shape[1])
    jobs = [
        asyncio.to_thread(paste_masked, frame, [(swapped[r], affines[r]) for r in rows], mask)
        for frame, rows in zip(frames, rows_by_frame(flat, len(frames)), strict=True)
    ]
    return list(await asyncio.gather(*jobs))


def box_mask(size: int, blur: float = BOX_MASK_BLUR) -> Mask:
    """FaceFusion's static box mask without padding: ones with a border of
    max(⌊a/2⌋, 1) zero pixels, Gaussian-blurred with σ = a/4, where a = ⌊size·blur/2⌋."""
    amount = int(size * 0.5 * blur)
    border = max(amount // 2, 1)
    box = np.zeros((size, size), dtype=np.float32)
    box[border:-border, border:-border] = 1.0
    if amount == 0:
        return box
    return np.asarray(cv2.GaussianBlur(box, (0, 0), amount * 0.25), dtype=np.float32)


def paste_masked(frame: Image, faces: Sequence[tuple[Image, Affine]], mask: Mask) -> Image:
    """Blend swapped crops into a copy of `frame` through a crop-space mask, in order; the frame
    itself when there is nothing to paste."""
    if not faces:
        return frame
    output = frame.copy()
    for crop, affine in faces:
        paste_crop(output, crop, affine, mask)
    return output


def paste_crop(output: Image, crop: Image, affine: Affine, mask: Mask) -> None:
    """Warp crop and mask back into the face's clipped bounding box only, and blend there."""
    located = locate_face(affine, crop.shape[0], output.shape, 1, margin=0)
    if located is None:
        return
    region, local = located
    warped = cv2.warpAffine(
        crop, local, region.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    alpha = cv2.warpAffine(
        mask, local, region.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    target = output[region.y0 : region.y1, region.x0 : region.x1]
    soft = np.clip(alpha, 0.0, 1.0).astype(np.float32, copy=False)
    blend(target, np.asarray(warped, dtype=np.uint8), None, soft)


async def enhance_faces(
    images: Sequence[Image],
    flat: Sequence[tuple[int, Face]],
    restorer: FaceRestorer,
    opacity: float,
) -> list[Image]:
    """GFPGAN on the swapped faces of the swapped frames, all in one restorer call, pasted with
    the soft face mask at `opacity` (FaceFusion mixes the whole pasted frame with the unpasted
    one by its blend; only the masked pixels differ, so scaling the mask is the same)."""
    affines = [estimate_affine(face.landmarks, FFHQ_TEMPLATE_512) for _, face in flat]
    crops = await asyncio.to_thread(cut_ffhq_crops, images, flat, affines)
    restored = await restorer.restore(crops)
    if restored.shape != crops.shape or restored.dtype != np.uint8:
        raise UpstreamError(
            f"face restorer returned {restored.shape} {restored.dtype}; "
            f"expected {crops.shape} uint8"
        )
    jobs = [
        asyncio.to_thread(paste_restored, image, rows, restored, affines, opacity)
        for image, rows in zip(images, rows_by_frame(flat, len(images)), strict=True)
    ]
    return list(await asyncio.gather(*jobs))


def cut_ffhq_crops(
    images: Sequence[Image], flat: Sequence[tuple[int, Face]], affines: Sequence[Affine]
) -> Image:
    return np.stack(
        [
            warp_face(images[index], affine, FFHQ_SIZE)
            for (index, _), affine in zip(flat, affines, strict=True)
        ]
    )


def paste_restored(
    image: Image, rows: Sequence[int], restored: Image, affines: Sequence[Affine], opacity: float
) -> Image:
    if not rows:
        return image
    faces = [restored[r] for r in rows]
    return paste_back(image, faces, [affines[r] for r in rows], upscale=1, opacity=opacity)
