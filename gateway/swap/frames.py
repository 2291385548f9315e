"""What one ProcessRequest does to a window of frames (one image is a window of one): the face
swap with its optional face enhancer, the face enhancer alone, the frame enhancer, and the
output scale, in that order. All faces of the window reach each model together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from gateway.faces.restore_pipeline import restore_image
from gateway.faces.swap_pipeline import Embedding, SourceIdentity, SwapOptions, swap_frames
from gateway.faces.types import FaceDetector, FaceEmbedder, FaceRestorer, FaceSwapper, LatentMaker
from gateway.swap.request import ProcessRequest

Image = npt.NDArray[np.uint8]
# (frame, factor) → the frame super-resolved by `factor` (Real-ESRGAN through Triton).
FrameUpscaler = Callable[[Image, int], Awaitable[Image]]


@dataclass(frozen=True)
class SwapModels:
    """The sessions a request may use; None where the request does not need one."""

    detector: FaceDetector
    embedder: FaceEmbedder | None = None
    latent_maker: LatentMaker | None = None
    swapper: FaceSwapper | None = None
    restorer: FaceRestorer | None = None
    upscaler: FrameUpscaler | None = None


@dataclass
class FrameStats:
    """Counts over every window a request processed."""

    frames: int = 0
    faces_detected: int = 0
    faces_processed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def swap_options(request: ProcessRequest) -> SwapOptions:
    """The pipeline's options in FaceFusion's names, as the request carries them."""
    return SwapOptions(
        swapper_weight=request.face_swapper_weight,
        selector_mode=request.face_selector_mode,
        reference_face_distance=request.reference_face_distance,
        pixel_boost=request.face_swapper_pixel_boost,
        enhance="face_enhancer" in request.processors,
        enhancer_blend=request.face_enhancer_blend / 100,
        min_score=request.face_detector_score,
    )


async def process_frames(
    frames: Sequence[Image],
    request: ProcessRequest,
    models: SwapModels,
    identity: SourceIdentity | None,
    stats: FrameStats,
    *,
    scale_percent: int,
    reference: Embedding | None = None,
) -> list[Image]:
    """Every step the request names, over a window of H×W×3 RGB frames of one size."""
    output = list(frames)
    if "face_swapper" in request.processors:
        if identity is None or None in (models.embedder, models.latent_maker, models.swapper):
            raise ValueError("face_swapper needs a source identity and its three sessions")
        outcomes = await swap_frames(
            output,
            identity,
            models.detector,
            models.embedder,  # type: ignore[arg-type]  # checked just above
            models.latent_maker,  # type: ignore[arg-type]
            models.swapper,  # type: ignore[arg-type]
            models.restorer if "face_enhancer" in request.processors else None,
            swap_options(request),
            reference,
        )
        output = [outcome.image for outcome in outcomes]
        stats.faces_detected += sum(outcome.detected_count for outcome in outcomes)
        stats.faces_processed += sum(len(outcome.faces) for outcome in outcomes)
    elif "face_enhancer" in request.processors:
        output = await enhance_faces(output, request, models, stats)
    if "frame_enhancer" in request.processors:
        output = await enhance_frames(output, request, models, scale_percent)
    else:
        output = await asyncio.to_thread(scale_frames, output, scale_percent)
    stats.frames += len(output)
    return output


async def enhance_faces(
    frames: Sequence[Image], request: ProcessRequest, models: SwapModels, stats: FrameStats
) -> list[Image]:
    """GFPGAN on every face (FaceFusion's face_enhancer alone), blended by its percentage."""
    if models.restorer is None:
        raise ValueError("face_enhancer needs a restorer")
    outcomes = await asyncio.gather(
        *(
            restore_image(
                frame,
                models.detector,
                models.restorer,
                weight=request.face_enhancer_blend / 100,
                upscale=1,
                min_score=request.face_detector_score,
            )
            for frame in frames
        )
    )
    stats.faces_detected += sum(outcome.detected_count for outcome in outcomes)
    stats.faces_processed += sum(outcome.restored_count for outcome in outcomes)
    return [outcome.image for outcome in outcomes]


async def enhance_frames(
    frames: Sequence[Image], request: ProcessRequest, models: SwapModels, scale_percent: int
) -> list[Image]:
    """Real-ESRGAN on whole frames, resized to the output size and blended with the plainly
    resized frame by frame_enhancer_blend (FaceFusion keeps the frame size and blends 80 %)."""
    if models.upscaler is None:
        raise ValueError("frame_enhancer needs an upscaler")
    factor = 4 if scale_percent > 200 else 2
    enhanced = await asyncio.gather(*(models.upscaler(frame, factor) for frame in frames))
    blend = request.frame_enhancer_blend / 100
    pairs = list(zip(enhanced, frames, strict=True))
    return await asyncio.to_thread(
        lambda: [blend_enhanced(sharp, frame, blend, scale_percent) for sharp, frame in pairs]
    )


def blend_enhanced(sharp: Image, original: Image, blend: float, scale_percent: int) -> Image:
    """The enhanced frame at the output size, mixed with the plainly scaled original."""
    enhanced = scale_frame(sharp, scale_percent, reference=original)
    if blend >= 1.0:
        return enhanced
    plain = scale_frame(original, scale_percent)
    mixed = enhanced.astype(np.float32) * blend + plain.astype(np.float32) * (1.0 - blend)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def output_size(width: int, height: int, scale_percent: int) -> tuple[int, int]:
    """(width, height) at `scale_percent`, at least one pixel each way."""
    return max(1, round(width * scale_percent / 100)), max(1, round(height * scale_percent / 100))


def scale_frame(frame: Image, scale_percent: int, *, reference: Image | None = None) -> Image:
    """`frame` resized to `scale_percent` of `reference`'s size (default: its own)."""
    base = frame if reference is None else reference
    size = output_size(base.shape[1], base.shape[0], scale_percent)
    if (frame.shape[1], frame.shape[0]) == size:
        return frame
    shrinking = size[0] < frame.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(frame, size, interpolation=interpolation), dtype=np.uint8)


def scale_frames(frames: Sequence[Image], scale_percent: int) -> list[Image]:
    return [scale_frame(frame, scale_percent) for frame in frames]
