"""Open an uploaded video safely and report what it holds, refusing it before any frame is
decoded when it breaks a limit.

The order keeps every check cheap before the next costs more: the file's size, the container
from its bytes, the container's own sizes against the file's (truncation), the header (streams,
dimensions, declared duration), then one pass over the packets without decoding them, which
gives the exact frame count, the real duration and whether the frame rate varies.
"""

from __future__ import annotations

import itertools
import os
import re
import stat
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Final

import av
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.video.stream import VideoStream

from gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.video.sniff import HEAD_BYTES, ContainerKind, check_complete, sniff_container

if TYPE_CHECKING:
    from gateway.settings import Settings

# FFmpeg demuxer per container: forcing it means FFmpeg never probes the bytes itself (and so
# never picks the hls or concat demuxers, which open the files a playlist lists).
DEMUXERS: Final[dict[ContainerKind, str]] = {
    "mp4": "mp4",
    "mov": "mov",
    "m4v": "mp4",
    "mkv": "matroska",
    "webm": "matroska",
    "avi": "avi",
}
# FFmpeg wants time in AV_TIME_BASE units (microseconds) for container durations.
_AV_TIME_BASE: Final = 1_000_000
_DEADLINE_EVERY: Final = 256  # packets between clock checks; a check costs more than a packet
# Rates within this share of each other count as one rate: containers with a 1 ms clock store
# 30 fps as 33/34 ms steps, which is not a variable frame rate.
_VFR_TOLERANCE: Final = 0.01
# A declared duration that the packets fall short of by more than this is a cut-off file.
_DURATION_SLACK_S: Final = 0.5
_SAMPLE_TABLE_KINDS: Final = frozenset({"mp4", "mov", "m4v"})
_PLAIN_REASON: Final = re.compile(r"[A-Za-z0-9 ,.;:()%+'-]{1,200}")


@dataclass(frozen=True)
class VideoLimits:
    """What an upload may be; each field is the Settings field `video_<name>`."""

    max_bytes: int = 500 * 1024 * 1024
    max_duration_s: float = 600.0
    max_frames: int = 36_000
    max_side: int = 4096
    max_pixels: int = 4096 * 2160
    probe_timeout_s: float = 30.0
    stall_timeout_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> VideoLimits:
        return cls(
            max_bytes=settings.video_max_bytes,
            max_duration_s=settings.video_max_duration_s,
            max_frames=settings.video_max_frames,
            max_side=settings.video_max_side,
            max_pixels=settings.video_max_pixels,
            probe_timeout_s=settings.video_probe_timeout_s,
            stall_timeout_s=settings.video_stall_timeout_s,
        )


@dataclass(frozen=True)
class AudioInfo:
    index: int  # the stream's index in the container
    codec: str
    sample_rate: int
    channels: int
    duration_s: float


@dataclass(frozen=True)
class VideoInfo:
    container: ContainerKind
    size_bytes: int
    video_codec: str
    width: int
    height: int
    frame_count: int
    duration_s: float
    average_fps: float
    is_vfr: bool
    time_base: Fraction  # of the video stream; start_pts and end_pts count in it
    start_pts: int
    end_pts: int  # where the last frame stops showing
    audio: tuple[AudioInfo, ...]


def probe_video(path: Path, limits: VideoLimits) -> VideoInfo:
    """Report on the video at `path`, a local file the gateway wrote.

    Raises BadRequest (empty, malformed, truncated, unreadable, too slow to read),
    UnsupportedMediaType (not an allowed video container, no video stream) and PayloadTooLarge
    (a limit; the message names its setting).
    """
    size = check_regular_file(path, limits.max_bytes)
    with path.open("rb") as file:
        kind = sniff_container(file.read(HEAD_BYTES))
        check_complete(file, kind, size)
    with open_input(path, kind, timeout_s=limits.probe_timeout_s) as container:
        return read_info(container, kind, size, limits)


def check_regular_file(path: Path, max_bytes: int) -> int:
    """The file's size; a FIFO or device would block or never end, so only regular files pass."""
    try:
        info = os.stat(path)
    except OSError as error:
        raise BadRequest("the uploaded video could not be read") from error
    if not stat.S_ISREG(info.st_mode):
        raise BadRequest("the upload is not a regular file")
    if info.st_size == 0:
        raise BadRequest("empty file")
    if info.st_size > max_bytes:
        raise PayloadTooLarge(
            f"video is {info.st_size} bytes; the limit (video_max_bytes) is {max_bytes} bytes"
        )
    return info.st_size


