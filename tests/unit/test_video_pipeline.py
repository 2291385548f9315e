"""The video layer end to end on real files that PyAV writes here: probing and its limits,
hostile uploads, and process_video keeping frames, timestamps and audio."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from gateway.errors import BadRequest, FacetError, PayloadTooLarge, UnsupportedMediaType
from gateway.settings import Settings
from gateway.video import pipeline
from gateway.video.pipeline import VideoOptions, VideoResult, process_video
from gateway.video.probe import VideoInfo, VideoLimits, probe_video
from gateway.video.reader import to_rgb, upright
from gateway.video.writer import VideoWriter
from tests.videos import VFR_GAPS, write_tone, write_video

Image = npt.NDArray[np.uint8]

WIDTH, HEIGHT = 128, 72
FRAMES, FPS = 60, 30
SAMPLE_RATE = 48_000
AAC_FRAME_S = 1024 / SAMPLE_RATE
OPUS_FRAME_S = 0.020


# Sample videos -------------------------------------------------------------------------


def pattern(index: int) -> Image:
    """A frame whose bright bar sits at x = 2·index, so a decoded frame tells its source."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[..., 0] = 200
    image[..., 1] = np.linspace(20, 120, WIDTH, dtype=np.uint8)[None, :]
    image[..., 2] = 40
    image[:, 2 * index : 2 * index + 2] = 255
    return image


def bar_position(image: Image) -> int:
    return int(np.argmax(image[..., 2].astype(np.int64).sum(axis=0))) // 2


@dataclass(frozen=True)
class Sample:
    container: str
    video_codec: str
    audio_codec: str | None
    vfr: bool = False
    faststart: bool = False
    audio_rate: int = SAMPLE_RATE
    audio_delay_s: float = 0.0
    layout: str = "mono"


def write_sample(path: Path, sample: Sample) -> None:
    write_video(
        path,
        [pattern(index) for index in range(FRAMES)],
        fps=FPS,
        container=sample.container,
        video_codec=sample.video_codec,
        audio_codec=sample.audio_codec,
        vfr=sample.vfr,
        faststart=sample.faststart,
        audio_rate=sample.audio_rate,
        audio_delay_s=sample.audio_delay_s,
        layout=sample.layout,
    )


SAMPLES = {
    "clip.mp4": Sample("mp4", "libx264", "aac"),
    "vfr.mp4": Sample("mp4", "libx264", "aac", vfr=True),
    "faststart.mp4": Sample("mp4", "libx264", "aac", faststart=True),
    "clip.webm": Sample("webm", "libvpx-vp9", "libopus"),
    "clip.mkv": Sample("matroska", "libx264", "aac"),
    "clip.avi": Sample("avi", "mpeg4", "libmp3lame"),
    "clip.mov": Sample("mov", "libx264", "aac"),
    "clip.m4v": Sample("ipod", "libx264", "aac"),  # FFmpeg's iPod muxer brands its files M4V
    "late.mp4": Sample(
        "mp4", "libx264", "aac", audio_rate=44_100, audio_delay_s=0.5, layout="stereo"
    ),
    "silent.mp4": Sample("mp4", "libx264", None),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    for name, sample in SAMPLES.items():
        write_sample(folder / name, sample)
    return folder


@pytest.fixture(autouse=True)
def no_thread_outlives_a_test() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 2.0
    while video_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not video_threads()


def video_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("facet-video")]


# Reading results back ------------------------------------------------------------------


