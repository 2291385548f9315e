"""Decode → transform → encode, the three overlapping.

A decode thread and an encode thread run FFmpeg (PyAV releases the GIL while it works); the
transform, which calls the models, is awaited on the event loop, a window of frames at a time
so the caller can batch faces across frames. Bounded channels join the stages, so memory holds
a few windows of frames however long the video is. An error or a cancellation in any stage
stops the others within one poll, and the partial output is deleted.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import numpy as np
import numpy.typing as npt

from gateway.errors import BadRequest, PayloadTooLarge
from gateway.video.audio import AudioMode, OutputKind
from gateway.video.channels import FromLoop, Stopped, ToLoop
from gateway.video.probe import VideoInfo, VideoLimits, probe_video
from gateway.video.reader import FrameReader, to_rgb
from gateway.video.timing import (
    Decision,
    Retimer,
    Stamp,
    as_rate,
    expected_output_frames,
)
from gateway.video.writer import (
    MAX_SCALE_PERCENT,
    MIN_SCALE_PERCENT,
    AudioSource,
    EncoderOptions,
    VideoWriter,
    output_kind_for,
    scaled_size,
)

Image = npt.NDArray[np.uint8]
Transform = Callable[[list[Image]], Awaitable[list[Image]]]
Progress = Callable[[int, int], None]

MAX_OUTPUT_FPS: Final = 120
MAX_WINDOW: Final = 64
CODEC_NAMES: Final[dict[OutputKind, str]] = {"mp4": "h264", "webm": "vp9"}
# Matroska stores milliseconds whatever it is given; MP4 keeps any time base.
MUXER_TIME_BASES: Final[dict[OutputKind, Fraction]] = {"webm": Fraction(1, 1000)}
_JOIN_TIMEOUT_S: Final = 10.0  # a stage inside one long FFmpeg call ends when it returns
_DEFAULT_RATE: Final = Fraction(30)


@dataclass(frozen=True)
class VideoOptions:
    """How to process one video. output_fps None keeps every frame and its timestamp;
    output_scale is a percentage of the transformed frames' size."""

    output_fps: float | None = None
    output_scale: int = 100
    window: int = 8  # frames per transform call
    buffered_windows: int = 2  # windows waiting on each side of the transform
    max_output_side: int = 8192
    encoder: EncoderOptions = field(default_factory=EncoderOptions)
    limits: VideoLimits = field(default_factory=VideoLimits)

    def __post_init__(self) -> None:
        if self.output_fps is not None and not 0 < self.output_fps <= MAX_OUTPUT_FPS:
            raise BadRequest(f"output_video_fps must be in (0, {MAX_OUTPUT_FPS}]")
        if not MIN_SCALE_PERCENT <= self.output_scale <= MAX_SCALE_PERCENT:
            raise BadRequest(
                f"output_video_scale must be {MIN_SCALE_PERCENT}–{MAX_SCALE_PERCENT} (percent)"
            )
        if not 1 <= self.window <= MAX_WINDOW:
            raise ValueError(f"window must be 1–{MAX_WINDOW} frames, got {self.window}")
        if self.buffered_windows < 1:
            raise ValueError("buffered_windows must be at least 1")


@dataclass(frozen=True)
class StageTimings:
    """Seconds each stage worked (waits on the others excluded) and the whole run's."""

    decode_s: float
    transform_s: float
    encode_s: float
    total_s: float


@dataclass(frozen=True)
class VideoResult:
    source: VideoInfo
    frames_in: int  # decoded
    frames_out: int  # written
    width: int
    height: int
    fps: float
    duration_s: float
    container: OutputKind
    video_codec: str
    audio: AudioMode
    timings: StageTimings


async def process_video(
    input_path: Path,
    output_path: Path,
    transform: Transform,
    *,
    options: VideoOptions | None = None,
    progress: Progress | None = None,
) -> VideoResult:
    """Probe `input_path` (refusing it on any limit), then write every frame through
    `transform` to `output_path` (.mp4: H.264; .webm: VP9), with the input's first audio track.

    `transform` gets a list of H×W×3 uint8 RGB frames and returns as many, all one size.
    `progress(done, total)` is called on the event loop as each output frame goes to the
    encoder; `total` is the probe's estimate, and a last call gives the true count.
    Raises BadRequest / UnsupportedMediaType / PayloadTooLarge for the input, the transform's
    own errors unchanged, and ValueError for a transform breaking its contract.
    """
    options = options or VideoOptions()
    output_kind = output_kind_for(output_path)
    if output_path.resolve() == input_path.resolve():
        raise ValueError("the output would overwrite the input it is read from")
    info = await asyncio.to_thread(probe_video, input_path, options.limits)
    run = _Run(input_path, output_path, output_kind, info, transform, options, progress)
    return await run.execute()