def open_input(path: Path, kind: ContainerKind, *, timeout_s: float) -> InputContainer:
    """Open a local file with its sniffed demuxer and no protocol but `file`.

    The `file:` prefix keeps a name containing a colon from being read as another protocol;
    the whitelists also bind any file a demuxer would open on its own (external references).
    """
    options = {
        "protocol_whitelist": "file",
        "format_whitelist": DEMUXERS[kind],
    }
    if kind in ("mp4", "mov", "m4v"):
        options["enable_drefs"] = "0"  # never follow a movie's references to other files
    try:
        return av.open(
            f"file:{path.resolve()}",
            mode="r",
            format=DEMUXERS[kind],
            container_options=options,
            # Tags are the client's text; a broken one must not fail the file (strict would).
            metadata_errors="replace",
            timeout=timeout_s,
        )
    except av.FFmpegError as error:
        raise ffmpeg_failure(error, "open") from error


def ffmpeg_failure(error: av.FFmpegError, action: str) -> BadRequest:
    """The 400 for input FFmpeg rejected, with its reason when it is plain words (its messages
    end with the file's path, which is ours and not the client's business)."""
    reason = getattr(error, "strerror", None) or ""
    if not isinstance(reason, str) or not _PLAIN_REASON.fullmatch(reason):
        reason = "the data is not a valid video"
    return BadRequest(f"could not {action} the video: {reason}")


def read_info(
    container: InputContainer, kind: ContainerKind, size: int, limits: VideoLimits
) -> VideoInfo:
    video = first_video_stream(container)
    check_dimensions(video.width, video.height, limits)
    check_declared(container, video, limits)
    audio_streams = audio_streams_of(container)
    spans = scan_packets(container, video, audio_streams, limits)
    frames = spans[video.index]
    if frames.count == 0 or frames.start is None or frames.end is None:
        raise BadRequest("the video stream holds no frames")
    # An MP4's sample table lists every frame; an AVI's index also lists the empty chunks its
    # demuxer skips, so only the first is compared.
    if kind in _SAMPLE_TABLE_KINDS and frames.count < video.frames:
        raise BadRequest(
            f"the video file is truncated: its header lists {video.frames} frames "
            f"but it holds {frames.count}"
        )
    check_declared_duration_reached(container, list(spans.values()))
    duration_s = float((frames.end - frames.start) * frames.time_base)
    if duration_s > limits.max_duration_s:
        raise PayloadTooLarge(duration_message(duration_s, limits.max_duration_s))
    return VideoInfo(
        container=kind,
        size_bytes=size,
        video_codec=video.codec_context.codec.canonical_name,
        width=video.width,
        height=video.height,
        frame_count=frames.count,
        duration_s=duration_s,
        average_fps=frames.count / duration_s if duration_s > 0 else 0.0,
        is_vfr=frames.varies(),
        time_base=frames.time_base,
        start_pts=frames.start,
        end_pts=frames.end,
        audio=tuple(audio_info(stream, spans[stream.index]) for stream in audio_streams),
    )


def first_video_stream(container: InputContainer) -> VideoStream:
    if not container.streams.video:
        raise UnsupportedMediaType("the file has no video stream")
    video = container.streams.video[0]
    if video.codec_context is None:  # PyAV's word for "FFmpeg has no decoder for this codec"
        raise UnsupportedMediaType("the video stream's codec is not supported")
    return video


def audio_streams_of(container: InputContainer) -> tuple[AudioStream, ...]:
    streams = tuple(container.streams.audio)
    if any(stream.codec_context is None for stream in streams):
        raise UnsupportedMediaType("an audio stream's codec is not supported")
    return streams


def check_dimensions(width: int, height: int, limits: VideoLimits) -> None:
    if width < 1 or height < 1:
        raise BadRequest(f"the video has no pixels ({width}×{height})")
    if max(width, height) > limits.max_side:
        raise PayloadTooLarge(
            f"video is {width}×{height}; the limit (video_max_side) is {limits.max_side} pixels"
            " a side"
        )
    if width * height > limits.max_pixels:
        raise PayloadTooLarge(
            f"video is {width}×{height} = {width * height} pixels a frame; the limit "
            f"(video_max_pixels) is {limits.max_pixels}"
        )