def frame_times(path: Path) -> tuple[list[float], float]:
    """(each frame's time in seconds, the stream's tick in seconds)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        times = [float((f.pts or 0) * stream.time_base) for f in container.decode(stream)]
        return times, float(stream.time_base)


def decoded_frames(path: Path) -> list[Image]:
    with av.open(str(path)) as container:
        return [np.asarray(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]


def assert_same_times(got: Sequence[float], want: Sequence[float], tick_s: float) -> None:
    assert len(got) == len(want)
    assert max(abs(g - w) for g, w in zip(got, want, strict=True)) <= tick_s + 1e-9


def run(
    source: Path,
    target: Path,
    transform: pipeline.Transform | None = None,
    options: VideoOptions | None = None,
    **kwargs: object,
) -> VideoResult:
    return asyncio.run(
        process_video(source, target, transform or identity, options=options, **kwargs)  # type: ignore[arg-type]
    )


async def identity(frames: list[Image]) -> list[Image]:
    return frames


async def invert(frames: list[Image]) -> list[Image]:
    return [np.uint8(255) - frame for frame in frames]


# Probing -------------------------------------------------------------------------------


def test_probing_reports_the_streams_of_an_mp4(videos: Path) -> None:
    info = probe_video(videos / "clip.mp4", VideoLimits())

    assert (info.container, info.video_codec, info.width, info.height) == ("mp4", "h264", 128, 72)
    assert info.frame_count == FRAMES
    assert info.duration_s == pytest.approx(2.0)
    assert info.average_fps == pytest.approx(30.0)
    assert not info.is_vfr
    (audio,) = info.audio
    assert (audio.codec, audio.sample_rate, audio.channels) == ("aac", SAMPLE_RATE, 1)
    assert audio.duration_s == pytest.approx(2.0, abs=AAC_FRAME_S)


def test_probing_counts_the_frames_of_a_webm_whose_header_does_not(videos: Path) -> None:
    info = probe_video(videos / "clip.webm", VideoLimits())

    assert (info.container, info.video_codec, info.frame_count) == ("webm", "vp9", FRAMES)
    assert info.audio[0].codec == "opus"


def test_probing_sees_a_variable_frame_rate(videos: Path) -> None:
    info = probe_video(videos / "vfr.mp4", VideoLimits())

    assert info.is_vfr
    assert info.frame_count == FRAMES
    with av.open(str(videos / "vfr.mp4")) as container:
        last = list(container.decode(video=0))[-1]
    assert last.pts is not None and last.duration is not None
    assert info.end_pts == last.pts + last.duration  # the muxer's word for the last frame
    assert last.pts == sum(VFR_GAPS) * 20 - VFR_GAPS[-1]


@pytest.mark.parametrize(
    ("name", "container"),
    [("clip.mkv", "mkv"), ("clip.avi", "avi"), ("clip.mov", "mov"), ("clip.m4v", "m4v")],
)
def test_every_allowed_container_is_probed(videos: Path, name: str, container: str) -> None:
    info = probe_video(videos / name, VideoLimits())

    assert (info.container, info.frame_count) == (container, FRAMES)
    assert len(info.audio) == 1


def test_the_video_limits_default_to_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"FACET_{name.upper()}", raising=False)
    assert VideoLimits.from_settings(Settings()) == VideoLimits()


# Hostile uploads -----------------------------------------------------------------------


def write_bytes(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"just some text, renamed to look like a video\n" * 10, UnsupportedMediaType),
        (
            b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n",
            UnsupportedMediaType,
        ),
        (b"ffconcat version 1.0\nfile /etc/passwd\nfile clip.mp4\n", UnsupportedMediaType),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, UnsupportedMediaType),
        (b"", BadRequest),
    ],
    ids=["text", "hls", "ffconcat", "png", "empty"],
)
def test_what_is_not_a_video_is_refused_by_its_bytes(
    tmp_path: Path, data: bytes, error: type[FacetError]
) -> None:
    path = write_bytes(tmp_path, "upload.mp4", data)

    with pytest.raises(error) as caught:
        run(path, tmp_path / "out.mp4")
    assert type(caught.value) is error
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("name", ["clip.mp4", "faststart.mp4", "clip.webm", "clip.mkv", "clip.avi"])
def test_a_video_cut_in_half_is_a_bad_request(videos: Path, tmp_path: Path, name: str) -> None:
    data = (videos / name).read_bytes()
    path = write_bytes(tmp_path, name, data[: len(data) // 2])

    with pytest.raises(BadRequest) as caught:
        run(path, tmp_path / "out.mp4")
    assert type(caught.value) is BadRequest


def test_a_video_without_a_video_stream_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "tone.mp4"
    with av.open(str(path), "w", format="mp4") as output:
        audio = output.add_stream("aac", rate=SAMPLE_RATE)
        assert isinstance(audio, av.AudioStream)
        audio.layout = "mono"
        write_tone(output, audio, 0.5)

    with pytest.raises(UnsupportedMediaType, match="no video stream"):
        probe_video(path, VideoLimits())


@pytest.mark.parametrize("seed", range(4))
def test_corrupt_bytes_inside_a_video_end_in_a_bad_request_or_a_video(
    videos: Path, tmp_path: Path, seed: int
) -> None:
    data = bytearray((videos / "clip.mp4").read_bytes())
    rng = np.random.default_rng(seed)
    start = int(rng.integers(len(data) // 4, len(data) - 600))
    data[start : start + 512] = rng.integers(0, 256, 512, dtype=np.uint8).tobytes()
    path = write_bytes(tmp_path, "corrupt.mp4", bytes(data))

    try:
        run(path, tmp_path / "out.mp4")
    except FacetError as error:  # most often 400; 415 or 413 when a header field was hit
        assert 400 <= error.status < 500
        assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize(
    ("limits", "setting"),
    [
        (VideoLimits(max_bytes=10_000), "video_max_bytes"),
        (VideoLimits(max_duration_s=1.5), "video_max_duration_s"),
        (VideoLimits(max_frames=59), "video_max_frames"),
        (VideoLimits(max_side=100), "video_max_side"),
        (VideoLimits(max_pixels=128 * 71), "video_max_pixels"),
    ],
)
@pytest.mark.parametrize("name", ["clip.mp4", "clip.webm"])
def test_a_video_over_a_limit_is_refused_naming_it(
    videos: Path, tmp_path: Path, name: str, limits: VideoLimits, setting: str
) -> None:
    with pytest.raises(PayloadTooLarge, match=setting):
        run(videos / name, tmp_path / "out.mp4", options=VideoOptions(limits=limits))


def test_an_output_frame_rate_writing_too_many_frames_is_refused(
    videos: Path, tmp_path: Path
) -> None:
    options = VideoOptions(output_fps=120, limits=VideoLimits(max_frames=200))

    with pytest.raises(PayloadTooLarge, match="video_max_frames"):
        run(videos / "clip.mp4", tmp_path / "out.mp4", options=options)


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"output_scale": 5}, "output_video_scale"), ({"output_fps": 0}, "output_video_fps")],
)
def test_out_of_range_request_options_are_bad_requests(
    fields: dict[str, float], message: str
) -> None:
    with pytest.raises(BadRequest, match=message):
        VideoOptions(**fields)  # type: ignore[arg-type]


# Processing ----------------------------------------------------------------------------


def test_video_keeps_frame_count_and_timestamps(videos: Path, tmp_path: Path) -> None:
    source, target = videos / "clip.mp4", tmp_path / "out.mp4"
    result = run(source, target)

    want, tick = frame_times(source)
    got, out_tick = frame_times(target)
    assert_same_times(got, want, max(tick, out_tick))
    assert (result.frames_in, result.frames_out) == (FRAMES, FRAMES)
    assert (result.container, result.video_codec, result.audio) == ("mp4", "h264", "copied")
    assert result.duration_s == pytest.approx(2.0)
    info = probe_video(target, VideoLimits())
    assert (info.video_codec, info.width, info.height) == ("h264", WIDTH, HEIGHT)
    assert info.audio[0].codec == "aac"
    assert info.audio[0].duration_s == pytest.approx(2.0, abs=AAC_FRAME_S)


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_a_variable_frame_rate_video_keeps_its_irregular_timestamps(
    videos: Path, tmp_path: Path, suffix: str
) -> None:
    source, target = videos / "vfr.mp4", tmp_path / f"out{suffix}"
    run(source, target)

    want, tick = frame_times(source)
    got, out_tick = frame_times(target)
    assert_same_times(got, want, max(tick, out_tick))
    assert len({round(b - a, 2) for a, b in itertools.pairwise(got)}) == 3  # 22, 33, 67 ms
    assert probe_video(target, VideoLimits()).is_vfr


def test_frames_come_out_in_order_and_transformed(videos: Path, tmp_path: Path) -> None:
    source, target = videos / "clip.mp4", tmp_path / "out.mp4"
    run(source, target, invert)

    originals, inverted = decoded_frames(source), decoded_frames(target)
    assert [bar_position(np.uint8(255) - f) for f in inverted] == list(range(FRAMES))
    errors = [
        np.abs(255 - a.astype(int) - b).mean() for a, b in zip(originals, inverted, strict=True)
    ]
    assert max(errors) < 4


def test_a_webm_is_written_as_vp9_with_its_opus_audio_copied(videos: Path, tmp_path: Path) -> None:
    source, target = videos / "clip.webm", tmp_path / "out.webm"
    result = run(source, target)

    want, tick = frame_times(source)
    got, out_tick = frame_times(target)
    assert_same_times(got, want, max(tick, out_tick))
    assert (result.video_codec, result.audio) == ("vp9", "copied")
    info = probe_video(target, VideoLimits())
    assert (info.container, info.video_codec, info.audio[0].codec) == ("webm", "vp9", "opus")
    assert info.audio[0].duration_s == pytest.approx(2.0, abs=OPUS_FRAME_S)


def test_aac_audio_is_reencoded_to_opus_for_a_webm(videos: Path, tmp_path: Path) -> None:
    result = run(videos / "clip.mp4", tmp_path / "out.webm")

    assert result.audio == "re-encoded"
    audio = probe_video(tmp_path / "out.webm", VideoLimits()).audio[0]
    assert (audio.codec, audio.sample_rate) == ("opus", SAMPLE_RATE)
    assert audio.duration_s == pytest.approx(2.0, abs=OPUS_FRAME_S)


def test_mp3_audio_in_an_avi_is_copied_into_the_mp4(videos: Path, tmp_path: Path) -> None:
    result = run(videos / "clip.avi", tmp_path / "out.mp4")

    assert (result.frames_out, result.audio) == (FRAMES, "copied")
    assert probe_video(tmp_path / "out.mp4", VideoLimits()).audio[0].codec == "mp3"


def test_mp3_audio_is_reencoded_to_opus_for_a_webm(videos: Path, tmp_path: Path) -> None:
    result = run(videos / "clip.avi", tmp_path / "out.webm")

    assert (result.frames_out, result.audio) == (FRAMES, "re-encoded")
    audio = probe_video(tmp_path / "out.webm", VideoLimits()).audio[0]
    assert audio.codec == "opus"
    assert audio.duration_s == pytest.approx(2.0, abs=1152 / SAMPLE_RATE + OPUS_FRAME_S)


def first_audio_time(path: Path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        starts = (p.pts for p in container.demux(stream) if p.pts is not None and p.pts >= 0)
        assert stream.time_base is not None
        return float(next(starts) * stream.time_base)


def test_reencoded_audio_keeps_its_start_rate_change_and_channels(
    videos: Path, tmp_path: Path
) -> None:
    # AAC at 44.1 kHz in stereo that starts half a second in, to Opus (48 kHz only).
    result = run(videos / "late.mp4", tmp_path / "out.webm")

    assert result.audio == "re-encoded"
    audio = probe_video(tmp_path / "out.webm", VideoLimits()).audio[0]
    assert (audio.codec, audio.sample_rate, audio.channels) == ("opus", 48_000, 2)
    assert first_audio_time(tmp_path / "out.webm") == pytest.approx(
        first_audio_time(videos / "late.mp4"), abs=OPUS_FRAME_S
    )


def test_a_video_without_audio_stays_silent(videos: Path, tmp_path: Path) -> None:
    result = run(videos / "silent.mp4", tmp_path / "out.mp4")

    assert (result.frames_out, result.audio) == (FRAMES, "none")
    assert probe_video(tmp_path / "out.mp4", VideoLimits()).audio == ()


def test_a_lower_output_fps_keeps_the_nearest_frames(videos: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    result = run(videos / "clip.mp4", target, options=VideoOptions(output_fps=15))

    got, tick = frame_times(target)
    assert result.frames_out == 30
    assert_same_times(got, [k / 15 for k in range(30)], tick)
    assert [bar_position(f) for f in decoded_frames(target)] == list(range(0, FRAMES, 2))
    assert probe_video(target, VideoLimits()).audio[0].duration_s == pytest.approx(2.0, abs=0.03)


def test_a_higher_output_fps_repeats_frames(videos: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    result = run(videos / "clip.mp4", target, options=VideoOptions(output_fps=60))

    assert (result.frames_in, result.frames_out) == (FRAMES, 120)
    assert result.fps == pytest.approx(60.0)
    positions = [bar_position(f) for f in decoded_frames(target)]
    assert positions == [i // 2 for i in range(120)]


def test_an_output_fps_on_a_variable_frame_rate_gives_a_regular_one(
    videos: Path, tmp_path: Path
) -> None:
    target = tmp_path / "out.mp4"
    result = run(videos / "vfr.mp4", target, options=VideoOptions(output_fps=24))

    info = probe_video(target, VideoLimits())
    assert not info.is_vfr
    assert result.frames_out == info.frame_count == 58  # ceil(2.411 s × 24)
    assert info.average_fps == pytest.approx(24.0)


@pytest.mark.parametrize(("scale", "size"), [(50, (64, 36)), (155, (198, 112)), (10, (12, 8))])
def test_output_video_scale_resizes_to_even_sizes(
    videos: Path, tmp_path: Path, scale: int, size: tuple[int, int]
) -> None:
    target = tmp_path / "out.mp4"
    result = run(videos / "clip.mp4", target, options=VideoOptions(output_scale=scale))

    info = probe_video(target, VideoLimits())
    assert (result.width, result.height) == (info.width, info.height) == size
    assert info.frame_count == FRAMES


def test_a_transform_that_enlarges_frames_sets_the_output_size(
    videos: Path, tmp_path: Path
) -> None:
    async def double(frames: list[Image]) -> list[Image]:
        return [frame.repeat(2, axis=0).repeat(2, axis=1) for frame in frames]

    result = run(videos / "clip.mp4", tmp_path / "out.mp4", double)

    assert (result.width, result.height) == (2 * WIDTH, 2 * HEIGHT)


def test_the_transform_gets_windows_and_progress_counts_every_frame(
    videos: Path, tmp_path: Path
) -> None:
    sizes: list[int] = []
    reports: list[tuple[int, int]] = []

    async def record(frames: list[Image]) -> list[Image]:
        sizes.append(len(frames))
        return frames

    options = VideoOptions(window=16)
    result = run(
        videos / "clip.mp4",
        tmp_path / "out.mp4",
        record,
        options,
        progress=lambda *a: reports.append(a),
    )

    assert sizes == [16, 16, 16, 12]
    assert reports == [(n, FRAMES) for n in range(1, FRAMES + 1)]
    timings = result.timings
    assert timings.decode_s > 0 and timings.encode_s > 0 and timings.transform_s >= 0
    assert timings.total_s >= max(timings.decode_s, timings.encode_s)


# Failures stop every stage -------------------------------------------------------------


def test_a_transform_that_raises_stops_the_pipeline_promptly(videos: Path, tmp_path: Path) -> None:
    calls = 0

    async def fail_second(frames: list[Image]) -> list[Image]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("model crashed")
        return frames

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="model crashed"):
        run(videos / "clip.mp4", tmp_path / "out.mp4", fail_second)
    assert time.monotonic() - started < 5
    assert not video_threads()
    assert not (tmp_path / "out.mp4").exists()


def test_cancelling_process_video_ends_its_threads(videos: Path, tmp_path: Path) -> None:
    async def scenario() -> None:
        entered = asyncio.Event()

        async def hang(frames: list[Image]) -> list[Image]:
            entered.set()
            await asyncio.Event().wait()
            return frames

        task = asyncio.create_task(process_video(videos / "clip.mp4", tmp_path / "out.mp4", hang))
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert not video_threads()
    assert not (tmp_path / "out.mp4").exists()


def test_a_decoding_error_reaches_the_caller(
    videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = to_rgb
    seen = 0

    def fail_tenth(frame: av.VideoFrame) -> Image:
        nonlocal seen
        seen += 1
        if seen == 10:
            raise BadRequest("could not decode the video: broken frame")
        return real(frame)

    monkeypatch.setattr("gateway.video.pipeline.to_rgb", fail_tenth)
    with pytest.raises(BadRequest, match="broken frame"):
        run(videos / "clip.mp4", tmp_path / "out.mp4")


def test_an_encoding_error_reaches_the_caller(
    videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_write(self: object, image: Image, stamp: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(VideoWriter, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        run(
            videos / "clip.mp4",
            tmp_path / "out.mp4",
            options=VideoOptions(window=1, buffered_windows=1),
        )
    assert not (tmp_path / "out.mp4").exists()


def test_a_stalled_decoder_is_a_bad_request(
    videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = to_rgb

    def slow(frame: av.VideoFrame) -> Image:
        time.sleep(0.3)
        return real(frame)

    monkeypatch.setattr("gateway.video.pipeline.to_rgb", slow)
    options = VideoOptions(limits=VideoLimits(stall_timeout_s=0.1))
    with pytest.raises(BadRequest, match="video_stall_timeout_s"):
        run(videos / "clip.mp4", tmp_path / "out.mp4", options=options)


@pytest.mark.parametrize(
    "broken",
    [
        lambda frames: frames[:-1],
        lambda frames: [f[:, :, :2] for f in frames],
        lambda frames: [f.astype(np.float32) for f in frames],
        lambda frames: [f if i else f[:10] for i, f in enumerate(frames)],
    ],
    ids=["count", "channels", "dtype", "sizes"],
)
def test_a_transform_breaking_its_contract_is_a_value_error(
    videos: Path, tmp_path: Path, broken: object
) -> None:
    async def transform(frames: list[Image]) -> list[Image]:
        return broken(frames)  # type: ignore[operator,no-any-return]

    with pytest.raises(ValueError, match="transform"):
        run(videos / "clip.mp4", tmp_path / "out.mp4", transform)


def test_frames_are_turned_upright_by_their_rotation() -> None:
    image = np.arange(6, dtype=np.uint8).reshape(2, 3, 1).repeat(3, axis=2)

    assert upright(image, 0) is image
    assert upright(image, 90).shape == (3, 2, 3)
    assert (upright(image, -90)[..., 0] == np.rot90(image[..., 0], k=-1)).all()
    assert (upright(image, 180)[..., 0] == image[::-1, ::-1, 0]).all()


def test_the_output_may_not_overwrite_the_input(videos: Path) -> None:
    with pytest.raises(ValueError, match="overwrite"):
        run(videos / "clip.mp4", videos / "clip.mp4")


def test_the_result_carries_the_probe(videos: Path, tmp_path: Path) -> None:
    result = run(videos / "clip.webm", tmp_path / "out.mp4")

    assert isinstance(result.source, VideoInfo)
    assert result.source.container == "webm"
    assert result.audio == "copied"  # Opus goes into MP4 as is