class _Run:
    """One video's pass through the three stages; the threads write only their own fields."""

    def __init__(
        self,
        input_path: Path,
        output_path: Path,
        output_kind: OutputKind,
        info: VideoInfo,
        transform: Transform,
        options: VideoOptions,
        progress: Progress | None,
    ) -> None:
        self.input_path, self.output_path, self.output_kind = input_path, output_path, output_kind
        self.info, self.transform, self.options, self.progress = info, transform, options, progress
        fps = as_rate(options.output_fps) if options.output_fps is not None else None
        self.retimer = Retimer(
            info.time_base, fps, keep_time_base=MUXER_TIME_BASES.get(output_kind)
        )
        self.expected = expected_output_frames(
            info.frame_count, info.time_base, info.start_pts, info.end_pts, fps
        )
        if self.expected > options.limits.max_frames:
            raise PayloadTooLarge(
                f"output_video_fps would write {self.expected} frames; the limit "
                f"(video_max_frames) is {options.limits.max_frames}"
            )
        self.frame_rate = fps or _source_rate(info)
        self.stop = threading.Event()
        loop = asyncio.get_running_loop()
        capacity = options.window * options.buffered_windows
        self.decoded: ToLoop[tuple[Image, tuple[Stamp, ...]]] = ToLoop(loop, capacity, self.stop)
        self.to_encode: FromLoop[tuple[Image, Stamp]] = FromLoop(loop, capacity, self.stop)
        self.output_size: tuple[int, int] | None = None
        self.first_pts: int | None = None
        self.last_end = 0
        # Written by the decode thread:
        self.frames_in = 0
        self.decode_s = 0.0
        # Written by the encode thread:
        self.frames_written = 0
        self.encode_s = 0.0
        self.audio_mode: AudioMode = "none"
        # Written by the loop:
        self.decoded_all = False
        self.frames_out = 0
        self.transform_s = 0.0

    async def execute(self) -> VideoResult:
        started = time.perf_counter()
        threads = [
            threading.Thread(target=self._decode, name="facet-video-decode", daemon=True),
            threading.Thread(target=self._encode, name="facet-video-encode", daemon=True),
        ]
        for thread in threads:
            thread.start()
        finished = False
        try:
            await self._transform_all()
            await self.to_encode.ended()
            finished = True
        finally:
            self.stop.set()
            await asyncio.to_thread(_join, threads, _JOIN_TIMEOUT_S)
            self.to_encode.forget()
            if not finished:
                self.output_path.unlink(missing_ok=True)
        if self.progress is not None and self.frames_out != self.expected:
            self.progress(self.frames_out, self.frames_out)
        return self._result(time.perf_counter() - started)

    # The event loop: windows through the transform -------------------------------------

    async def _transform_all(self) -> None:
        while window := await self._next_window():
            started = time.perf_counter()
            images = await self.transform([image for image, _ in window])
            self.transform_s += time.perf_counter() - started
            self._check_transformed(images, len(window))
            for image, (_, stamps) in zip(images, window, strict=True):
                for stamp in stamps:
                    await self.to_encode.put((image, stamp))
                    self._count_out(stamp)
        self.to_encode.close()

    async def _next_window(self) -> list[tuple[Image, tuple[Stamp, ...]]]:
        window: list[tuple[Image, tuple[Stamp, ...]]] = []
        while not self.decoded_all and len(window) < self.options.window:
            try:
                item = await self.decoded.get(self.options.limits.stall_timeout_s)
            except TimeoutError:
                raise BadRequest(
                    "decoding the video stalled: no frame for "
                    f"{self.options.limits.stall_timeout_s:g} s (video_stall_timeout_s)"
                ) from None
            if item is None:
                self.decoded_all = True
            else:
                window.append(item)
        return window

    def _check_transformed(self, images: object, count: int) -> None:
        if not isinstance(images, list) or len(images) != count:
            got = len(images) if isinstance(images, list) else type(images).__name__
            raise ValueError(f"the transform must return a list of {count} frames, got {got}")
        shapes = {_frame_shape(image) for image in images}
        if len(shapes) != 1:
            raise ValueError(f"the transform returned frames of several sizes: {sorted(shapes)}")
        height, width = shapes.pop()
        size = scaled_size(width, height, self.options.output_scale)
        if self.output_size is None:
            if max(size) > self.options.max_output_side:
                raise PayloadTooLarge(
                    f"the output would be {size[0]}×{size[1]}; at most "
                    f"{self.options.max_output_side} pixels a side are written"
                )
            self.output_size = size
        elif size != self.output_size:
            raise ValueError("the transform changed the frame size in the middle of the video")

    def _count_out(self, stamp: Stamp) -> None:
        self.frames_out += 1
        if self.first_pts is None:
            self.first_pts = stamp.pts
        self.last_end = max(self.last_end, stamp.pts + stamp.duration)
        if self.progress is not None:
            self.progress(self.frames_out, max(self.expected, self.frames_out))

    # The decode thread ------------------------------------------------------------------

    def _decode(self) -> None:
        started = time.perf_counter()
        waited = 0.0
        try:
            with FrameReader(
                self.input_path, self.info.container, timeout_s=self.options.limits.stall_timeout_s
            ) as reader:
                held: deque[av.VideoFrame] = deque()
                for frame in reader.frames():
                    if self.stop.is_set():
                        raise Stopped
                    self.frames_in += 1
                    held.append(frame)
                    waited += self._hand_over(self.retimer.push(frame.pts, frame.duration), held)
                waited += self._hand_over(self.retimer.finish(), held)
            self.decoded.close()
        except Stopped:
            pass
        except BaseException as error:
            self.decoded.fail(error)
        finally:
            self.decode_s = time.perf_counter() - started - waited

    def _hand_over(self, decisions: list[Decision], held: deque[av.VideoFrame]) -> float:
        """Send the frames the retimer kept (converted to RGB only then); returns time waited."""
        waited = 0.0
        for decision in decisions:
            frame = held.popleft()
            if decision.stamps:
                waited += self.decoded.put((to_rgb(frame), decision.stamps))
        return waited

    # The encode thread ------------------------------------------------------------------

    def _encode(self) -> None:
        started = time.perf_counter()
        waited = 0.0
        writer: VideoWriter | None = None
        try:
            while True:
                item, wait = self.to_encode.get()
                waited += wait
                if item is None:
                    break
                if writer is None:
                    writer = self._open_writer()
                image, stamp = item
                writer.write(image, stamp)
                self.frames_written += 1
            if writer is not None:
                self.audio_mode = writer.audio_mode
                writer.close()
            self.to_encode.finish()
        except BaseException as error:
            if writer is not None:
                writer.abort()
            if isinstance(error, Stopped):
                self.to_encode.finish()
            else:
                self.to_encode.fail(error)
        finally:
            self.encode_s = time.perf_counter() - started - waited

    def _open_writer(self) -> VideoWriter:
        assert self.output_size is not None  # set by the loop before the first frame is put
        audio = AudioSource(self.input_path, self.info.container) if self.info.audio else None
        return VideoWriter(
            self.output_path,
            size=self.output_size,
            time_base=self.retimer.output_time_base,
            frame_rate=self.frame_rate,
            audio=audio,
            options=self.options.encoder,
            timeout_s=self.options.limits.stall_timeout_s,
        )

    def _result(self, total_s: float) -> VideoResult:
        width, height = self.output_size or (0, 0)
        span = self.last_end - (self.first_pts or 0)
        duration_s = float(span * self.retimer.output_time_base)
        return VideoResult(
            source=self.info,
            frames_in=self.frames_in,
            frames_out=self.frames_written,
            width=width,
            height=height,
            fps=self.frames_written / duration_s if duration_s > 0 else 0.0,
            duration_s=duration_s,
            container=self.output_kind,
            video_codec=CODEC_NAMES[self.output_kind],
            audio=self.audio_mode,
            timings=StageTimings(self.decode_s, self.transform_s, self.encode_s, total_s),
        )


def _frame_shape(image: object) -> tuple[int, int]:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError("the transform must return H×W×3 uint8 RGB frames")
    if image.shape[2] != 3:
        raise ValueError(f"the transform must return H×W×3 frames, got {image.shape}")
    return int(image.shape[0]), int(image.shape[1])


def _source_rate(info: VideoInfo) -> Fraction:
    """The encoder's rate hint (rate control): the source's average; timestamps stay exact."""
    if info.average_fps <= 0:
        return _DEFAULT_RATE
    return as_rate(min(info.average_fps, MAX_OUTPUT_FPS * 2))


def _join(threads: list[threading.Thread], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
