"""The face-swap video benchmark's inputs, made from a real photo: insightface's group photo
t1.jpg (six people, perf.photos fetches it from the insightface wheel).

The clip is 854×480 H.264 with an AAC tone as its audio track. Its first third shows one face,
the second two, the last three (1–3 faces, two on average): each third is a fixed window of
t1.jpg around those faces, scaled to 854×480 and panned sideways a couple of pixels per frame
(a triangle wave), so every frame differs and the detector has real work on each. The windows
were placed with MTCNN's boxes on t1.jpg so that no other face enters them while they pan.
The source face is a person who is never in the clip (the woman on the far left).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import cv2
import numpy as np
from PIL import Image

from perf.photos import encode_jpeg, fetch_t1
from perf.samples import Uint8Array

WIDTH: Final = 854
HEIGHT: Final = 480
SAMPLE_RATE: Final = 48_000
TONE_HZ: Final = 440.0
PAN_STEP_PX: Final = 2  # per frame, in t1.jpg's pixels
PAN_AMPLITUDE_PX: Final = 20
AUDIO_CHUNK: Final = 1024


@dataclass(frozen=True)
class Window:
    """A part of t1.jpg: its left and top edge and its width (height follows 854:480)."""

    left: int
    top: int
    width: int

    @property
    def height(self) -> int:
        return round(self.width * HEIGHT / WIDTH)


# MTCNN's boxes on t1.jpg (x1, y1, x2, y2), left to right: [54, 262, 171, 395] (the source),
# [270, 150, 374, 268], [465, 264, 571, 411], [741, 342, 842, 475], [908, 62, 1013, 200],
# [1134, 276, 1226, 400]. Each window holds its faces with a margin and stays clear of the
# others by more than the pan's amplitude.
WINDOWS: Final[dict[int, Window]] = {
    1: Window(left=601, top=301, width=380),  # the man in red
    2: Window(left=425, top=241, width=457),  # + the man in grey in the middle
    3: Window(left=230, top=129, width=652),  # + the woman in black behind them
}
SOURCE_CROP: Final = (0, 180, 240, 480)  # x1, y1, x2, y2 around the leftmost face


def faces_in_frame(index: int, frames: int) -> int:
    """How many faces frame `index` of `frames` shows: 1, 2, 3 by thirds."""
    if frames < 1 or not 0 <= index < frames:
        raise ValueError(f"frame {index} of {frames}")
    return 1 + min(2, 3 * index // frames)


def pan_offset(index: int) -> int:
    """Sideways offset of frame `index` in t1.jpg's pixels: a triangle wave of
    ±PAN_AMPLITUDE_PX moving PAN_STEP_PX per frame."""
    span = 2 * PAN_AMPLITUDE_PX
    position = (PAN_STEP_PX * index) % (2 * span)
    return (position if position <= span else 2 * span - position) - PAN_AMPLITUDE_PX


def frame_of(photo: Uint8Array, index: int, frames: int, faces: int | None = None) -> Uint8Array:
    """Frame `index` of a `frames`-long clip, 854×480 RGB (`faces` fixes the window)."""
    window = WINDOWS[faces or faces_in_frame(index, frames)]
    left = window.left + pan_offset(index)
    crop = photo[window.top : window.top + window.height, left : left + window.width]
    if crop.shape[:2] != (window.height, window.width):
        raise ValueError("a clip window runs off the photo")
    resized = cv2.resize(crop, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    return np.ascontiguousarray(resized, dtype=np.uint8)


def frame_count(seconds: float, fps: int) -> int:
    """Frames of a clip `seconds` long at `fps`; at least three, so every face count shows."""
    return max(3, round(seconds * fps))


@dataclass(frozen=True)
class Clip:
    path: Path
    frames: int
    fps: int
    faces: int  # summed over frames: what a swap of every face processes
    size_bytes: int

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


def write_clip(
    path: Path, photo: Uint8Array, frames: int, fps: int, faces: int | None = None
) -> Clip:
    """The clip as MP4 (H.264 + AAC mono 48 kHz), written frame by frame (never all in memory:
    the memory check's clip is a minute long); `faces` shows that many in every frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    time_base = Fraction(1, fps)
    with av.open(str(path), "w", format="mp4") as output:
        video = output.add_stream("libx264", rate=fps, options={"crf": "20", "preset": "fast"})
        audio = output.add_stream("aac", rate=SAMPLE_RATE)
        assert isinstance(video, av.VideoStream) and isinstance(audio, av.AudioStream)
        video.width, video.height = WIDTH, HEIGHT
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = time_base
        audio.layout = "mono"
        for index in range(frames):
            rgb = frame_of(photo, index, frames, faces)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.duration, frame.time_base = index, 1, time_base
            output.mux(video.encode(frame))
        output.mux(video.encode(None))
        write_tone(output, audio, frames / fps)
    shown = frames * faces if faces else sum(faces_in_frame(i, frames) for i in range(frames))
    return Clip(path, frames, fps, shown, path.stat().st_size)


def write_tone(output: av.container.OutputContainer, audio: av.AudioStream, seconds: float) -> None:
    total = round(seconds * SAMPLE_RATE)
    for start in range(0, total, AUDIO_CHUNK):
        t = np.arange(start, min(start + AUDIO_CHUNK, total)) / SAMPLE_RATE
        samples = (0.2 * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, start, Fraction(1, SAMPLE_RATE)
        output.mux(audio.encode(frame))
    output.mux(audio.encode(None))


@dataclass(frozen=True)
class Inputs:
    photo: Uint8Array  # t1.jpg, RGB
    source_jpeg: bytes  # the face swapped in, as a client uploads it


def load_inputs(cache: Path) -> Inputs:
    """t1.jpg (from the insightface wheel under `cache`, downloaded there once) and the source
    face cut from it."""
    photo = np.asarray(Image.open(io.BytesIO(fetch_t1(cache))).convert("RGB"), dtype=np.uint8)
    x1, y1, x2, y2 = SOURCE_CROP
    return Inputs(photo, encode_jpeg(np.ascontiguousarray(photo[y1:y2, x1:x2])))
