"""FaceFusion's way of swapping a video, over the same served models as Facet: one frame at a
time, one face at a time, nothing overlapping.

Per frame: decode (PyAV), detect (face_detect_mtcnn), then for each face, largest first: align
a 128² crop from the frame as it stands (earlier faces already swapped, as FaceFusion cuts
them), make the source latent (swap_latent: FaceFusion recomputes it per face with numpy),
swap it alone (swap_inswapper_128 at batch 1), paste it back; then encode the frame. The source
is embedded once. Reading, alignment, masks, paste-back, timestamps and writing (with the audio
track) are the gateway's own functions (gateway/faces, gateway/video), so what differs from
POST /process/video is only batching and overlap. FaceFusion itself also writes every frame to
a temp image file and embeds every detected face; this baseline does neither, so it is if
anything faster than FaceFusion.

Also here: one swapper call of N faces against N calls of one, timed from this process.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from perf.stats import median
from perf.swap_video_results import STAGES, BatchCost

Image = npt.NDArray[np.uint8]
DETECTOR: Final = "face_detect_mtcnn"
CLIENT_TIMEOUT_S: Final = 900.0
STALL_TIMEOUT_S: Final = 120.0
MS: Final = 1000.0


def detect(client: Any, rgb: Image, min_score: float) -> list[Any]:
    """The served detector's faces, as the gateway's TritonFaceDetector reads them."""
    from gateway.faces.triton_sessions import DETECTOR_OUTPUTS
    from gateway.faces.types import Face

    inputs = {
        "image": np.ascontiguousarray(rgb),
        "score_threshold": np.array([min_score], np.float32),
    }
    outputs = client.infer(DETECTOR, inputs, list(DETECTOR_OUTPUTS))
    return [
        Face(box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])), score=float(s), landmarks=p)
        for b, s, p in zip(outputs["boxes"], outputs["scores"], outputs["landmarks"], strict=True)
    ]


def source_embedding(client: Any, rgb: Image, min_score: float) -> npt.NDArray[np.float32]:
    """The source's unit ArcFace embedding: the largest face, aligned on the 112 template,
    through embed_arcface_w600k_r50 (what the gateway's source_identity gives for one photo)."""
    from gateway.faces.swap_pipeline import (
        NoSourceFace,
        cut_recognition_crops,
        largest_face,
        unit_rows,
    )
    from gateway.faces.swap_sessions import EMBEDDER, EMBEDDER_INPUT, EMBEDDER_OUTPUT

    face = largest_face(detect(client, rgb, min_score), min_score)
    if face is None:
        raise NoSourceFace()
    crops = cut_recognition_crops([(rgb, face)])
    raw = client.infer(EMBEDDER, {EMBEDDER_INPUT: crops}, [EMBEDDER_OUTPUT])[EMBEDDER_OUTPUT]
    unit: npt.NDArray[np.float32] = unit_rows(raw.astype(np.float32))[0]
    return unit


def make_latent(client: Any, embedding: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    from gateway.faces.swap_sessions import LATENT_INPUT, LATENT_MODEL, LATENT_OUTPUT

    inputs = {LATENT_INPUT: np.ascontiguousarray(embedding[None, :], dtype=np.float32)}
    latent = client.infer(LATENT_MODEL, inputs, [LATENT_OUTPUT])[LATENT_OUTPUT]
    return np.asarray(latent, dtype=np.float32)


def swap(client: Any, crops: Image, latents: npt.NDArray[np.float32]) -> Image:
    from gateway.faces.swap_sessions import SWAPPER, SWAPPER_OUTPUT, SWAPPER_SOURCE, SWAPPER_TARGET

    inputs = {SWAPPER_TARGET: crops, SWAPPER_SOURCE: latents.astype(np.float32)}
    return np.asarray(client.infer(SWAPPER, inputs, [SWAPPER_OUTPUT])[SWAPPER_OUTPUT], np.uint8)


@dataclass
class Timings:
    """Seconds per stage, summed, with each frame's and each face's for medians."""

    totals: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    frames: list[dict[str, float]] = field(default_factory=list)
    faces: list[dict[str, float]] = field(default_factory=list)

    def add(self, stage: str, seconds: float, into: dict[str, float]) -> None:
        self.totals[stage] += seconds
        into[stage] = into.get(stage, 0.0) + seconds

    def frame_medians_ms(self) -> dict[str, float]:
        names = sorted({name for frame in self.frames for name in frame})
        return {n: MS * median(frame.get(n, 0.0) for frame in self.frames) for n in names}

    def face_medians_ms(self) -> dict[str, float]:
        names = sorted({name for face in self.faces for name in face})
        return {n: MS * median(face[n] for face in self.faces if n in face) for n in names}


@dataclass
class BaselineOutcome:
    frames: int
    faces_detected: int
    faces_swapped: int
    wall_s: float
    identity_s: float
    timings: Timings


class Clock:
    """Seconds since the last call."""

    def __init__(self) -> None:
        self._last = time.perf_counter()

    def lap(self) -> float:
        now = time.perf_counter()
        elapsed, self._last = now - self._last, now
        return elapsed


def run_baseline(
    url: str, clip: Path, source_rgb: Image, output: Path, *, min_score: float, max_faces: int
) -> BaselineOutcome:
    """The clip through FaceFusion's loop; the output keeps the clip's timestamps and audio."""
    from clients.triton_grpc import FacetTritonClient
    from gateway.faces.swap_pipeline import box_mask, cut_swap_crops, paste_crop, usable_faces
    from gateway.video.probe import VideoLimits, probe_video
    from gateway.video.reader import FrameReader, to_rgb
    from gateway.video.timing import Retimer, as_rate
    from gateway.video.writer import AudioSource, EncoderOptions, VideoWriter, scaled_size

    started = time.perf_counter()
    timings = Timings()
    detected = swapped = frames = 0
    with FacetTritonClient(url, timeout_s=CLIENT_TIMEOUT_S) as client:
        embedding = source_embedding(client, source_rgb, min_score)
        identity_s = time.perf_counter() - started
        info = probe_video(clip, VideoLimits())
        retimer = Retimer(info.time_base)
        mask = box_mask(128)
        writer: VideoWriter | None = None
        held: list[Any] = []
        clock = Clock()

        def process(frame: Any, stamps: Sequence[Any], spent: dict[str, float]) -> None:
            nonlocal writer, detected, swapped, frames
            rgb = to_rgb(frame)
            timings.add("decode", clock.lap(), spent)
            found = detect(client, rgb, min_score)
            faces = usable_faces(found, min_score)[:max_faces]
            detected += len(found)
            timings.add("detect", clock.lap(), spent)
            out = rgb.copy() if faces else rgb
            for face in faces:
                per_face: dict[str, float] = {}
                crops, affines = cut_swap_crops([out], [(0, face)], 128)
                timings.add("align", clock.lap(), per_face)
                latent = make_latent(client, embedding)
                timings.add("latent", clock.lap(), per_face)
                result = swap(client, crops, latent)
                timings.add("swap", clock.lap(), per_face)
                paste_crop(out, result[0], affines[0], mask)
                timings.add("paste", clock.lap(), per_face)
                timings.faces.append(per_face)
                for stage, seconds in per_face.items():
                    spent[stage] = spent.get(stage, 0.0) + seconds
                swapped += 1
            if writer is None:
                writer = VideoWriter(
                    output,
                    size=scaled_size(out.shape[1], out.shape[0], 100),
                    time_base=retimer.output_time_base,
                    frame_rate=as_rate(info.average_fps),
                    audio=AudioSource(clip, info.container) if info.audio else None,
                    options=EncoderOptions(),
                    timeout_s=STALL_TIMEOUT_S,
                )
            for stamp in stamps:
                writer.write(out, stamp)
            timings.add("encode", clock.lap(), spent)
            frames += 1

        with FrameReader(clip, info.container, timeout_s=STALL_TIMEOUT_S) as reader:
            spent: dict[str, float] = {}
            for frame in reader.frames():
                timings.add("decode", clock.lap(), spent)
                held.append(frame)
                for decision in retimer.push(frame.pts, frame.duration):
                    process(held.pop(0), decision.stamps, spent)
                    timings.frames.append(spent)
                    spent = {}
            for decision in retimer.finish():
                process(held.pop(0), decision.stamps, spent)
                timings.frames.append(spent)
                spent = {}
        if writer is not None:
            writer.close()
            timings.add("encode", clock.lap(), timings.frames[-1])
    return BaselineOutcome(
        frames=frames,
        faces_detected=detected,
        faces_swapped=swapped,
        wall_s=time.perf_counter() - started,
        identity_s=identity_s,
        timings=timings,
    )


def batch_costs(
    url: str,
    stats_client: Any,
    crops: Image,
    latent: npt.NDArray[np.float32],
    sizes: Sequence[int],
    *,
    repeats_of_one: int,
) -> list[BatchCost]:
    """One swap_inswapper_128 call per batch size (batch 1 `repeats_of_one` times), each timed
    here and by Triton (inswapper_128's compute per execution)."""
    from clients.triton_grpc import FacetTritonClient
    from perf.swap_video_triton import read_batches

    costs = []
    with FacetTritonClient(url, timeout_s=CLIENT_TIMEOUT_S) as client:
        for size in sizes:
            targets = np.ascontiguousarray(np.resize(crops, (size, *crops.shape[1:])))
            latents = np.repeat(latent, size, axis=0)
            cost = BatchCost(batch=size, calls_ms=[])
            for _ in range(repeats_of_one if size == 1 else 1):
                before = read_batches(stats_client, "inswapper_128").get(size, (0, 0))
                started = time.perf_counter()
                swap(client, targets, latents)
                cost.calls_ms.append(MS * (time.perf_counter() - started))
                after = read_batches(stats_client, "inswapper_128").get(size, (0, 0))
                if after[0] == before[0] + 1:  # one execution of this size: ours alone
                    cost.server_ms.append((after[1] - before[1]) / 1e6)
            costs.append(cost)
    return costs
