"""FacetRestClient and `facet upscale --via rest` against the real gateway process over a real
tritonserver (tiny synthetic models): submit, poll, download, cancel, health, metrics; and face
restoration (`facet restore`, `facet upscale --face-enhance`, the client's restoration, batch
and quality calls) over the real MTCNN nets and a tiny synthetic GFPGAN."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from clients.cli import main
from clients.errors import BadRequestError, NotFoundError, UnavailableError
from clients.rest import FacetRestClient
from serving.launcher import free_port
from tests.e2e.conftest import ROOT, astronaut_png, group_photo_png, photo_bytes

pytestmark = pytest.mark.integration


def test_rest_client_runs_a_job_end_to_end(
    shared_triton, start_gateway, tmp_path: Path, capsys
) -> None:
    gateway = start_gateway(shared_triton)
    seen: list[tuple[str, int]] = []
    with FacetRestClient(gateway.url) as client:
        assert client.health()["status"] == "healthy"
        accepted = client.submit_upscale(photo_bytes((40, 30)), scale=2, filename="a.png")
        assert accepted["status"] == "queued" and accepted["parameters"]["scale"] == 2
        final = client.wait(
            accepted["job_id"],
            timeout_s=60,
            progress=lambda body: seen.append((body["status"], body["progress"])),
        )
        assert final["status"] == "completed" and seen[-1] == ("completed", 100)
        path = client.download(final["result_url"], tmp_path)
        assert path.name == "a_upscaled_x2.png"
        assert Image.open(path).size == (80, 60)
        assert client.metrics()["jobs"]["total_processed"] >= 1
        with pytest.raises(BadRequestError, match="already completed"):
            client.cancel(accepted["job_id"])
        with pytest.raises(NotFoundError, match="Job not found"):
            client.status("no-such-job")
        with pytest.raises(BadRequestError, match="scale must be 2 or 4"):
            client.submit_upscale(photo_bytes(), scale=3)
    # The CLI's view of the same job and gateway.
    assert main(["status", accepted["job_id"], "--url", gateway.url]) == 0
    assert "completed 100%" in capsys.readouterr().out
    assert main(["health", "--url", gateway.url]) == 0
    assert main(["cancel", accepted["job_id"], "--url", gateway.url]) == 2
    assert "already completed" in capsys.readouterr().err
    with (
        FacetRestClient(f"http://127.0.0.1:{free_port()}") as offline,
        pytest.raises(UnavailableError, match="cannot reach"),
    ):
        offline.status("x")


def test_cli_upscale_via_rest_writes_a_2x_image(
    shared_triton, start_gateway, tmp_path: Path
) -> None:
    gateway = start_gateway(shared_triton)
    work = tmp_path / "work"  # tmp_path also holds the gateway's data directory
    work.mkdir()
    source, output = work / "photo.png", work / "out.png"
    source.write_bytes(photo_bytes((40, 30)))
    command = [sys.executable, "-m", "clients", "upscale", str(source), "-o", str(output)]
    command += ["--via", "rest", "--scale", "2", "--url", gateway.url]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert finished.returncode == 0, finished.stderr
    with Image.open(io.BytesIO(output.read_bytes())) as written:
        assert written.format == "PNG" and written.size == (80, 60)
    assert "via the gateway" in finished.stdout and "queued" in finished.stderr
    # -o asking for another format than the gateway's: the result is converted here.
    webp = work / "out.webp"
    argv = ["upscale", str(source), "-o", str(webp), "--via", "rest", "--scale", "2"]
    assert main([*argv, "--url", gateway.url, "--no-progress"]) == 0
    with Image.open(webp) as converted:
        assert converted.format == "WEBP" and converted.size == (80, 60)
    assert sorted(p.name for p in work.iterdir()) == ["out.png", "out.webp", "photo.png"]


GROUP_FACES = 6  # group_photo_png()'s 3×2 grid; more than the GFPGAN config's batch limit of 4
FACES_LINE = re.compile(r"(\d+) faces? detected, (\d+) restored")


def test_facet_restore_restores_every_face_of_a_group_photo_and_warns_of_synthetic_weights(
    face_triton, start_gateway, tmp_path: Path
) -> None:
    gateway = start_gateway(face_triton)
    work = tmp_path / "work"
    work.mkdir()
    source, output = work / "group.png", work / "group_restored.png"
    source.write_bytes(group_photo_png())  # 480×320
    command = [sys.executable, "-m", "clients", "restore", str(source), "-o", str(output)]
    command += ["--upscale", "2", "--url", gateway.url]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    with Image.open(output) as written:
        assert written.format == "PNG" and written.size == (960, 640)
    line = finished.stdout.strip()
    assert "\n" not in line and line.startswith(f"{output}: 960×640 PNG, "), line
    counted = FACES_LINE.search(line)
    assert counted is not None, line
    detected, restored = int(counted[1]), int(counted[2])
    assert restored >= GROUP_FACES and restored == detected, line
    assert re.search(r"\d+\.\d s\)$", line), line
    assert "facet: warning: " in finished.stderr and "gfpgan_v1_4" in finished.stderr
    assert "synthetic weights" in finished.stderr
    assert sorted(p.name for p in work.iterdir()) == ["group.png", "group_restored.png"]


def test_facet_upscale_with_face_enhance_runs_on_the_gateway_and_prints_the_jobs_warning(
    face_triton, start_gateway, tmp_path: Path, capsys
) -> None:
    gateway = start_gateway(face_triton)
    work = tmp_path / "work"
    work.mkdir()
    source, output = work / "astronaut.png", work / "astronaut_x2.png"
    source.write_bytes(astronaut_png(64))
    argv = ["upscale", str(source), "-o", str(output), "--scale", "2", "--face-enhance"]
    assert main([*argv, "--timeout", "180", "--url", gateway.url, "--no-progress"]) == 0
    with Image.open(output) as written:
        assert written.size == (128, 128)
    captured = capsys.readouterr()
    assert "with faces restored (GFPGAN) via the gateway" in captured.out
    assert "facet: warning: " in captured.err and "gfpgan_v1_4" in captured.err
    # The gRPC path cannot restore faces: asked for explicitly, it is refused before any work.
    assert main([*argv, "--via", "grpc"]) == 2
    assert "--via rest" in capsys.readouterr().err


def test_rest_client_restores_downloads_compares_and_batches_against_the_gateway(
    face_triton, start_gateway
) -> None:
    gateway = start_gateway(face_triton)
    original = astronaut_png(96)
    with FacetRestClient(gateway.url) as client:
        restoration = client.restore(original, upscale=1, weight=0.5, filename="a.png")
        assert restoration.status == "success" and restoration.restored_size == (96, 96)
        assert restoration.original_size == (96, 96) and restoration.processing_time > 0
        assert (restoration.faces_restored or 0) >= 1
        assert restoration.warning is not None and "gfpgan_v1_4" in restoration.warning
        restored = client.download_restored(restoration)
        assert restored == client.download_restored(restoration.restoration_id)
        with Image.open(io.BytesIO(restored)) as image:
            assert image.size == (96, 96)
        report = client.quality(original, restored, ["psnr", "ssim"])
        assert report["metrics"]["psnr"] > 10 and 0 < report["metrics"]["ssim"] <= 1
        with pytest.raises(BadRequestError, match="available"):
            client.quality(original, restored, ["lpips"])
        with pytest.raises(BadRequestError, match="installed"):
            client.restore(original, version="9.9")
        with pytest.raises(NotFoundError):
            client.download_restored("not-an-id")
        # A private address is refused by the server's fetcher: with no image restored the
        # batch fails, and its one result says why.
        accepted = client.submit_batch(["http://10.0.0.1/x.jpg"], {"upscale": 1})
        assert accepted.status == "accepted" and accepted.status_url.endswith("/status")
        deadline = time.monotonic() + 60
        status = client.batch_status(accepted.batch_id)
        while status["status"] not in ("completed", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
            status = client.batch_status(accepted.batch_id)
        assert status["status"] == "failed" and status["error"], status
        assert [(r["status"], bool(r["error"])) for r in status["results"]] == [("failed", True)]
        with pytest.raises(NotFoundError, match="Batch not found"):
            client.batch_status("no-such-batch")
