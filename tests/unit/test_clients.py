"""The clients' pure logic: the `facet` argument parser and exit codes, the mapping of gateway
answers and Triton errors to client errors, Retry-After handling, job polling and downloads
(over httpx.MockTransport, no server)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.utils.shared_memory as shm
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
from clients.rest import FacetRestClient, error_from_response, parse_retry_after
from clients.triton_grpc import FacetTritonClient, ensemble_for, map_grpc_error, plan_region

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
        assert "NOT AVAILABLE YET" in text and "gfpgan_v1_4" in text
    if argv[0] == "upscale":
        for option in ("--via", "--scale", "--model", "--tile", "--shm", "--url", "(default: 4)"):
            assert option in text


def test_upscale_arguments_and_defaults() -> None:
    args = build_parser().parse_args(["upscale", "in.jpg", "-o", "out.png"])
    assert args.handler.__name__ == "run_upscale"
    assert (args.input, args.output, args.scale, args.via) == (
        Path("in.jpg"),
        Path("out.png"),
        4,
        "grpc",
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
    ],
)
def test_bad_usage_exits_2(argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_restore_says_the_face_model_is_missing_and_exits_2(capsys) -> None:
    assert main(["restore", "portrait.jpg", "-o", "out.png"]) == 2
    assert main(["restore"]) == 2
    err = capsys.readouterr().err
    assert "gfpgan_v1_4" in err and "not installed" in err and "nothing was done" in err


def test_upscale_refuses_bad_input_with_exit_2(tmp_path: Path, capsys) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"not an image at all")
    cases = {
        "no such file": ["upscale", str(tmp_path / "missing.png")],
        "unsupported image format": ["upscale", str(image)],
        "end it in .png": ["upscale", str(image), "-o", str(tmp_path / "out.tiff")],
        "only apply to --via grpc": ["upscale", str(image), "--via", "rest", "--tile", "64"],
        "--shm only apply": ["upscale", str(image), "--via", "rest", "--shm"],
        "gfpgan_v1_4": ["upscale", str(image), "--face-enhance"],
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
    assert clients.FacetTritonClient is FacetTritonClient
    with pytest.raises(AttributeError):
        _ = clients.NoSuchThing  # type: ignore[attr-defined]
