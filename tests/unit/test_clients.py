"""The clients' pure logic: the `facet` argument parser and exit codes, the mapping of gateway
answers and Triton errors to client errors, Retry-After handling, job polling and downloads,
the restoration, batch and quality calls, and `facet restore` (over httpx.MockTransport, no
server)."""

from __future__ import annotations

import argparse
import functools
import io
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.utils.shared_memory as shm
from PIL import Image
from tritonclient.utils import InferenceServerException

import clients
import clients.rest
from clients.cli import build_parser, format_table, main
from clients.errors import (
    BadRequestError,
    DeadlineExceededError,
    FacetClientError,
    JobFailedError,
    NotFoundError,
    OverloadedError,
    RateLimitedError,
    ServerError,
    UnavailableError,
)
from clients.rest import (
    RESTORE_TIMEOUT_S,
    BatchAccepted,
    FacetRestClient,
    Restoration,
    error_from_response,
    parse_retry_after,
)
from clients.triton_grpc import FacetTritonClient, ensemble_for, map_grpc_error
from triton_core.shared_memory import plan_region

COMMANDS = ["upscale", "models", "status", "cancel", "health", "restore"]
BASE = "http://gateway.test"
Handler = Callable[[httpx.Request], httpx.Response]


# The command line -------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"]] + [[command, "--help"] for command in COMMANDS])
def test_every_help_exits_0_and_shows_examples(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "examples" in text and "facet" in text
    if argv[0] == "restore":
        for option in (
            "--version",
            "--upscale",
            "--weight",
            "--only-center-face",
            "--background-enhance",
            "--detector {mtcnn,scrfd}",
            "--detector-score",
            "gfpgan_v1_4",
        ):
            assert option in text
        assert "NOT bundled" in text and "synthetic" in text and "Apache-2.0" in text
        assert "not available yet" not in text.lower()
    if argv[0] == "upscale":
        for option in ("--via", "--scale", "--model", "--tile", "--shm", "--url", "(default: 4)"):
            assert option in text
        assert "--face-enhance" in text and "implies --via rest" in text


def test_upscale_arguments_and_defaults() -> None:
    args = build_parser().parse_args(["upscale", "in.jpg", "-o", "out.png"])
    assert args.handler.__name__ == "run_upscale"
    assert (args.input, args.output, args.scale, args.via) == (
        Path("in.jpg"),
        Path("out.png"),
        4,
        None,  # grpc, unless --face-enhance asks for the gateway
    )
    assert args.model is None and args.tile is None and not args.shm and args.url is None
    args = build_parser().parse_args(
        ["upscale", "a.png", "--scale", "2", "--via", "rest", "--url", "http://h:1"]
    )
    assert (args.scale, args.via, args.url) == (2, "rest", "http://h:1")
    grpc = ["upscale", "a.png", "--model", "realesr_general_x4v3", "--tile", "64", "--shm"]
    args = build_parser().parse_args([*grpc, "--tile-pad", "0", "--batch", "2"])
    assert (args.model, args.tile, args.tile_pad, args.batch, args.shm) == (
        "realesr_general_x4v3",
        64,
        0,
        2,
        True,
    )


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["upscale"],
        ["upscale", "a.png", "--scale", "3"],
        ["upscale", "a.png", "--via", "http"],
        ["upscale", "a.png", "--tile", "0"],
        ["upscale", "a.png", "--tile-pad", "-1"],
        ["upscale", "a.png", "--timeout", "0"],
        ["status"],
        ["frobnicate"],
        ["restore"],
        ["restore", "a.png", "--upscale", "5"],
        ["restore", "a.png", "--weight", "1.5"],
        ["restore", "a.png", "--detector", "retinaface"],
        ["restore", "a.png", "--detector-score", "0"],
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_restore_arguments_default_to_sending_only_what_was_asked() -> None:
    args = build_parser().parse_args(["restore", "in.jpg", "-o", "out.png"])
    assert args.handler.__name__ == "run_restore"
    assert (args.version, args.upscale, args.weight, args.detector, args.detector_score) == (
        "1.4",
        2,
        None,
        None,
        None,
    )
    assert not args.only_center_face and not args.background_enhance
    argv = ["restore", "in.jpg", "--upscale", "1", "--weight", "0.7", "--detector", "scrfd"]
    args = build_parser().parse_args([*argv, "--detector-score", "0.5", "--only-center-face"])
    assert (args.upscale, args.weight, args.detector, args.detector_score) == (
        1,
        0.7,
        "scrfd",
        0.5,
    )
    assert args.only_center_face


def test_upscale_refuses_bad_input_with_exit_2(tmp_path: Path, capsys) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"not an image at all")
    cases = {
        "no such file": ["upscale", str(tmp_path / "missing.png")],
        "unsupported image format": ["upscale", str(image)],
        "end it in .png": ["upscale", str(image), "-o", str(tmp_path / "out.tiff")],
        "only apply to --via grpc": ["upscale", str(image), "--via", "rest", "--tile", "64"],
        "--shm only apply": ["upscale", str(image), "--via", "rest", "--shm"],
        "use --via rest": ["upscale", str(image), "--face-enhance", "--via", "grpc"],
        "(--face-enhance runs on the gateway)": ["upscale", str(image), "--face-enhance", "--shm"],
        "not the gateway's URL": ["upscale", str(image), "--face-enhance", "--url", "h:8001"],
        "no such file:": ["restore", str(tmp_path / "missing.png")],
        "end it in .png,": ["restore", str(image), "-o", str(tmp_path / "out.gif")],
    }
    for expected, argv in cases.items():
        assert main(argv) == 2, argv
        assert expected in capsys.readouterr().err