def check_declared(container: InputContainer, video: VideoStream, limits: VideoLimits) -> None:
    """Refuse on the header's word alone, before reading every packet, when it says too long."""
    if container.duration is not None and container.duration > 0:
        declared_s = container.duration / _AV_TIME_BASE
        if declared_s > limits.max_duration_s:
            raise PayloadTooLarge(duration_message(declared_s, limits.max_duration_s))
    if video.frames > limits.max_frames:
        raise PayloadTooLarge(frames_message(video.frames, limits.max_frames))


def duration_message(duration_s: float, limit_s: float) -> str:
    return f"video is {duration_s:.1f} s long; the limit (video_max_duration_s) is {limit_s:g} s"


def frames_message(frames: int, limit: int) -> str:
    return f"video has {frames} frames or more; the limit (video_max_frames) is {limit}"


@dataclass
class PacketSpan:
    """What one pass over a stream's packets says: how many, from when, to when (in the
    stream's time base)."""

    time_base: Fraction
    keep_times: bool = False
    count: int = 0
    start: int | None = None
    end: int | None = None
    times: list[int] = field(default_factory=list)

    def add(self, pts: int, duration: int) -> None:
        self.count += 1
        self.start = pts if self.start is None else min(self.start, pts)
        self.end = pts + duration if self.end is None else max(self.end, pts + duration)
        if self.keep_times:
            self.times.append(pts)

    def end_s(self) -> float:
        return 0.0 if self.end is None else float(self.end * self.time_base)

    def duration_s(self) -> float:
        """From the first sample shown: packets before 0 (an encoder's priming) are skipped
        by players, so they do not count."""
        if self.start is None or self.end is None:
            return 0.0
        return float((self.end - max(self.start, 0)) * self.time_base)

    def varies(self) -> bool:
        """True when the gaps between frames differ (a variable frame rate)."""
        ordered = sorted(self.times)
        steps = sorted({b - a for a, b in itertools.pairwise(ordered) if b > a})
        if len(steps) < 2:
            return False
        return steps[-1] - steps[0] > max(1, _VFR_TOLERANCE * steps[0])


def scan_packets(
    container: InputContainer,
    video: VideoStream,
    audio: tuple[AudioStream, ...],
    limits: VideoLimits,
) -> dict[int, PacketSpan]:
    """One demuxing pass (no decoding) over the video and audio streams, bounded in frames and
    in time. FFmpeg's errors and packets it flags corrupt are the client's bad data."""
    spans = {video.index: PacketSpan(stream_time_base(video), keep_times=True)}
    spans |= {stream.index: PacketSpan(stream_time_base(stream)) for stream in audio}
    frames = spans[video.index]
    deadline = time.monotonic() + limits.probe_timeout_s
    try:
        for seen, packet in enumerate(container.demux(video, *audio)):
            if seen % _DEADLINE_EVERY == 0 and time.monotonic() > deadline:
                raise BadRequest(
                    "reading the video took longer than the limit (video_probe_timeout_s) of "
                    f"{limits.probe_timeout_s:g} s"
                )
            if packet.is_corrupt:
                raise BadRequest("the video holds a corrupt packet")
            pts = packet.pts if packet.pts is not None else packet.dts
            if pts is None:  # the flushing packet each stream ends with
                continue
            if packet.size > 0:
                spans[packet.stream.index].add(pts, max(packet.duration or 0, 0))
            if frames.count > limits.max_frames:
                raise PayloadTooLarge(frames_message(frames.count, limits.max_frames))
    except av.FFmpegError as error:
        raise ffmpeg_failure(error, "read") from error
    return spans


def stream_time_base(stream: VideoStream | AudioStream) -> Fraction:
    return stream.time_base or Fraction(1, _AV_TIME_BASE)


def check_declared_duration_reached(container: InputContainer, spans: list[PacketSpan]) -> None:
    """A container that states its duration (Matroska writes it at the end) but whose packets
    stop well before it has lost its tail, which its sizes alone may not show."""
    if container.duration is None or container.duration <= 0:
        return
    declared_s = container.duration / _AV_TIME_BASE
    reached_s = max((span.end_s() for span in spans), default=0.0)
    if reached_s + max(_DURATION_SLACK_S, 0.05 * declared_s) < declared_s:
        raise BadRequest(
            f"the video file is truncated: it declares {declared_s:.2f} s but its streams "
            f"stop at {reached_s:.2f} s"
        )


def audio_info(stream: AudioStream, span: PacketSpan) -> AudioInfo:
    context = stream.codec_context
    return AudioInfo(
        index=stream.index,
        codec=context.codec.canonical_name,
        sample_rate=context.sample_rate,
        channels=context.channels,
        duration_s=span.duration_s(),
    )
