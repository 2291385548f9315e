"""The Real-ESRGAN upscaler API served by the gateway over a real Triton, as its users call it."""

from __future__ import annotations

import io
import sqlite3
import struct
import time
import zlib
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import photo_bytes, wait_for_status

pytestmark = pytest.mark.integration


def submit(
    client: httpx.Client, data: bytes, name: str = "photo.png", **form: str
) -> httpx.Response:
    fields = {"scale": "2", "face_enhance": "false", **form}
    return client.post("/upscale", files={"file": (name, data, "image/png")}, data=fields)


def test_the_seed_flow_submit_poll_download_works_end_to_end(shared_triton, start_gateway) -> None:
    gateway = start_gateway(shared_triton)
    with gateway.client() as client:
        accepted = submit(client, photo_bytes((40, 30)))
        assert accepted.status_code == 200, accepted.text
        body = accepted.json()
        assert body["status"] == "queued" and body["message"] == "Image submitted for upscaling"
        assert body["parameters"] == {"scale": 2, "face_enhance": False}
        assert body["estimated_time"].endswith("seconds")
        status = wait_for_status(client, body["job_id"], {"completed", "failed"})
        assert status["status"] == "completed", status
        assert status["progress"] == 100 and status["original_filename"] == "photo.png"
        assert isinstance(status["processing_time"], float) and status["completed_at"]
        assert status["weights"] == "synthetic" and "not meaningful" in str(status["warning"])
        result = client.get(str(status["result_url"]))
        assert result.status_code == 200 and result.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(result.content)).size == (80, 60)


def test_scale_4_returns_four_times_the_size_and_jpeg_stays_jpeg(
    shared_triton, start_gateway
) -> None:
    gateway = start_gateway(shared_triton)
    with gateway.client() as client:
        job = submit(client, photo_bytes((33, 17), fmt="JPEG"), "p.jpg", scale="4").json()
        status = wait_for_status(client, job["job_id"], {"completed", "failed"})
        result = client.get(str(status["result_url"]))
        assert result.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(result.content)).size == (132, 68)


def test_queued_and_running_jobs_can_be_cancelled(shared_triton, start_gateway) -> None:
    gateway = start_gateway(shared_triton, job_workers=1)
    with gateway.client() as client:
        big = photo_bytes((900, 700))
        running = submit(client, big).json()["job_id"]
        queued = submit(client, big).json()["job_id"]
        wait_for_status(client, running, {"processing"})
        assert client.get(f"/status/{queued}").json()["status"] == "queued"
        for job_id in (queued, running):
            answer = client.delete(f"/job/{job_id}")
            assert answer.status_code == 200 and answer.json() == {
                "message": "Job cancelled successfully"
            }
        for job_id in (queued, running):
            # A running job stops at its next tile batch: wait for an end, then check which.
            status = wait_for_status(client, job_id, {"cancelled", "completed", "failed"})
            assert status["status"] == "cancelled" and status["result_url"] is None
        again = client.delete(f"/job/{running}")
        assert again.status_code == 400 and "cancelled" in again.json()["detail"]
        assert client.delete("/job/no-such-job").status_code == 404


