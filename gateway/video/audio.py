"""The input's first audio track, carried into the output: its packets copied unchanged when the
output container takes the codec, otherwise decoded and re-encoded to the container's usual
codec.

The track is read by a demuxer of its own on the same file, so the video side never passes
audio along and nothing waits in a queue: before each video frame is written, the audio up to
that frame's time is, and the muxer interleaves the two.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import av
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.packet import Packet

from gateway.errors import BadRequest
from gateway.video.probe import ffmpeg_failure, open_input, stream_time_base
from gateway.video.sniff import ContainerKind

AudioMode = Literal["copied", "re-encoded", "none"]
if TYPE_CHECKING:  # PyAV's Packet is generic in its stubs only
    AnyPacket = Packet[Any]
OutputKind = Literal["mp4", "webm"]

# What players accept in each container, and FFmpeg muxes without "experimental" flags.
COPYABLE: Final[dict[OutputKind, frozenset[str]]] = {
    "mp4": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "flac", "opus"}),
    "webm": frozenset({"opus", "vorbis"}),
}
ENCODERS: Final[dict[OutputKind, str]] = {"mp4": "aac", "webm": "libopus"}
# Opus runs at 48 kHz (or 8/12/16/24); AAC at the usual rates. Anything else is resampled.
ENCODER_RATES: Final[dict[OutputKind, frozenset[int]]] = {
    "mp4": frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 96000}),
    "webm": frozenset({48000}),
}
# libopus needs a channel mapping family past stereo; a face-swap result does not need 5.1.
_MAX_OPUS_CHANNELS: Final = 2


def audio_mode_for(codec: str | None, kind: OutputKind) -> AudioMode:
    if codec is None:
        return "none"
    return "copied" if codec in COPYABLE[kind] else "re-encoded"


class AudioTrack:
    """Copies or re-encodes the first audio stream of `path` into `output`; add it before the
    first packet is muxed (the header lists every stream)."""

    def __init__(
        self,
        path: Path,
        kind: ContainerKind,
        output: OutputContainer,
        output_kind: OutputKind,
        *,
        timeout_s: float,
    ) -> None:
        self._input = open_input(path, kind, timeout_s=timeout_s)
        try:
            self._source: AudioStream = self._input.streams.audio[0]
            self.mode = audio_mode_for(codec_name(self._source), output_kind)
            self._output = output
            self._target = self._add_output_stream(output, output_kind)
        except BaseException:
            self._input.close()
            raise
        self._time_base = stream_time_base(self._source)
        self._packets: Iterator[AnyPacket] = self._input.demux(self._source)
        self._pending: AnyPacket | None = None
        self._done = False

    def _add_output_stream(self, output: OutputContainer, kind: OutputKind) -> AudioStream:
        if self.mode == "copied":
            return output.add_stream_from_template(self._source)
        source = self._source.codec_context
        rate = source.sample_rate if source.sample_rate in ENCODER_RATES[kind] else 48000
        stream = output.add_stream(ENCODERS[kind], rate=rate)
        if not isinstance(stream, AudioStream):
            raise TypeError(f"{ENCODERS[kind]} did not make an audio stream")
        if kind == "webm" and source.channels > _MAX_OPUS_CHANNELS:
            stream.layout = "stereo"
        else:
            stream.layout = source.layout
        return stream

    def write_until(self, seconds: Fraction) -> None:
        """Write every source packet that starts before `seconds` (input time)."""
        while not self._done:
            packet = self._pending or self._next_packet()
            if packet is None:
                return
            start = packet.pts if packet.pts is not None else packet.dts
            if start is not None and start * self._time_base >= seconds:
                self._pending = packet
                return
            self._pending = None
            self._write(packet)

    def finish(self) -> None:
        """Write the rest of the track and flush the encoder."""
        while not self._done:
            packet = self._pending or self._next_packet()
            self._pending = None
            if packet is None:
                break
            self._write(packet)
        if self.mode == "re-encoded":
            self._mux(self._target.encode(None))

    def close(self) -> None:
        self._input.close()

    def _next_packet(self) -> AnyPacket | None:
        try:
            packet = next(self._packets, None)
        except av.FFmpegError as error:
            raise ffmpeg_failure(error, "read the audio of") from error
        if packet is None:
            self._done = True
        return packet

    def _write(self, packet: AnyPacket) -> None:
        if self.mode == "copied":
            if packet.size == 0:  # the demuxer's flushing packet carries nothing to copy
                return
            packet.stream = self._target
            self._mux([packet])
            return
        try:
            frames = self._source.decode(packet)  # the empty last packet flushes the decoder
        except av.FFmpegError as error:
            raise ffmpeg_failure(error, "decode the audio of") from error
        for frame in frames:
            self._mux(self._target.encode(in_samples(frame)))

    def _mux(self, packets: list[AnyPacket]) -> None:
        try:
            self._output.mux(packets)
        except av.FFmpegError as error:
            # Copied packets carry the input's timestamps; a muxer refusing them (timestamps
            # that go backwards) is the input's fault.
            raise BadRequest(
                f"the audio track could not be written: {error.strerror or 'invalid timestamps'}"
            ) from error


def codec_name(stream: AudioStream) -> str:
    """The codec's own name ("mp3"), not its decoder's ("mp3float")."""
    return stream.codec_context.codec.canonical_name


def in_samples(frame: AudioFrame) -> AudioFrame:
    """The frame timed in samples. Decoders stamp frames in the stream's time base (an MP3 in
    AVI counts whole 1152-sample frames), and PyAV's encoder, which re-cuts audio into its own
    frame size, then repeats timestamps the muxer refuses."""
    if frame.pts is not None and frame.time_base is not None and frame.sample_rate:
        frame.pts = round(frame.pts * frame.time_base * frame.sample_rate)
        frame.time_base = Fraction(1, frame.sample_rate)
    return frame
