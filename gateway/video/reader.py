"""Decoding an input's video stream into RGB frames, in presentation order."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
import numpy.typing as npt

from gateway.video.probe import ffmpeg_failure, first_video_stream, open_input, stream_time_base
from gateway.video.sniff import ContainerKind

Image = npt.NDArray[np.uint8]


class FrameReader:
    """The first video stream of a probed input. FFmpeg's errors become BadRequest: the input
    is the client's."""

    def __init__(self, path: Path, kind: ContainerKind, *, timeout_s: float) -> None:
        self._container = open_input(path, kind, timeout_s=timeout_s)
        self._video = first_video_stream(self._container)
        # Frame threads decode several frames at once; they hold frames back, which the final
        # flush returns.
        self._video.codec_context.thread_type = "AUTO"
        self.time_base: Fraction = stream_time_base(self._video)

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._container.close()

    def frames(self) -> Iterator[av.VideoFrame]:
        """Every frame. PyAV's demuxer ends each stream with an empty packet whose decoding
        flushes the decoder; it is decoded like the rest, or the last frames are lost."""
        try:
            for packet in self._container.demux(self._video):
                yield from self._video.decode(packet)
        except av.FFmpegError as error:
            raise ffmpeg_failure(error, "decode") from error


def to_rgb(frame: av.VideoFrame) -> Image:
    """The frame as H×W×3 uint8 RGB, turned upright when the file asks players to rotate it
    (phones record sideways and say so), since face detection needs upright faces and the
    output carries no rotation."""
    rgb = np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
    return upright(rgb, frame.rotation)


def upright(rgb: Image, rotation: int) -> Image:
    """Rotate by `rotation` degrees counterclockwise (the display matrix's angle), in whole
    quarter turns."""
    quarter_turns = round(rotation / 90) % 4
    if quarter_turns == 0:
        return rgb
    return np.ascontiguousarray(np.rot90(rgb, k=quarter_turns))