def test_format_table_aligns_columns() -> None:
    table = format_table([("A", "BB", "C"), ("long", "x", "tail text")])
    assert table.splitlines() == ["A     BB  C", "long  x   tail text"]


# Gateway answers → client errors ----------------------------------------------------------------


def answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    request = httpx.Request("GET", f"{BASE}/x")
    if body is None:
        return httpx.Response(status, headers=headers, request=request)
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "error", "expected", "exit_code"),
    [
        (400, "BadRequest", BadRequestError, 2),
        (413, "PayloadTooLarge", BadRequestError, 2),
        (415, "UnsupportedMediaType", BadRequestError, 2),
        (404, "NotFound", NotFoundError, 2),
        (429, "RateLimited", RateLimitedError, 1),
        (503, "Overloaded", OverloadedError, 1),
        (503, "ModelNotReady", UnavailableError, 1),
        (504, "UpstreamTimeout", DeadlineExceededError, 1),
        (502, "UpstreamError", ServerError, 1),
        (500, "FacetError", ServerError, 1),
    ],
)
def test_error_answers_map_to_typed_errors_with_the_servers_detail(
    status: int, error: str, expected: type[FacetClientError], exit_code: int
) -> None:
    mapped = error_from_response(answer(status, {"detail": "the words", "error": error}))
    assert type(mapped) is expected and mapped.exit_code == exit_code
    assert (mapped.detail, mapped.status, mapped.code) == ("the words", status, error)
    assert isinstance(mapped, FacetClientError)


def test_error_answers_without_the_gateways_body_still_say_something() -> None:
    plain = error_from_response(answer(502, "<html>Bad Gateway</html>"))
    assert type(plain) is ServerError and plain.detail.startswith("HTTP 502 Bad Gateway: <html>")
    empty = error_from_response(answer(503, None, **{"Retry-After": "7"}))
    assert type(empty) is UnavailableError and empty.retry_after == 7.0
    listed = error_from_response(answer(422, {"detail": [{"msg": "field required"}]}))
    assert type(listed) is BadRequestError and "field required" in listed.detail
    routed = error_from_response(answer(405, {"detail": "Method Not Allowed"}))
    assert type(routed) is BadRequestError and routed.code is None