def test_a_job_survives_a_kill_9_of_the_gateway(shared_triton, start_gateway) -> None:
    gateway = start_gateway(shared_triton, job_workers=1)
    with gateway.client() as client:
        job_id = submit(client, photo_bytes((900, 700))).json()["job_id"]
        wait_for_status(client, job_id, {"processing"})
    gateway.kill()  # SIGKILL mid-job: no shutdown code runs
    database = Path(gateway.env["FACET_DATA_DIR"]) / "jobs.sqlite3"
    with sqlite3.connect(database) as db:  # what the dead gateway left behind
        left = db.execute("SELECT status, attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()
    assert left == ("processing", 1), left  # really interrupted mid-run, not already done
    gateway.start()
    with gateway.client() as client:
        status = wait_for_status(client, job_id, {"completed", "failed"}, timeout_s=120)
        assert status["status"] == "completed", status
    with sqlite3.connect(database) as db:
        (attempts,) = db.execute("SELECT attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()
    assert attempts == 2  # recovery requeued it and it ran again


def test_rate_limits_answer_429_with_retry_after(shared_triton, start_gateway) -> None:
    gateway = start_gateway(shared_triton, rate_limits_enabled="true", rate_limit_status=3)
    with gateway.client() as client:
        answers = [client.get("/status/some-id").status_code for _ in range(4)]
        assert answers == [404, 404, 404, 429]
        limited = client.get("/status/some-id")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert "rate limit" in limited.json()["detail"]


def test_health_is_never_rate_limited_while_downloads_are(shared_triton, start_gateway) -> None:
    gateway = start_gateway(shared_triton, rate_limits_enabled="true", rate_limit_other=2)
    with gateway.client() as client:
        assert [client.get("/health").status_code for _ in range(5)] == [200] * 5
        downloads = [client.get("/download/none").status_code for _ in range(3)]
        assert downloads == [404, 404, 429]
        assert client.get("/metrics/prometheus").status_code == 429


def _png_header_claiming(width: int, height: int) -> bytes:
    """A small, well-formed PNG whose IHDR claims a huge size (a decompression bomb's shape)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


HOSTILE = {
    "empty file": ({"file": ("a.png", b"", "image/png")}, {}, 400),
    "truncated jpeg": ({"file": ("a.jpg", photo_bytes(fmt="JPEG")[:300], "image/jpeg")}, {}, 400),
    "text named png": ({"file": ("a.png", b"hello, I am text", "image/png")}, {}, 415),
    "50000 x 50000 png header": (
        {"file": ("a.png", _png_header_claiming(50_000, 50_000), "image/png")},
        {},
        413,
    ),
    "upload over the limit": (
        {"file": ("a.png", b"\0" * (16 * 1024 * 1024), "image/png")},
        {},
        413,
    ),
    "scale 3": ({"file": ("a.png", photo_bytes(), "image/png")}, {"scale": "3"}, 400),
    "scale not a number": ({"file": ("a.png", photo_bytes(), "image/png")}, {"scale": "x"}, 400),
    "missing file field": ({}, {"scale": "2"}, 400),
    "face_enhance without the face model": (
        {"file": ("a.png", photo_bytes(), "image/png")},
        {"face_enhance": "true"},
        400,
    ),
}


def test_hostile_inputs_get_a_4xx_with_a_reason_never_a_5xx(shared_triton, start_gateway) -> None:
    gateway = start_gateway(shared_triton)
    with gateway.client() as client:
        for case, (files, data, expected) in HOSTILE.items():
            answer = client.post("/upscale", files=files or None, data=data)
            assert answer.status_code == expected, (case, answer.status_code, answer.text)
            assert answer.json()["detail"], case
        # Nothing above was stored as a job, and the service still works.
        assert client.get("/metrics").json()["jobs"]["current_queue_length"] == 0
        job = submit(client, photo_bytes()).json()
        assert (
            wait_for_status(client, job["job_id"], {"completed", "failed"})["status"] == "completed"
        )


def test_triton_down_gives_503_then_service_resumes(
    start_triton, tiny_sr_repository, start_gateway
) -> None:
    triton = start_triton(tiny_sr_repository)
    gateway = start_gateway(triton)
    ports = {
        "grpc_port": triton.settings.grpc_port,
        "http_port": triton.settings.http_port,
        "metrics_port": triton.settings.metrics_port,
    }
    with gateway.client() as client:
        assert client.get("/health").status_code == 200
        triton.stop()
        started = time.monotonic()
        refused = submit(client, photo_bytes())
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
        # Unreachable is not "model not loaded": the client learns what is really wrong.
        assert refused.json()["detail"] == "inference server unavailable"
        assert time.monotonic() - started < 10
        down = client.get("/health")
        assert down.status_code == 503 and int(down.headers["retry-after"]) >= 1
        assert "127.0.0.1" not in down.text and str(ports["grpc_port"]) not in down.text
        start_triton(tiny_sr_repository, **ports)
        deadline = time.monotonic() + 30
        while client.get("/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        job = submit(client, photo_bytes())
        assert job.status_code == 200, job.text
        assert (
            wait_for_status(client, job.json()["job_id"], {"completed", "failed"})["status"]
            == "completed"
        )


def test_root_redirects_to_docs_and_metrics_are_exposed(shared_triton, start_gateway) -> None:
    gateway = start_gateway(shared_triton)
    with gateway.client() as client:
        root = client.get("/", follow_redirects=False)
        assert root.status_code in (302, 307) and root.headers["location"] == "/docs"
        assert client.get("/docs").status_code == 200 and client.get("/redoc").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
        assert {"/upscale", "/status/{job_id}", "/job/{job_id}", "/health", "/metrics"} <= set(
            paths
        )
        health = client.get("/health").json()
        assert health["status"] == "healthy" and set(health["system"]) >= {
            "cpu_usage",
            "load_average",
        }
        assert health["models"]["realesrgan_x4plus"]["synthetic"] is True
        metrics = client.get("/metrics").json()
        assert set(metrics["system"]) >= {"cpu_usage_percent", "disk_free_gb"}
        assert set(metrics["jobs"]) >= {
            "total_processed",
            "current_queue_length",
            "average_processing_time",
        }
        text = client.get("/metrics/prometheus").text
        assert "facet_http_requests_total" in text and 'facet_jobs{state="queued"}' in text
        assert 'route="/health"' in text


def test_a_chunked_upload_over_the_limit_is_refused_with_413_and_the_gateway_stays_up(
    shared_triton, start_gateway
) -> None:
    """No Content-Length to refuse up front: the gateway counts the bytes as they arrive."""
    from collections.abc import Iterator

    gateway = start_gateway(shared_triton)
    boundary = "facet-chunked-upload"

    def body() -> Iterator[bytes]:
        yield (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="big.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        for _ in range(16):
            yield b"\0" * (1024 * 1024)
        yield f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="scale"\r\n\r\n2'.encode()
        yield f"\r\n--{boundary}--\r\n".encode()

    with gateway.client() as client:
        headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
        refused = client.post("/upscale", content=body(), headers=headers)
        assert refused.request.headers["transfer-encoding"] == "chunked"
        assert refused.status_code == 413, refused.text
        assert refused.json() == {
            "detail": "upload too large: the limit is 15 MB",
            "error": "PayloadTooLarge",
        }
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").json()["jobs"]["current_queue_length"] == 0
    assert "Traceback" not in gateway.log.read_text()
