"""Videos with sound that the tests write themselves with PyAV: any frames, a 440 Hz tone,
constant or variable frame rate, in any container FFmpeg writes."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
SAMPLE_RATE = 48_000
VFR_TIME_BASE = Fraction(1, 90_000)
# Frame durations cycled through for a variable-rate video: 22, 33 and 67 ms in 1/90000 ticks.
VFR_GAPS = (2000, 3000, 6000)


def write_video(
    path: Path,
    frames: Sequence[Image],
    *,
    fps: int = 12,
    container: str = "mp4",
    video_codec: str = "libx264",
    audio_codec: str | None = "aac",
    vfr: bool = False,
    faststart: bool = False,
    audio_rate: int = SAMPLE_RATE,
    audio_delay_s: float = 0.0,
    layout: str = "mono",
) -> list[float]:
    """Write `frames` (H×W×3 RGB, even sizes) and, with `audio_codec`, a tone lasting until the
    video ends; returns each frame's presentation time in seconds. `vfr` times the frames by
    VFR_GAPS instead of 1/fps."""
    options = {"movflags": "+faststart"} if faststart else {}
    times: list[float] = []
    with av.open(str(path), "w", format=container, options=options) as output:
        video = output.add_stream(video_codec, rate=fps)
        assert isinstance(video, av.VideoStream)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        time_base = VFR_TIME_BASE if vfr else Fraction(1, fps)
        video.codec_context.time_base = time_base
        audio = output.add_stream(audio_codec, rate=audio_rate) if audio_codec else None
        if isinstance(audio, av.AudioStream):
            audio.layout = layout
        pts = 0
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            gap = VFR_GAPS[index % len(VFR_GAPS)] if vfr else 1
            frame.pts, frame.duration, frame.time_base = pts, gap, time_base
            times.append(float(pts * time_base))
            pts += gap
            output.mux(video.encode(frame))
        output.mux(video.encode(None))
        if isinstance(audio, av.AudioStream):
            write_tone(output, audio, float(pts * time_base), delay_s=audio_delay_s)
    return times


def write_tone(
    output: av.container.OutputContainer,
    audio: av.AudioStream,
    seconds: float,
    *,
    delay_s: float = 0.0,
) -> None:
    """A 440 Hz tone from `delay_s` to `seconds`, in the stream's rate and layout."""
    rate, channels = audio.sample_rate, audio.layout.nb_channels
    first, total = round(delay_s * rate), round(seconds * rate)
    for start in range(first, total, 1024):
        t = np.arange(start, min(start + 1024, total)) / rate
        samples = np.repeat(
            (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], channels, 0
        )
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout=audio.layout.name)
        frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
        output.mux(audio.encode(frame))
    output.mux(audio.encode(None))


def read_video(path: Path) -> tuple[list[float], list[Image], float | None]:
    """Each frame's time in seconds, the frames, and where the audio stream ends (None: no
    audio)."""
    times: list[float] = []
    images: list[Image] = []
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        for frame in container.decode(video):
            times.append(float((frame.pts or 0) * (frame.time_base or 0)))
            images.append(np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8))
    return times, images, audio_end(path)


def audio_end(path: Path) -> float | None:
    """Where the first audio stream's last packet ends, in seconds (None: no audio)."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        base = stream.time_base or Fraction(1, SAMPLE_RATE)
        end = 0.0
        for packet in container.demux(stream):
            if packet.pts is not None and packet.duration:
                end = max(end, float((packet.pts + packet.duration) * base))
        return end
