"""The GFPGAN restoration API over real Triton models: MTCNN (real weights) finds the face,
a tiny synthetic GFPGAN restores it, and the gateway pastes it back."""

from __future__ import annotations

import http.server
import io
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from tests.e2e.conftest import astronaut_png, group_photo_png, wait_for_status

pytestmark = pytest.mark.integration


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture
def restore_gateway(face_triton, face_repository, start_gateway):
    return start_gateway(face_triton)


def test_the_seed_restore_example_returns_a_download(restore_gateway) -> None:
    with restore_gateway.client() as client:
        answer = client.post(
            "/restore",
            files={"file": ("damaged_photo.png", astronaut_png(256), "image/png")},
            data={"version": "1.4", "upscale": "2"},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "success" and body["original_size"] == [256, 256]
        assert body["restored_size"] == [512, 512] and body["processing_time"] > 0
        assert body["download_url"] == f"/download/{body['restoration_id']}"
        assert body["faces_detected"] >= 1 and body["faces_restored"] >= 1
        assert "gfpgan_v1_4" in body["warning"] and "not meaningful" in body["warning"]
        result = client.get(body["download_url"])
        assert result.status_code == 200 and decode(result.content).shape == (512, 512, 3)
        assert client.get("/download/not-an-id").status_code == 404


def test_pixels_outside_every_face_are_untouched_at_upscale_1(restore_gateway) -> None:
    original = astronaut_png(256)
    with restore_gateway.client() as client:
        body = client.post(
            "/restore", files={"file": ("a.png", original, "image/png")}, data={"upscale": "1"}
        ).json()
        restored = decode(client.get(body["download_url"]).content)
    source = decode(original)
    changed = np.any(restored != source, axis=2)
    assert body["faces_restored"] >= 1 and changed.any(), "the face was not restored"
    # The astronaut's face sits in the upper middle; the bottom rows and corners are far from it.
    assert not changed[200:, :].any() and not changed[:40, :40].any()


def test_an_unknown_version_is_a_400_listing_the_installed_ones(restore_gateway) -> None:
    with restore_gateway.client() as client:
        answer = client.post(
            "/restore",
            files={"file": ("a.png", astronaut_png(64), "image/png")},
            data={"version": "9.9"},
        )
        assert answer.status_code == 400 and "installed: 1.4" in answer.json()["detail"]


def test_upscale_with_face_enhance_restores_faces_and_upscales(restore_gateway) -> None:
    with restore_gateway.client() as client:
        job = client.post(
            "/upscale",
            files={"file": ("a.png", astronaut_png(128), "image/png")},
            data={"scale": "2", "face_enhance": "true"},
        ).json()
        status = wait_for_status(client, job["job_id"], {"completed", "failed"}, timeout_s=120)
        assert status["status"] == "completed", status
        assert decode(client.get(status["result_url"]).content).shape == (256, 256, 3)
        # The tiny GFPGAN is synthetic: the job says so, not only the upscaler's weights.
        assert "gfpgan_v1_4" in str(status["warning"]), status


GROUP_FACES = 6  # more than restore_gfpgan_v1_4's max_batch_size of 4


def test_a_group_photo_restores_every_detected_face(restore_gateway) -> None:
    with restore_gateway.client() as client:
        answer = client.post(
            "/restore",
            files={"file": ("group.png", group_photo_png(), "image/png")},
            data={"version": "1.4", "upscale": "1"},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["faces_detected"] >= GROUP_FACES, body
        assert body["faces_restored"] == body["faces_detected"], body


def test_upscale_with_face_enhance_completes_on_a_group_photo(restore_gateway) -> None:
    with restore_gateway.client() as client:
        job = client.post(
            "/upscale",
            files={"file": ("group.png", group_photo_png(cell=96), "image/png")},
            data={"scale": "2", "face_enhance": "true"},
        ).json()
        status = wait_for_status(client, job["job_id"], {"completed", "failed"}, timeout_s=180)
        assert status["status"] == "completed", status
        assert decode(client.get(status["result_url"]).content).shape == (384, 576, 3)


def test_quality_metrics_are_computed_and_unavailable_ones_refused(restore_gateway) -> None:
    original = astronaut_png(64)
    with restore_gateway.client() as client:
        files = {
            "original": ("o.png", original, "image/png"),
            "restored": ("r.png", astronaut_png(128), "image/png"),
        }
        answer = client.post("/metrics", files=files, data={"metrics[]": ["psnr", "ssim"]})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["metrics"]["psnr"] > 20 and 0 < body["metrics"]["ssim"] <= 1
        assert 0 <= body["analysis"]["quality_score"] <= 10 and body["resized_original"]
        refused = client.post("/metrics", files=files, data={"metrics[]": ["lpips"]})
        assert refused.status_code == 400 and "available" in refused.json()["detail"]


@pytest.fixture
def photo_server() -> Iterator[str]:
    """A local image server the test allows explicitly (FACET_FETCH_ALLOW_HOSTS)."""
    photos = {"/group.png": group_photo_png(cell=96)}
    default = astronaut_png(96)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = photos.get(self.path, default)
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:9/secret")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_batch_restores_good_urls_and_reports_refused_ones(
    face_triton, face_repository, start_gateway, photo_server
) -> None:
    gateway = start_gateway(
        face_triton,
        fetch_allow_hosts=f'["{photo_server}"]',
    )
    # Each refused URL with the reason it must be refused for: a test that only checked for
    # "failed" would pass with the address check deleted (the fetch would fail on connect).
    refusals = {
        "http://127.0.0.1:9/": "not a public address",
        "http://10.0.0.1/x.jpg": "not a public address",
        "http://169.254.169.254/latest/meta-data/": "not a public address",
        "http://2130706433/": "not a public address",
        "http://[::ffff:127.0.0.1]/": "not a public address",
        f"http://{photo_server}/redirect": "redirected to a refused URL",
        "ftp://example.com/a.png": "only http and https",
    }
    urls = [f"http://{photo_server}/photo1.png", f"http://{photo_server}/group.png", *refusals]
    with gateway.client() as client:
        accepted = client.post(
            "/batch", json={"image_urls": urls, "settings": {"version": "1.4", "upscale": 2}}
        )
        assert accepted.status_code == 200, accepted.text
        body = accepted.json()
        assert body["status"] == "accepted" and body["status_url"].endswith("/status")
        assert body["estimated_completion"].endswith("Z")
        deadline = time.monotonic() + 120
        status = client.get(body["status_url"]).json()
        while status["status"] not in ("completed", "failed") and time.monotonic() < deadline:
            time.sleep(0.3)
            status = client.get(body["status_url"]).json()
        assert status["status"] == "completed", status
        results = {r["url"]: r for r in status["results"]}
        good, group = results[urls[0]], results[urls[1]]
        assert good["status"] == "completed" and status["completed"] == 2
        assert client.get(good["download_url"]).status_code == 200
        assert group["status"] == "completed" and group["faces_restored"] >= GROUP_FACES, group
        assert "gfpgan_v1_4" in group["warning"] and "gfpgan_v1_4" in status["warning"]
        for url, reason in refusals.items():
            assert results[url]["status"] == "failed", url
            assert reason in results[url]["error"], (url, results[url]["error"])
        assert status["failed"] == len(urls) - 2


def transparent_png(mode: str) -> bytes:
    """The astronaut at 128² whose left quarter is transparent, saved in `mode`:
    RGBA, gray+alpha (LA), or a palette with a transparent entry (P + tRNS)."""
    photo: Image.Image = Image.open(io.BytesIO(astronaut_png(128)))
    buffer = io.BytesIO()
    if mode == "P":
        quantized = photo.convert("RGB").quantize(colors=255)
        pixels = np.asarray(quantized).copy()
        pixels[:, :32] = 255  # the one palette entry marked transparent
        palette = Image.fromarray(pixels, "P")
        palette.putpalette([*(quantized.getpalette() or [])[: 255 * 3], 0, 0, 0])
        palette.save(buffer, "PNG", transparency=255)
        return buffer.getvalue()
    alpha = np.full((128, 128), 255, np.uint8)
    alpha[:, :32] = 0
    photo = photo.convert("RGBA")
    photo.putalpha(Image.fromarray(alpha))
    photo.convert(mode).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_restore_keeps_transparency(restore_gateway, mode) -> None:
    with restore_gateway.client() as client:
        body = client.post(
            "/restore",
            files={"file": ("t.png", transparent_png(mode), "image/png")},
            data={"upscale": "2"},
        ).json()
        result = Image.open(io.BytesIO(client.get(body["download_url"]).content))
    assert result.mode in ("RGBA", "LA"), result.mode
    restored_alpha = np.asarray(result.getchannel("A"))
    assert restored_alpha.shape == (256, 256)
    assert restored_alpha[:, :60].max() == 0 and restored_alpha[:, 70:].min() == 255


def test_a_batch_whose_every_url_failed_reports_failed_with_each_reason(
    restore_gateway,
) -> None:
    urls = ["http://127.0.0.1:9/a.png", "ftp://example.com/b.png"]
    with restore_gateway.client() as client:
        accepted = client.post("/batch", json={"image_urls": urls}).json()
        deadline = time.monotonic() + 60
        status = client.get(accepted["status_url"]).json()
        while status["status"] not in ("completed", "failed") and time.monotonic() < deadline:
            time.sleep(0.2)
            status = client.get(accepted["status_url"]).json()
    assert status["status"] == "failed", status
    assert status["failed"] == 2 and status["completed"] == 0
    assert "none of the 2 images" in status["error"]
    reasons = {r["url"]: r["error"] for r in status["results"]}
    assert "not a public address" in reasons[urls[0]]
    assert "only http and https" in reasons[urls[1]]


def test_a_batch_can_be_cancelled_but_a_restoration_is_no_job(restore_gateway) -> None:
    with restore_gateway.client() as client:
        restored = client.post(
            "/restore", files={"file": ("a.png", astronaut_png(64), "image/png")}
        ).json()
        assert client.get(f"/status/{restored['restoration_id']}").status_code == 404
        assert client.delete(f"/job/{restored['restoration_id']}").status_code == 404
        urls = [f"http://127.0.0.1:9/{index}.png" for index in range(20)]
        batch = client.post("/batch", json={"image_urls": urls}).json()
        answer = client.delete(f"/job/{batch['batch_id']}")
        status = client.get(batch["status_url"]).json()
    # Cancelled while queued or running; or already finished if the refusals were that quick.
    assert answer.status_code in (200, 400), answer.text
    assert status["status"] in ("cancelled", "failed"), status