def test_parse_retry_after_takes_seconds_and_http_dates() -> None:
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_retry_after(date, now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after(date, now=1445412490.0) == 0.0


# The REST client over a mock transport ----------------------------------------------------------


@pytest.fixture
def sleeps() -> list[float]:
    return []


def rest_client(handler: Handler, sleeps: list[float], **options: Any) -> FacetRestClient:
    return FacetRestClient(
        BASE, transport=httpx.MockTransport(handler), sleep=sleeps.append, **options
    )


def scripted(*responses: httpx.Response) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering with `responses` in turn; the requests it saw are recorded."""
    queue: Iterator[httpx.Response] = iter(responses)
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return next(queue)

    return handle, seen


def busy(status: int = 503, retry_after: str = "2") -> httpx.Response:
    error = "RateLimited" if status == 429 else "Overloaded"
    return httpx.Response(
        status, json={"detail": "busy", "error": error}, headers={"Retry-After": retry_after}
    )


def test_submit_retries_after_retry_after_then_succeeds(sleeps: list[float]) -> None:
    accepted = {"job_id": "j1", "status": "queued"}
    handler, seen = scripted(busy(503, "2"), busy(429, "1"), httpx.Response(200, json=accepted))
    with rest_client(handler, sleeps) as client:
        assert client.submit_upscale(b"\x89PNG...", scale=4, filename="p.png") == accepted
    assert sleeps == [2.0, 1.0] and len(seen) == 3
    body = seen[-1].content
    assert b'name="scale"\r\n\r\n4' in body and b'name="face_enhance"\r\n\r\nfalse' in body
    assert b'filename="p.png"' in body and seen[-1].url.path == "/upscale"


def test_retries_are_bounded(sleeps: list[float]) -> None:
    handler, seen = scripted(*[busy(429, "1")] * 10)
    with rest_client(handler, sleeps, max_retries=2) as client, pytest.raises(RateLimitedError):
        client.status("j1")
    assert sleeps == [1.0, 1.0] and len(seen) == 3


def test_a_retry_after_beyond_the_cap_is_raised_at_once(sleeps: list[float]) -> None:
    handler, seen = scripted(busy(503, "600"))
    with (
        rest_client(handler, sleeps, max_retry_wait_s=30) as client,
        pytest.raises(OverloadedError) as raised,
    ):
        client.metrics()
    assert sleeps == [] and len(seen) == 1 and raised.value.retry_after == 600.0


def test_other_errors_are_not_retried(sleeps: list[float]) -> None:
    handler, seen = scripted(
        httpx.Response(404, json={"detail": "Job not found", "error": "NotFound"})
    )
    with (
        rest_client(handler, sleeps) as client,
        pytest.raises(NotFoundError, match="Job not found"),
    ):
        client.cancel("gone")
    assert sleeps == [] and seen[0].method == "DELETE" and seen[0].url.path == "/job/gone"


def test_health_returns_the_unhealthy_document_without_retrying(sleeps: list[float]) -> None:
    handler, seen = scripted(httpx.Response(503, json={"status": "unhealthy", "triton": {}}))
    with rest_client(handler, sleeps) as client:
        assert client.health()["status"] == "unhealthy"
    assert sleeps == [] and len(seen) == 1


def test_unreachable_gateway_is_unavailable(sleeps: list[float]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    with rest_client(refuse, sleeps) as client, pytest.raises(UnavailableError, match="reach"):
        client.status("j1")


def status_body(state: str, progress: int, **extra: Any) -> httpx.Response:
    return httpx.Response(
        200, json={"job_id": "j1", "status": state, "progress": progress, **extra}
    )


def test_wait_polls_with_growing_pauses_until_completed(sleeps: list[float]) -> None:
    handler, seen = scripted(
        status_body("queued", 0),
        status_body("processing", 40),
        status_body("processing", 80),
        status_body("completed", 100, result_url=f"{BASE}/results/r1"),
    )
    progress: list[tuple[str, int]] = []
    with rest_client(handler, sleeps) as client:
        final = client.wait(
            "j1", progress=lambda body: progress.append((body["status"], body["progress"]))
        )
    assert final["result_url"] == f"{BASE}/results/r1"
    assert progress == [("queued", 0), ("processing", 40), ("processing", 80), ("completed", 100)]
    assert sleeps == sorted(sleeps) and len(sleeps) == 3 and max(sleeps) <= 2.0
    assert all(request.url.path == "/status/j1" for request in seen)


@pytest.mark.parametrize("state", ["failed", "cancelled"])
def test_wait_raises_when_the_job_does_not_complete(state: str, sleeps: list[float]) -> None:
    handler, _ = scripted(status_body(state, 30, error="Triton went away"))
    with rest_client(handler, sleeps) as client, pytest.raises(JobFailedError) as raised:
        client.wait("j1")
    assert raised.value.job_status == state and "Triton went away" in raised.value.detail


def test_wait_gives_up_after_its_timeout(sleeps: list[float]) -> None:
    handler, _ = scripted(status_body("processing", 10))
    with rest_client(handler, sleeps) as client, pytest.raises(DeadlineExceededError):
        client.wait("j1", timeout_s=0)


def test_job_ids_cannot_add_path_segments(sleeps: list[float]) -> None:
    handler, seen = scripted()
    with rest_client(handler, sleeps) as client, pytest.raises(ValueError):
        client.status("../results/x")
    assert seen == []


def test_download_names_the_file_as_the_server_does_and_leaves_no_partial(
    tmp_path: Path, sleeps: list[float]
) -> None:
    handler, seen = scripted(
        httpx.Response(
            200,
            content=b"PNGDATA",
            headers={"content-disposition": 'attachment; filename="p_upscaled_x2.png"'},
        ),
        httpx.Response(200, content=b"AGAIN"),
        httpx.Response(404, json={"detail": "Result not found or expired", "error": "NotFound"}),
    )
    with rest_client(handler, sleeps) as client:
        into_dir = client.download(f"{BASE}/results/r1", tmp_path)
        assert into_dir == tmp_path / "p_upscaled_x2.png" and into_dir.read_bytes() == b"PNGDATA"
        named = client.download("/results/r1", tmp_path / "sub" / "mine.png")
        assert named.read_bytes() == b"AGAIN"
        with pytest.raises(NotFoundError, match="expired"):
            client.download("/results/r2", tmp_path / "never.png")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["mine.png", "p_upscaled_x2.png", "sub"]
    assert seen[0].url == f"{BASE}/results/r1"


# Restoration, batch and quality over a mock transport --------------------------------------------


RESTORED = {
    "status": "success",
    "restoration_id": "r1",
    "original_size": [800, 600],
    "restored_size": [1600, 1200],
    "processing_time": 2.3,
    "download_url": "/download/r1",
    "faces_detected": 7,
    "faces_restored": 6,
    "warning": "gfpgan_v1_4: synthetic weights: outputs are not meaningful",
}


def form_fields(request: httpx.Request) -> dict[str, list[str]]:
    """The plain (non-file) fields of a multipart request, each name with all its values."""
    boundary = request.headers["content-type"].split("boundary=", 1)[1].encode()
    fields: dict[str, list[str]] = {}
    for part in request.content.split(b"--" + boundary)[1:-1]:
        head, _, value = part.strip(b"\r\n").partition(b"\r\n\r\n")
        if b"filename=" in head:
            continue
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        fields.setdefault(name, []).append(value.decode())
    return fields


def test_restore_sends_the_seeds_form_and_reads_every_field_of_the_answer(
    tmp_path: Path, sleeps: list[float]
) -> None:
    photo = tmp_path / "damaged_photo.jpg"
    photo.write_bytes(b"\xff\xd8 not really a jpeg")
    handler, seen = scripted(httpx.Response(200, json=RESTORED))
    with rest_client(handler, sleeps) as client:
        result = client.restore(photo)
    assert result == Restoration(
        status="success",
        restoration_id="r1",
        original_size=(800, 600),
        restored_size=(1600, 1200),
        processing_time=2.3,
        download_url="/download/r1",
        faces_detected=7,
        faces_restored=6,
        warning="gfpgan_v1_4: synthetic weights: outputs are not meaningful",
    )
    request = seen[0]
    assert (request.method, request.url.path) == ("POST", "/restore")
    assert form_fields(request) == {"version": ["1.4"], "upscale": ["2"]}  # nothing else sent
    assert b'name="file"; filename="damaged_photo.jpg"' in request.content
    assert b"not really a jpeg" in request.content


def test_restore_sends_each_option_given_in_the_gateways_spelling(sleeps: list[float]) -> None:
    handler, seen = scripted(httpx.Response(200, json=RESTORED))
    with rest_client(handler, sleeps) as client:
        client.restore(
            b"\x89PNG...",
            version="1.3",
            upscale=1,
            weight=0.25,
            only_center_face=True,
            background_enhance=False,
            face_detector_model="scrfd",
            face_detector_score=0.5,
            filename="p.png",
        )
    assert form_fields(seen[0]) == {
        "version": ["1.3"],
        "upscale": ["1"],
        "weight": ["0.25"],
        "only_center_face": ["true"],
        "background_enhance": ["false"],
        "face_detector_model": ["scrfd"],
        "face_detector_score": ["0.5"],
    }
    assert b'filename="p.png"' in seen[0].content


def test_restore_waits_longer_than_the_client_timeout_but_connects_as_usual(
    sleeps: list[float],
) -> None:
    handler, seen = scripted(httpx.Response(200, json=RESTORED), httpx.Response(200, json={}))
    with rest_client(handler, sleeps, timeout_s=5) as client:
        client.restore(b"x", timeout_s=123)
        client.metrics()
    restore_timeout, other_timeout = (request.extensions["timeout"] for request in seen)
    assert restore_timeout == {"connect": 5, "read": 123, "write": 123, "pool": 123}
    assert other_timeout == {"connect": 5, "read": 5, "write": 5, "pool": 5}
    assert RESTORE_TIMEOUT_S >= 60


def test_restore_answers_without_facets_extra_fields_still_parse(sleeps: list[float]) -> None:
    seed_only = {k: v for k, v in RESTORED.items() if not k.startswith(("faces", "warning"))}
    handler, _ = scripted(httpx.Response(200, json=seed_only))
    with rest_client(handler, sleeps) as client:
        result = client.restore(b"x")
    assert (result.faces_detected, result.faces_restored, result.warning) == (None, None, None)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"restoration_id": None}, "restoration_id"),
        ({"restored_size": [1600]}, "restored_size"),
        ({"processing_time": "2.3"}, "processing_time"),
        ({"faces_restored": True}, "faces_restored"),
    ],
)
def test_a_malformed_restoration_answer_is_a_server_error(
    change: dict[str, Any], expected: str, sleeps: list[float]
) -> None:
    handler, _ = scripted(httpx.Response(200, json={**RESTORED, **change}))
    with rest_client(handler, sleeps) as client, pytest.raises(ServerError, match=expected):
        client.restore(b"x")
    missing = {k: v for k, v in RESTORED.items() if k != "download_url"}
    handler, _ = scripted(httpx.Response(200, json=missing))
    with rest_client(handler, sleeps) as client, pytest.raises(ServerError, match="lacks"):
        client.restore(b"x")


def test_restore_retries_busy_slots_and_maps_refusals_to_typed_errors(
    sleeps: list[float],
) -> None:
    slots_busy = httpx.Response(
        503,
        json={"detail": "all restoration slots are busy", "error": "Overloaded"},
        headers={"Retry-After": "5"},
    )
    handler, seen = scripted(slots_busy, httpx.Response(200, json=RESTORED))
    with rest_client(handler, sleeps) as client:
        assert client.restore(b"x").restoration_id == "r1"
    assert sleeps == [5.0] and len(seen) == 2
    refusals: list[tuple[httpx.Response, type[FacetClientError], str]] = [
        (
            httpx.Response(
                400,
                json={"detail": "version '9.9' is not installed; installed: 1.4"},
            ),
            BadRequestError,
            "installed",
        ),
        (
            httpx.Response(415, json={"detail": "unsupported image format"}),
            BadRequestError,
            "unsupported",
        ),
        (
            httpx.Response(
                503,
                json={"detail": "model 'face_detect_mtcnn' is not ready", "error": "ModelNotReady"},
            ),
            UnavailableError,
            "face_detect_mtcnn",
        ),
        (
            httpx.Response(504, json={"detail": "Triton did not answer in time"}),
            DeadlineExceededError,
            "in time",
        ),
    ]
    for response, expected, words in refusals:
        handler, _ = scripted(*[response] * 4)
        with (
            rest_client(handler, sleeps, max_retries=0) as client,
            pytest.raises(expected, match=words),
        ):
            client.restore(b"x")


def test_restored_images_download_by_id_url_or_answer(tmp_path: Path, sleeps: list[float]) -> None:
    named = {"content-disposition": 'attachment; filename="damaged_photo_restored.png"'}
    handler, seen = scripted(
        httpx.Response(200, content=b"ONE"),
        httpx.Response(200, content=b"TWO"),
        httpx.Response(200, content=b"THREE"),
        httpx.Response(200, content=b"FOUR", headers=named),
        httpx.Response(404, json={"detail": "Restoration not found or expired"}),
    )
    with rest_client(handler, sleeps) as client:
        assert client.download_restored("r1") == b"ONE"
        assert client.download_restored(f"{BASE}/download/r2") == b"TWO"
        assert client.download_restored(Restoration.from_json(RESTORED)) == b"THREE"
        saved = client.save_restored("r4", tmp_path)
        assert saved == tmp_path / "damaged_photo_restored.png" and saved.read_bytes() == b"FOUR"
        with pytest.raises(NotFoundError, match="expired"):
            client.download_restored("/download/gone")
        with pytest.raises(ValueError):
            client.download_restored("../results/x")
    assert [r.url.path for r in seen] == [
        "/download/r1",
        "/download/r2",
        "/download/r1",
        "/download/r4",
        "/download/gone",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["damaged_photo_restored.png"]


def test_submit_batch_posts_the_seeds_json_and_reads_the_acceptance(sleeps: list[float]) -> None:
    accepted = {
        "status": "accepted",
        "batch_id": "b1",
        "estimated_completion": "2024-01-15T10:30:00Z",
        "status_url": "/batch/b1/status",
    }
    handler, seen = scripted(httpx.Response(200, json=accepted), httpx.Response(200, json=accepted))
    urls = ["https://example.com/photo1.jpg", "https://example.com/photo2.jpg"]
    settings = {"version": "1.4", "upscale": 2, "background_enhance": True}
    with rest_client(handler, sleeps) as client:
        assert client.submit_batch(urls, settings) == BatchAccepted(**accepted)
        client.submit_batch(iter(urls[:1]))
    assert (seen[0].method, seen[0].url.path) == ("POST", "/batch")
    assert seen[0].headers["content-type"] == "application/json"
    assert json.loads(seen[0].content) == {"image_urls": urls, "settings": settings}
    assert json.loads(seen[1].content) == {"image_urls": urls[:1]}  # the server's defaults


def test_submit_batch_refuses_no_urls_or_one_string_before_sending(sleeps: list[float]) -> None:
    handler, seen = scripted()
    with rest_client(handler, sleeps) as client:
        with pytest.raises(ValueError, match="at least one"):
            client.submit_batch([])
        with pytest.raises(TypeError, match="not one string"):
            client.submit_batch("https://example.com/photo1.jpg")
    assert seen == []


def test_batch_status_returns_the_servers_document_and_maps_unknown_batches(
    sleeps: list[float],
) -> None:
    document = {
        "batch_id": "b1",
        "status": "completed",
        "completed": 1,
        "failed": 1,
        "results": [
            {"url": "https://example.com/a.jpg", "status": "completed", "download_url": "/d/x"},
            {"url": "http://10.0.0.1/x.jpg", "status": "failed", "error": "not public"},
        ],
    }
    handler, seen = scripted(
        httpx.Response(200, json=document),
        httpx.Response(404, json={"detail": "Batch not found", "error": "NotFound"}),
    )
    with rest_client(handler, sleeps) as client:
        assert client.batch_status("b1") == document
        with pytest.raises(NotFoundError, match="Batch not found"):
            client.batch_status("nope")
        with pytest.raises(ValueError):
            client.batch_status("../status")
    assert [r.url.path for r in seen] == ["/batch/b1/status", "/batch/nope/status"]


def test_quality_sends_both_images_and_each_metric_wanted(sleeps: list[float]) -> None:
    answer_body = {"metrics": {"psnr": 31.2, "ssim": 0.91}, "analysis": {"quality_score": 8.5}}
    handler, seen = scripted(
        httpx.Response(200, json=answer_body),
        httpx.Response(200, json=answer_body),
        httpx.Response(
            400,
            json={
                "detail": "metrics ['lpips'] are not available on this server; available: "
                "['psnr', 'ssim']",
                "error": "BadRequest",
            },
        ),
    )
    with rest_client(handler, sleeps) as client:
        assert client.quality(b"A", b"B", ["psnr", "ssim"]) == answer_body
        assert client.quality(b"A", b"B") == answer_body
        with pytest.raises(BadRequestError, match="available"):
            client.quality(b"A", b"B", ["lpips"])
        with pytest.raises(TypeError):
            client.quality(b"A", b"B", "psnr")
    first = seen[0]
    assert (first.method, first.url.path) == ("POST", "/metrics")
    assert form_fields(first) == {"metrics[]": ["psnr", "ssim"]}
    assert b'name="original"; filename="original"' in first.content
    assert b'name="restored"; filename="restored"' in first.content
    assert form_fields(seen[1]) == {}  # the server picks what it has
    assert len(seen) == 3


def test_upscale_with_face_enhance_is_sent_as_the_gateway_spells_it(sleeps: list[float]) -> None:
    handler, seen = scripted(httpx.Response(200, json={"job_id": "j1", "status": "queued"}))
    with rest_client(handler, sleeps) as client:
        client.submit_upscale(b"x", scale=2, face_enhance=True)
    assert form_fields(seen[0]) == {"scale": ["2"], "face_enhance": ["true"]}


# The CLI over a mock gateway --------------------------------------------------------------------


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Callable[[Handler], None]:
    """Route the CLI's FacetRestClient to a handler instead of the network."""

    def install(handler: Handler) -> None:
        patched = functools.partial(
            FacetRestClient, transport=httpx.MockTransport(handler), sleep=lambda _: None
        )
        monkeypatch.setattr(clients.rest, "FacetRestClient", patched)

    return install


def test_cli_status_cancel_health_exit_codes(gateway, capsys) -> None:
    routes = {
        ("GET", "/status/j1"): status_body("failed", 20, error="model crashed"),
        ("GET", "/status/nope"): httpx.Response(404, json={"detail": "Job not found"}),
        ("DELETE", "/job/j1"): httpx.Response(
            400, json={"detail": "Job is already failed and cannot be cancelled"}
        ),
        ("GET", "/health"): httpx.Response(503, json={"status": "unhealthy", "version": "0.1"}),
        ("GET", "/metrics"): httpx.Response(500, text="Internal Server Error"),
    }
    gateway(lambda request: routes[(request.method, request.url.path)])
    assert main(["status", "j1", "--url", BASE]) == 0
    out = capsys.readouterr().out
    assert "job j1: failed 20%" in out and "error: model crashed" in out
    assert main(["status", "j1", "--json", "--url", BASE]) == 0
    assert json.loads(capsys.readouterr().out)["error"] == "model crashed"
    assert main(["status", "nope", "--url", BASE]) == 2
    assert "Job not found" in capsys.readouterr().err
    assert main(["cancel", "j1", "--url", BASE]) == 2
    assert "cannot be cancelled" in capsys.readouterr().err
    assert main(["health", "--url", BASE]) == 1
    assert "unhealthy" in capsys.readouterr().out


def test_cli_upscale_via_rest_reports_a_refused_upload(gateway, tmp_path: Path, capsys) -> None:
    image = tmp_path / "big.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    gateway(
        lambda request: httpx.Response(
            413, json={"detail": "upload too large: the limit is 15 MB", "error": "PayloadTooLarge"}
        )
    )
    assert main(["upscale", str(image), "--via", "rest", "--url", BASE, "--no-progress"]) == 2
    assert "the limit is 15 MB" in capsys.readouterr().err
    gateway(
        lambda request: httpx.Response(503, json={"detail": "full"}, headers={"Retry-After": "3"})
    )
    assert main(["upscale", str(image), "--via", "rest", "--url", BASE, "--no-progress"]) == 1
    assert "retry after 3 s" in capsys.readouterr().err


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 80, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


