"""Face swapping from the clients: FacetRestClient's FaceFusion calls (/process/image,
/process/video, /status polling, /download, /output, /processors) and `facet swap` /
`facet processors`, over httpx.MockTransport (no server)."""

from __future__ import annotations

import functools
import json
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

import clients.rest
from clients.cli import build_parser, main
from clients.errors import (
    BadRequestError,
    JobFailedError,
    NotFoundError,
    ServerError,
)
from clients.rest import VIDEO_TIMEOUT_S, FacetRestClient
from tests.unit.test_clients import (
    BASE,
    Handler,
    Terminal,
    form_fields,
    png,
    scripted,
    status_body,
)

WARNING = "arcface_w600k_r50, swap_latent, inswapper_128: synthetic weights: not meaningful"
OUTPUT = "3f2a9c1e-0000-4000-8000-000000000001"
IMAGE_ANSWER = {
    "job_id": "api_20250101_120000_abc123",
    "status": "completed",
    "output_path": f".api_outputs/{OUTPUT}.png",
    "processing_time": 1.5,
    "faces_detected": 2,
    "faces_processed": 2,
    "execution_providers": ["cpu"],
    "warning": WARNING,
}
OUTCOME = {
    "frames": 18,
    "fps": 12.0,
    "size": [160, 160],
    "video_codec": "h264",
    "audio": "copied",
    "faces_detected": 18,
    "faces_processed": 17,
}


def mp4_head() -> bytes:
    """The first bytes of an MP4: an ftyp box with the isom brand, then a box of nothing."""
    ftyp = struct.pack(">I", 20) + b"ftypisom" + b"\x00\x00\x02\x00" + b"mp41"
    return ftyp + struct.pack(">I", 8) + b"free"


def request_json(request: httpx.Request) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(form_fields(request)["request"][0])
    return loaded


@pytest.fixture
def sleeps() -> list[float]:
    return []


def rest_client(handler: Handler, sleeps: list[float]) -> FacetRestClient:
    return FacetRestClient(BASE, transport=httpx.MockTransport(handler), sleep=sleeps.append)


# The REST client --------------------------------------------------------------------------------


def test_process_image_sends_the_seeds_form_with_options_over_the_request(
    tmp_path: Path, sleeps: list[float]
) -> None:
    target = tmp_path / "group.jpg"
    target.write_bytes(b"\xff\xd8 target bytes")
    handler, seen = scripted(httpx.Response(200, json=IMAGE_ANSWER))
    with rest_client(handler, sleeps) as client:
        answer = client.process_image(
            target,
            b"\x89PNG face bytes",
            {"processors": ["face_swapper"], "face_swapper_weight": 0.2},
            face_swapper_weight=0.7,
            face_selector_mode="one",
        )
    assert answer == IMAGE_ANSWER
    request = seen[0]
    assert (request.method, request.url.path) == ("POST", "/process/image")
    assert request_json(request) == {
        "processors": ["face_swapper"],
        "face_swapper_weight": 0.7,
        "face_selector_mode": "one",
    }
    assert b'name="target"; filename="group.jpg"' in request.content
    assert b'name="source"; filename="source"' in request.content
    assert b"target bytes" in request.content and b"face bytes" in request.content


def test_process_image_without_a_request_lets_the_server_choose(sleeps: list[float]) -> None:
    handler, seen = scripted(httpx.Response(200, json=IMAGE_ANSWER))
    with rest_client(handler, sleeps) as client:
        client.process_image(b"\xff\xd8", filename="t.jpg")
    assert form_fields(seen[0]) == {}  # no `request`: the server's face_swapper defaults
    assert b'name="source"' not in seen[0].content


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (400, "BadRequest", BadRequestError),
        (415, "UnsupportedMediaType", BadRequestError),
        (413, "PayloadTooLarge", BadRequestError),
        (502, "UpstreamError", ServerError),
    ],
)
def test_refusals_of_a_swap_are_typed_errors_with_the_servers_words(
    status: int, error: str, expected: type[Exception], sleeps: list[float]
) -> None:
    refusal = httpx.Response(
        status, json={"detail": "face_swapper needs a 'source'", "error": error}
    )
    handler, _ = scripted(refusal)
    with rest_client(handler, sleeps) as client, pytest.raises(expected, match="needs a"):
        client.process_image(b"\xff\xd8")


