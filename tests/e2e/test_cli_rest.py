"""FacetRestClient and `facet upscale --via rest` against the real gateway process over a real
tritonserver (tiny synthetic models): submit, poll, download, cancel, health, metrics."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from clients.cli import main
from clients.errors import BadRequestError, NotFoundError, UnavailableError
from clients.rest import FacetRestClient
from serving.launcher import free_port
from tests.e2e.conftest import ROOT, photo_bytes

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