WARNING = "gfpgan_v1_4: synthetic weights: outputs are not meaningful"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_restore_spinner_turns_on_a_terminal_and_draws_nothing_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from clients import cli

    for stream, no_progress, drawn in (
        (Terminal(), False, True),
        (Terminal(), True, False),
        (io.StringIO(), False, False),
    ):
        monkeypatch.setattr(sys, "stderr", stream)
        with cli._spinner(argparse.Namespace(no_progress=no_progress), "restoring faces"):
            time.sleep(cli.SPINNER_TICK_S * 3)
        text = stream.getvalue()
        if drawn:
            frames = {line.split("[")[0] for line in text.split("\r") if line}
            assert len(frames) >= 2 and all(f.startswith("restoring faces ") for f in frames)
        else:
            assert text == ""
    assert not any(t.name == "facet-spinner" for t in threading.enumerate())


def test_cli_restore_sends_its_options_writes_the_result_and_reports_faces_and_warning(
    gateway, tmp_path: Path, capsys
) -> None:
    source = tmp_path / "group.png"
    source.write_bytes(png((40, 30)))
    seen: list[httpx.Request] = []
    body = {**RESTORED, "original_size": [40, 30], "restored_size": [40, 30], "warning": WARNING}

    def handle(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        if request.url.path == "/restore":
            return httpx.Response(200, json=body)
        disposition = {"content-disposition": 'attachment; filename="group_restored.png"'}
        return httpx.Response(200, content=png((40, 30)), headers=disposition)

    gateway(handle)
    output = tmp_path / "out" / "restored.png"
    argv = ["restore", str(source), "-o", str(output), "--upscale", "1", "--weight", "0.7"]
    argv += ["--only-center-face", "--detector", "scrfd", "--detector-score", "0.6"]
    assert main([*argv, "--url", BASE, "--no-progress"]) == 0
    assert [(r.method, r.url.path) for r in seen] == [("POST", "/restore"), ("GET", "/download/r1")]
    assert form_fields(seen[0]) == {
        "version": ["1.4"],
        "upscale": ["1"],
        "weight": ["0.7"],
        "only_center_face": ["true"],
        "face_detector_model": ["scrfd"],
        "face_detector_score": ["0.6"],
    }
    assert b'filename="group.png"' in seen[0].content
    assert Image.open(output).size == (40, 30)
    captured = capsys.readouterr()
    line = captured.out.strip()
    assert line.startswith(f"{output}: 40×30 PNG, 7 faces detected, 6 restored, ×1 with GFPGAN")
    assert "restoration r1" in line and line.endswith(" s)") and "\n" not in line
    assert f"facet: warning: {WARNING}" in captured.err
    assert sorted(p.name for p in output.parent.iterdir()) == ["restored.png"]


def test_cli_restore_without_o_names_the_file_as_the_gateway_does(
    gateway, tmp_path: Path, capsys
) -> None:
    source = tmp_path / "face.png"
    source.write_bytes(png((16, 16)))
    no_faces = {**RESTORED, "faces_detected": 0, "faces_restored": 0}
    no_faces.pop("warning")
    gateway(
        lambda request: (
            httpx.Response(200, json=no_faces)
            if request.url.path == "/restore"
            else httpx.Response(
                200,
                content=png((32, 32)),
                headers={"content-disposition": 'attachment; filename="face_restored.png"'},
            )
        )
    )
    assert main(["restore", str(source), "--url", BASE, "--no-progress"]) == 0
    assert Image.open(tmp_path / "face_restored.png").size == (32, 32)
    captured = capsys.readouterr()
    assert "0 faces detected, 0 restored" in captured.out
    assert "warning" not in captured.err and "no face was found" in captured.err


def test_cli_restore_reports_a_refusal_with_the_gateways_words_and_exit_2(
    gateway, tmp_path: Path, capsys
) -> None:
    source = tmp_path / "a.png"
    source.write_bytes(png((8, 8)))
    gateway(
        lambda request: httpx.Response(
            400, json={"detail": "version '9.9' is not installed; installed: 1.4"}
        )
    )
    argv = ["restore", str(source), "-o", str(tmp_path / "o.png"), "--version", "9.9"]
    assert main([*argv, "--url", BASE, "--no-progress"]) == 2
    assert "installed: 1.4" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()
    gateway(lambda request: httpx.Response(503, json={"detail": "model not ready"}))
    assert main([*argv, "--url", BASE, "--no-progress"]) == 1


def test_cli_upscale_with_face_enhance_goes_to_the_gateway_and_prints_the_jobs_warning(
    gateway, tmp_path: Path, capsys
) -> None:
    source = tmp_path / "a.png"
    source.write_bytes(png((16, 16)))
    seen: list[httpx.Request] = []
    done = status_body("completed", 100, result_url=f"{BASE}/results/r1", warning=WARNING)

    def handle(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        if request.url.path == "/upscale":
            return httpx.Response(200, json={"job_id": "j1", "status": "queued"})
        if request.url.path == "/status/j1":
            return done
        return httpx.Response(200, content=png((32, 32)))

    gateway(handle)
    output = tmp_path / "out.png"
    argv = ["upscale", str(source), "-o", str(output), "--scale", "2", "--face-enhance"]
    assert main([*argv, "--url", BASE, "--no-progress"]) == 0  # no --via: the gateway
    assert [r.url.path for r in seen] == ["/upscale", "/status/j1", "/results/r1"]
    assert form_fields(seen[0]) == {"scale": ["2"], "face_enhance": ["true"]}
    assert Image.open(output).size == (32, 32)
    captured = capsys.readouterr()
    assert "with faces restored (GFPGAN) via the gateway" in captured.out
    assert f"facet: warning: {WARNING}" in captured.err


# Triton errors → client errors ------------------------------------------------------------------


def triton_error(status: str, message: str) -> InferenceServerException:
    return InferenceServerException(msg=message, status=f"StatusCode.{status}")


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        ("UNAVAILABLE", "Exceeds maximum queue size", OverloadedError),
        ("NOT_FOUND", "Request for unknown model: 'x' is not found", NotFoundError),
        ("INVALID_ARGUMENT", "requested model 'x' is not available", NotFoundError),
        (
            "UNAVAILABLE",
            "Request for unknown model: 'x' has no available versions",
            UnavailableError,
        ),
        ("UNAVAILABLE", "failed to connect to all addresses; Connection refused", UnavailableError),
        ("DEADLINE_EXCEEDED", "Deadline Exceeded", DeadlineExceededError),
        ("INVALID_ARGUMENT", "unexpected datatype FP32 for input 'image'", BadRequestError),
        ("INTERNAL", "onnxruntime failed", ServerError),
    ],
)
def test_triton_errors_map_to_typed_errors(
    status: str, message: str, expected: type[FacetClientError]
) -> None:
    mapped = map_grpc_error(triton_error(status, message), url="h:1", model="x")
    assert type(mapped) is expected and mapped.code == status
    if expected is not DeadlineExceededError:  # gRPC's "Deadline Exceeded" adds nothing
        assert message in mapped.detail