def test_a_busy_swap_is_retried_after_retry_after(sleeps: list[float]) -> None:
    busy = httpx.Response(503, json={"detail": "slots busy", "error": "Overloaded"})
    busy.headers["Retry-After"] = "5"
    handler, seen = scripted(busy, httpx.Response(200, json=IMAGE_ANSWER))
    with rest_client(handler, sleeps) as client:
        assert client.process_image(b"\xff\xd8", b"face")["status"] == "completed"
    assert sleeps == [5.0] and len(seen) == 2
    assert b"face" in seen[1].content  # the upload is sent again whole


def test_process_video_waits_for_the_seeds_answer_by_default(sleeps: list[float]) -> None:
    done = {**IMAGE_ANSWER, "output_path": f".api_outputs/{OUTPUT}.mp4", "frames": 18}
    handler, seen = scripted(httpx.Response(200, json=done))
    with rest_client(handler, sleeps) as client:
        answer = client.process_video(b"video", b"face", output_video_fps=6)
    assert answer["frames"] == 18
    assert seen[0].url.path == "/process/video"
    assert request_json(seen[0]) == {"output_video_fps": 6}  # no "async"


def test_process_video_asynchronously_returns_the_queued_jobs_id(sleeps: list[float]) -> None:
    queued = {"job_id": "api_1", "status": "queued", "status_url": "/status/api_1"}
    handler, seen = scripted(httpx.Response(200, json=queued))
    with rest_client(handler, sleeps) as client:
        job_id = client.process_video(
            b"video", b"face", {"processors": ["face_swapper"]}, asynchronous=True
        )
    assert job_id == "api_1"
    assert request_json(seen[0]) == {"processors": ["face_swapper"], "async": True}


def test_a_synchronous_video_that_did_not_complete_raises_job_failed(sleeps: list[float]) -> None:
    handler, _ = scripted(httpx.Response(200, json={"job_id": "api_2", "status": "failed"}))
    with rest_client(handler, sleeps) as client, pytest.raises(JobFailedError) as raised:
        client.process_video(b"video", b"face")
    assert (raised.value.job_id, raised.value.job_status) == ("api_2", "failed")


def test_async_goes_through_the_argument_only(sleeps: list[float]) -> None:
    handler, seen = scripted()
    with rest_client(handler, sleeps) as client, pytest.raises(ValueError, match="asynchronous"):
        client.process_video(b"video", b"face", {"async": True})
    assert seen == []


def test_answers_without_the_job_id_or_the_output_are_server_errors(sleeps: list[float]) -> None:
    handler, _ = scripted(
        httpx.Response(200, json={"status": "queued"}),
        httpx.Response(200, json={"job_id": "api_3", "status": "completed"}),
        status_body("completed", 100),
    )
    with rest_client(handler, sleeps) as client:
        with pytest.raises(ServerError, match="job_id"):
            client.process_video(b"video", b"face", asynchronous=True)
        with pytest.raises(ServerError, match="output_path"):
            client.process_image(b"\xff\xd8", b"face")
        with pytest.raises(ServerError, match="output_path"):
            client.wait_for_video("j1")


def test_wait_for_video_polls_the_status_and_reports_each_document(sleeps: list[float]) -> None:
    handler, seen = scripted(
        status_body("queued", 0),
        status_body("processing", 50),
        status_body("completed", 100, output_path=f".api_outputs/{OUTPUT}.mp4", outcome=OUTCOME),
    )
    progress: list[int] = []
    with rest_client(handler, sleeps) as client:
        final = client.wait_for_video(
            "j1", on_progress=lambda body: progress.append(body["progress"])
        )
    assert progress == [0, 50, 100] and final["outcome"]["frames"] == 18
    assert all(request.url.path == "/status/j1" for request in seen)


