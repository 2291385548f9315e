"""Encoding RGB frames into the output file: H.264 in MP4, or VP9 in WebM, with the input's audio.

Every frame is written with the timestamp it is given, in a stream time base as fine as the
source's, so a variable frame rate survives. Frames are converted (and resized) straight into
the encoder's YUV 4:2:0 by swscale; no frame ever touches the disk.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

import av
import numpy as np
import numpy.typing as npt
from av.container import OutputContainer
from av.video.stream import VideoStream

from gateway.video.audio import AudioMode, AudioTrack, OutputKind
from gateway.video.sniff import ContainerKind
from gateway.video.timing import Stamp

if TYPE_CHECKING:
    from gateway.video.audio import AnyPacket

Image = npt.NDArray[np.uint8]

OUTPUT_KINDS: Final[dict[str, OutputKind]] = {".mp4": "mp4", ".webm": "webm"}
VIDEO_CODECS: Final[dict[OutputKind, str]] = {"mp4": "libx264", "webm": "libvpx-vp9"}
MIN_SCALE_PERCENT: Final = 10
MAX_SCALE_PERCENT: Final = 400


@dataclass(frozen=True)
class EncoderOptions:
    """Quality and speed. crf: 18 is visually lossless for x264; VP9's scale differs (0–63)."""

    x264_crf: int = 18
    x264_preset: str = "veryfast"  # most of the quality of `medium` at several times the speed
    vp9_crf: int = 32
    vp9_speed: int = 6  # libvpx cpu-used: 5–8 are its real-time-ish settings


@dataclass(frozen=True)
class AudioSource:
    path: Path
    container: ContainerKind


def output_kind_for(path: Path) -> OutputKind:
    try:
        return OUTPUT_KINDS[path.suffix.lower()]
    except KeyError:
        raise ValueError(f"cannot write {path.name!r}: name it .mp4 or .webm") from None


def scaled_size(width: int, height: int, percent: int) -> tuple[int, int]:
    """(width, height) scaled by `percent`, rounded to even numbers (4:2:0 chroma needs them)."""

    def even(side: int) -> int:
        return max(2, 2 * round(side * percent / 200))

    return even(width), even(height)


class VideoWriter:
    """One output file. Use as a context manager: leaving it on an error closes the file
    without finishing it (the caller deletes it)."""

    def __init__(
        self,
        path: Path,
        *,
        size: tuple[int, int],
        time_base: Fraction,
        frame_rate: Fraction,
        audio: AudioSource | None,
        options: EncoderOptions,
        timeout_s: float,
    ) -> None:
        self.kind = output_kind_for(path)
        self.width, self.height = size
        self._time_base = time_base
        # moov first, so a browser can start playing before the whole file has arrived.
        muxer_options = {"movflags": "+faststart"} if self.kind == "mp4" else {}
        self._container: OutputContainer = av.open(
            f"file:{path.resolve()}", mode="w", format=self.kind, container_options=muxer_options
        )
        self._audio: AudioTrack | None = None
        try:
            self._video = add_video_stream(
                self._container, self.kind, size, time_base, frame_rate, options
            )
            if audio is not None:
                self._audio = AudioTrack(
                    audio.path, audio.container, self._container, self.kind, timeout_s=timeout_s
                )
        except BaseException:
            self.abort()
            raise

    @property
    def audio_mode(self) -> AudioMode:
        return "none" if self._audio is None else self._audio.mode

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            self.close()
        else:
            self.abort()

    def write(self, image: Image, stamp: Stamp) -> None:
        """Encode one H×W×3 uint8 RGB frame, resized to the output size if it differs."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        shrinking = frame.width * frame.height > self.width * self.height
        frame = frame.reformat(
            width=self.width,
            height=self.height,
            format="yuv420p",
            interpolation="AREA" if shrinking else "BICUBIC",
        )
        frame.pts = stamp.pts
        frame.duration = stamp.duration
        frame.time_base = self._time_base
        if self._audio is not None:
            self._audio.write_until(stamp.pts * self._time_base)
        self._mux(self._video.encode(frame))

    def close(self) -> None:
        """Flush the encoder (it holds frames back for B-frames and lookahead), write the rest
        of the audio and finish the file."""
        try:
            self._mux(self._video.encode(None))
            if self._audio is not None:
                self._audio.finish()
        finally:
            self._close_all()

    def abort(self) -> None:
        # The file is deleted anyway; the error that led here is the one to report.
        with contextlib.suppress(av.FFmpegError):
            self._close_all()

    def _close_all(self) -> None:
        try:
            if self._audio is not None:
                self._audio.close()
        finally:
            self._container.close()

    def _mux(self, packets: list[AnyPacket]) -> None:
        self._container.mux(packets)


def add_video_stream(
    container: OutputContainer,
    kind: OutputKind,
    size: tuple[int, int],
    time_base: Fraction,
    frame_rate: Fraction,
    options: EncoderOptions,
) -> VideoStream:
    if kind == "mp4":
        codec_options = {"crf": str(options.x264_crf), "preset": options.x264_preset}
    else:
        # b=0 with a crf is libvpx's constant-quality mode; row-mt uses the cores on one frame.
        codec_options = {
            "crf": str(options.vp9_crf),
            "b": "0",
            "cpu-used": str(options.vp9_speed),
            "deadline": "good",
            "row-mt": "1",
        }
    stream = container.add_stream(VIDEO_CODECS[kind], rate=frame_rate, options=codec_options)
    if not isinstance(stream, VideoStream):
        raise TypeError(f"{VIDEO_CODECS[kind]} did not make a video stream")
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    # The encoder counts in the source's time base (not 1/fps), so irregular gaps stay exact.
    stream.codec_context.time_base = time_base
    return stream