def test_shared_memory_failures_explain_the_same_host_rule() -> None:
    local = map_grpc_error(shm.SharedMemoryException("unable to create"), url="h:1")
    remote = map_grpc_error(
        triton_error("INVALID_ARGUMENT", "Unable to open shared memory region: '/facet'"), url="h:1"
    )
    for mapped in (local, remote):
        assert type(mapped) is FacetClientError and "same host" in mapped.detail


def test_region_layout_is_aligned_and_skips_outputs_of_unknown_size() -> None:
    inputs: dict[str, np.ndarray] = {"a": np.zeros(10, np.uint8), "b": np.zeros((2, 3), np.float32)}
    input_slots, output_slots, size = plan_region(inputs, ["y", "z"], {"y": 100})
    assert [(s.name, s.offset, s.nbytes) for s in input_slots] == [("a", 0, 10), ("b", 64, 24)]
    assert [(s.name, s.offset, s.nbytes) for s in output_slots] == [("y", 128, 100)]
    assert size == 256


def test_local_checks_run_before_anything_is_sent() -> None:
    assert ensemble_for("realesrgan_x4plus") == "upscale_realesrgan_x4plus"
    assert ensemble_for("upscale_realesrgan_x4plus") == "upscale_realesrgan_x4plus"
    client = FacetTritonClient("127.0.0.1:1")  # nothing listens; nothing is sent either
    with client, pytest.raises(ValueError, match="H×W×3"):
        client.upscale_image(np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="N×h×w×3"):
        client.upscale_tiles(np.zeros((1, 8, 8, 3), np.float32))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outscale"):
        client.upscale_image(np.zeros((4, 4, 3), np.uint8), outscale=3)


def test_package_exports_the_clients_lazily() -> None:
    assert clients.FacetRestClient is FacetRestClient
    assert clients.Restoration is Restoration and clients.BatchAccepted is BatchAccepted
    assert clients.FacetTritonClient is FacetTritonClient
    with pytest.raises(AttributeError):
        _ = clients.NoSuchThing  # type: ignore[attr-defined]