def test_wait_for_video_raises_the_jobs_failure(sleeps: list[float]) -> None:
    handler, _ = scripted(status_body("failed", 40, error="the video's stream ended early"))
    with rest_client(handler, sleeps) as client, pytest.raises(JobFailedError, match="ended early"):
        client.wait_for_video("j1")


def test_video_requests_wait_longer_than_the_client_timeout(sleeps: list[float]) -> None:
    timeouts: list[dict[str, float | None]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"])
        return httpx.Response(200, json={"job_id": "j", "status": "queued"})

    with rest_client(handle, sleeps) as client:
        client.process_video(b"video", b"face", asynchronous=True)
    assert timeouts[0]["read"] == VIDEO_TIMEOUT_S and timeouts[0]["connect"] == 30.0


@pytest.mark.parametrize(
    "output",
    [f"{OUTPUT}.mp4", f".api_outputs/{OUTPUT}.mp4", f"{BASE}/download/{OUTPUT}.mp4"],
)
def test_download_output_takes_a_name_an_output_path_or_a_result_url(
    output: str, tmp_path: Path, sleeps: list[float]
) -> None:
    handler, seen = scripted(httpx.Response(200, content=b"MP4DATA"))
    with rest_client(handler, sleeps) as client:
        path = client.download_output(output, tmp_path / "out.mp4")
    assert path.read_bytes() == b"MP4DATA"
    assert seen[0].url.path == f"/download/{OUTPUT}.mp4" and seen[0].url.query == b""


def test_download_output_with_cleanup_asks_the_server_to_delete_it(
    tmp_path: Path, sleeps: list[float]
) -> None:
    handler, seen = scripted(httpx.Response(200, content=b"PNG"))
    with rest_client(handler, sleeps) as client:
        path = client.download_output(f".api_outputs/{OUTPUT}.png", tmp_path, cleanup=True)
    assert seen[0].url.params["cleanup"] == "true"
    assert path == tmp_path / f"{OUTPUT}.png"  # named without the query


def test_delete_output_and_its_refusals(sleeps: list[float]) -> None:
    deleted = {"message": "Output deleted", "filename": f"{OUTPUT}.png"}
    gone = httpx.Response(404, json={"detail": "Output not found", "error": "NotFound"})
    handler, seen = scripted(httpx.Response(200, json=deleted), gone)
    with rest_client(handler, sleeps) as client:
        assert client.delete_output(f".api_outputs/{OUTPUT}.png") == deleted
        with pytest.raises(NotFoundError, match="Output not found"):
            client.delete_output(f"{OUTPUT}.png")
        with pytest.raises(ValueError, match="not an output name"):
            client.delete_output(".api_outputs/..")
    assert [(r.method, r.url.path) for r in seen] == [("DELETE", f"/output/{OUTPUT}.png")] * 2


def test_processors_returns_the_servers_list(sleeps: list[float]) -> None:
    listed = [
        {"name": "face_swapper", "available": True, "warning": WARNING},
        {"name": "face_enhancer", "available": False},
    ]
    handler, _ = scripted(httpx.Response(200, json=listed), httpx.Response(200, json={"a": 1}))
    with rest_client(handler, sleeps) as client:
        assert client.processors() == listed
        with pytest.raises(ServerError, match="unexpected JSON"):
            client.processors()


# `facet swap` and `facet processors` over a mock gateway ----------------------------------------


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Callable[[Handler], list[httpx.Request]]:
    """Route the CLI's FacetRestClient to a handler; returns the requests it gets."""

    def install(handler: Handler) -> list[httpx.Request]:
        seen: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            request.read()
            seen.append(request)
            return handler(request)

        patched = functools.partial(
            FacetRestClient, transport=httpx.MockTransport(record), sleep=lambda _: None
        )
        monkeypatch.setattr(clients.rest, "FacetRestClient", patched)
        return seen

    return install


def image_gateway(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/process/image":
        return httpx.Response(200, json=IMAGE_ANSWER)
    if request.method == "DELETE":
        return httpx.Response(200, json={"message": "Output deleted", "filename": OUTPUT})
    disposition = {"content-disposition": f'attachment; filename="{OUTPUT}.png"'}
    return httpx.Response(200, content=png((40, 30)), headers=disposition)


def video_gateway(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    if path == "/process/video":
        return httpx.Response(200, json={"job_id": "api_v", "status": "queued"})
    if path == "/status/api_v":
        output = f".api_outputs/{OUTPUT}.mp4"
        body = {"output_path": output, "outcome": OUTCOME, "warning": WARNING}
        return status_body("completed", 100, **body)
    if request.method == "DELETE":
        return httpx.Response(200, json={"message": "Output deleted", "filename": OUTPUT})
    return httpx.Response(200, content=b"swapped video")


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    photo, face, clip = tmp_path / "group.png", tmp_path / "face.png", tmp_path / "clip.mp4"
    photo.write_bytes(png((40, 30)))
    face.write_bytes(png((16, 16)))
    clip.write_bytes(mp4_head() + b"\0" * 64)
    return {"photo": photo, "face": face, "clip": clip}


def swap(target: Path, face: Path, *extra: str) -> int:
    return main(
        ["swap", str(target), "--source", str(face), *extra, "--url", BASE, "--no-progress"]
    )


def test_facet_swap_on_a_photo_sends_the_options_in_facefusions_names(
    gateway, inputs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    seen = gateway(image_gateway)
    output = tmp_path / "out" / "swapped.png"
    argv = ["-o", str(output), "--enhance", "--weight", "0.7", "--selector", "one"]
    argv += ["--pixel-boost", "256", "--scale", "50", "--detector", "scrfd", "--score", "0.6"]
    assert swap(inputs["photo"], inputs["face"], *argv) == 0
    assert [(r.method, r.url.path) for r in seen] == [
        ("POST", "/process/image"),
        ("GET", f"/download/{OUTPUT}.png"),
        ("DELETE", f"/output/{OUTPUT}.png"),
    ]
    assert request_json(seen[0]) == {
        "processors": ["face_swapper", "face_enhancer"],
        "face_swapper_weight": 0.7,
        "face_selector_mode": "one",
        "face_swapper_pixel_boost": 256,
        "output_image_scale": 50,
        "face_detector_model": "scrfd",
        "face_detector_score": 0.6,
    }
    assert b'filename="group.png"' in seen[0].content
    assert Image.open(output).size == (40, 30)
    captured = capsys.readouterr()
    line = captured.out.strip()
    assert line.startswith(f"{output}: 40×30 PNG, 2 faces detected, 2 swapped via the gateway")
    assert IMAGE_ANSWER["job_id"] in line and line.endswith(" s)") and "\n" not in line
    assert f"facet: warning: {WARNING}" in captured.err
    assert sorted(p.name for p in output.parent.iterdir()) == ["swapped.png"]


def test_facet_swap_without_o_names_the_result_after_the_target_and_keep_keeps_it(
    gateway, inputs: dict[str, Path]
) -> None:
    seen = gateway(image_gateway)
    assert swap(inputs["photo"], inputs["face"], "--keep") == 0
    assert Image.open(inputs["photo"].with_name("group_swapped.png")).size == (40, 30)
    assert request_json(seen[0]) == {"processors": ["face_swapper"]}
    assert [r.method for r in seen] == ["POST", "GET"]  # nothing deleted


def test_facet_swap_converts_a_photo_to_the_format_of_o(
    gateway, inputs: dict[str, Path], tmp_path: Path
) -> None:
    gateway(image_gateway)
    output = tmp_path / "swapped.webp"
    assert swap(inputs["photo"], inputs["face"], "-o", str(output)) == 0
    with Image.open(output) as written:
        assert written.format == "WEBP" and written.size == (40, 30)


def test_facet_swap_on_a_video_follows_the_job_then_downloads_it(
    gateway, inputs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    seen = gateway(video_gateway)
    output = tmp_path / "clip_out.mp4"
    argv = ["-o", str(output), "--frame-enhance", "--scale", "50", "--fps", "6"]
    assert swap(inputs["clip"], inputs["face"], *argv) == 0
    assert [(r.method, r.url.path) for r in seen] == [
        ("POST", "/process/video"),
        ("GET", "/status/api_v"),
        ("GET", f"/download/{OUTPUT}.mp4"),
        ("DELETE", f"/output/{OUTPUT}.mp4"),
    ]
    assert request_json(seen[0]) == {
        "processors": ["face_swapper", "frame_enhancer"],
        "output_video_scale": 50,
        "output_video_fps": 6.0,
        "async": True,
    }
    assert output.read_bytes() == b"swapped video"
    captured = capsys.readouterr()
    line = captured.out.strip()
    assert line.startswith(f"{output}: 160×160 h264, 18 frames at 12.0 fps, sound copied, ")
    assert "18 faces detected, 17 swapped via the gateway (job api_v," in line
    assert "job api_v queued" in captured.err and f"facet: warning: {WARNING}" in captured.err


def test_a_video_without_o_is_named_after_the_target_with_the_servers_extension(
    gateway, inputs: dict[str, Path]
) -> None:
    gateway(video_gateway)
    assert swap(inputs["clip"], inputs["face"]) == 0
    assert inputs["clip"].with_name("clip_swapped.mp4").read_bytes() == b"swapped video"


def test_a_failed_video_job_exits_1_with_the_reason(
    gateway, inputs: dict[str, Path], capsys
) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/process/video":
            return httpx.Response(200, json={"job_id": "api_v", "status": "queued"})
        return status_body("failed", 30, error="Triton went away")

    gateway(handle)
    assert swap(inputs["clip"], inputs["face"]) == 1
    assert "Triton went away" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "extra", "words"),
    [
        ("photo", ["--fps", "24"], "--fps applies to videos only"),
        ("photo", ["-o", "out.mp4"], "cannot tell the output format"),
        ("clip", ["-o", "out.mkv"], "end -o in .mp4"),
        ("face", [], None),  # a readable photo: fine, the gateway is asked (refused below)
        ("text", [], "not a JPEG, PNG or WebP photo; as a video: unsupported video format"),
        ("missing", [], "no such file"),
    ],
)
def test_facet_swap_refuses_bad_input_before_sending_with_exit_2(
    target: str, extra: list[str], words: str | None, gateway, inputs: dict[str, Path], capsys
) -> None:
    text = inputs["photo"].with_name("notes.txt")
    text.write_text("not media")
    paths = {**inputs, "text": text, "missing": text.with_name("missing.png")}
    refusal = {"detail": "face_swapper: no face in the source", "error": "BadRequest"}
    seen = gateway(lambda request: httpx.Response(400, json=refusal))
    assert swap(paths[target], inputs["face"], *extra) == 2
    err = capsys.readouterr().err
    if words is None:
        assert len(seen) == 1 and "no face in the source" in err
    else:
        assert seen == [] and words in err


def test_an_unreachable_or_busy_gateway_exits_1(gateway, inputs: dict[str, Path], capsys) -> None:
    gateway(lambda request: httpx.Response(503, json={"detail": "inswapper_128 is not ready"}))
    assert swap(inputs["photo"], inputs["face"]) == 1
    assert "not ready" in capsys.readouterr().err


def test_a_result_that_cannot_be_deleted_is_only_a_note(gateway, inputs: dict[str, Path], capsys):
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(404, json={"detail": "Output not found", "error": "NotFound"})
        return image_gateway(request)

    gateway(handle)
    assert swap(inputs["photo"], inputs["face"]) == 0
    assert "the result stays on the server: Output not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["swap", "a.png"],  # no --source
        ["swap", "a.png", "--source", "f.png", "--selector", "all"],
        ["swap", "a.png", "--source", "f.png", "--pixel-boost", "300"],
        ["swap", "a.png", "--source", "f.png", "--scale", "5"],
        ["swap", "a.png", "--source", "f.png", "--weight", "2"],
        ["swap", "a.png", "--source", "f.png", "--detector", "yoloface"],
        ["swap", "a.png", "--source", "f.png", "--fps", "0"],
    ],
)
def test_bad_swap_usage_exits_2(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and "usage:" in capsys.readouterr().err


def test_swap_help_names_every_option_with_facefusions_name(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["swap", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option, name in (
        ("--enhance", "face_enhancer"),
        ("--frame-enhance", "frame_enhancer"),
        ("--weight", "face_swapper_weight"),
        ("--selector", "face_selector_mode"),
        ("--pixel-boost", "face_swapper_pixel_boost"),
        ("--scale", "output_video_scale"),
        ("--fps", "output_video_fps"),
        ("--detector", "face_detector_model"),
        ("--score", "face_detector_score"),
    ):
        assert option in text and f"{name}" in text
    assert "non-commercial" in text and "synthetic" in text and "examples:" in text
    with pytest.raises(SystemExit) as exited:
        main(["processors", "--help"])
    assert exited.value.code == 0 and "examples:" in capsys.readouterr().out
    args = build_parser().parse_args(["swap", "t.jpg", "--source", "f.jpg"])
    assert args.handler.__name__ == "run_swap" and args.weight is None and args.scale is None


def test_facet_processors_prints_a_table_or_the_json(gateway, capsys) -> None:
    listed = [
        {"name": "face_swapper", "available": True, "warning": WARNING},
        {"name": "frame_enhancer", "available": False},
    ]
    gateway(lambda request: httpx.Response(200, json=listed))
    assert main(["processors", "--url", BASE]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["PROCESSOR", "AVAILABLE", "WARNING"]
    assert lines[1].split()[:2] == ["face_swapper", "yes"] and WARNING in lines[1]
    assert lines[2].split() == ["frame_enhancer", "no", "-"]
    assert main(["processors", "--json", "--url", BASE]) == 0
    assert json.loads(capsys.readouterr().out) == listed


def test_facet_processors_on_an_unreachable_gateway_exits_1(gateway, capsys) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    gateway(refuse)
    assert main(["processors", "--url", BASE]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_ctrl_c_while_a_video_job_runs_cancels_it_and_exits_130(
    gateway, inputs: dict[str, Path], capsys
) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/process/video":
            return httpx.Response(200, json={"job_id": "api_v", "status": "queued"})
        if request.method == "DELETE":
            return httpx.Response(200, json={"message": "Job cancelled successfully"})
        raise KeyboardInterrupt

    seen = gateway(handle)
    assert swap(inputs["clip"], inputs["face"]) == 130
    assert [(r.method, r.url.path) for r in seen][-1] == ("DELETE", "/job/api_v")
    assert "cancelled job api_v" in capsys.readouterr().err


def test_a_video_jobs_progress_is_drawn_on_a_terminal(
    gateway, inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([status_body("processing", 40), status_body("processing", 80)])

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/status/api_v":
            return next(answers, None) or video_gateway(request)
        return video_gateway(request)

    gateway(handle)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    argv = ["swap", str(inputs["clip"]), "--source", str(inputs["face"]), "--url", BASE]
    assert main(argv) == 0
    drawn = terminal.getvalue()
    # tqdm redraws at most every 0.1 s, and these polls do not wait: the first and last show.
    assert "queued:   0%" in drawn and "completed: 100%" in drawn and "100/100" in drawn
