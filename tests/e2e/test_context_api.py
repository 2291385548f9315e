"""The Image Context Extractor API (seed 003) end to end: a real tritonserver with NanoDet and
MiniLM on their real package weights and tiny synthetic CLIP and BLIP (the swap tests' Triton,
tests/e2e/conftest.py), the gateway as its own process, real photos copied into its media
root (skimage's), and HTTP and WebSocket clients."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import numpy as np
import pytest
from PIL import Image

from serving.launcher import TritonServer
from tests.e2e.conftest import ROOT, Gateway, StartGateway

pytestmark = pytest.mark.integration

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def save_photos(folder: Path) -> dict[str, Path]:
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in PHOTOS:
        pixels = np.asarray(getattr(data, name)())  # type: ignore[no-untyped-call]
        path = folder / f"{name}.jpg"
        Image.fromarray(pixels).convert("RGB").save(path, "JPEG", quality=92)
        paths[name] = path
    return paths


@pytest.fixture
def stack(
    swap_triton: TritonServer, start_gateway: StartGateway, tmp_path: Path
) -> Iterator[tuple[Gateway, Path, dict[str, Path]]]:
    """The gateway on the Triton that serves the context models (tests/e2e/conftest.py)."""
    media = tmp_path / "media"
    photos = save_photos(media / "photos")
    gateway = start_gateway(swap_triton, media_roots=json.dumps([str(media)]))
    yield gateway, media, photos


def process(client: httpx.Client, path: Path | str) -> dict[str, Any]:
    answer = client.post("/api/v1/images/process", json={"image_path": str(path)}, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_processed_photo_has_the_seeds_fields_and_nanodet_finds_the_astronaut(stack) -> None:
    gateway, _, photos = stack
    with gateway.client() as client:
        body = process(client, photos["astronaut"])
        info = body["image_info"]
        assert body["success"] is True and body["was_duplicate"] is False
        assert set(info) >= {
            "id",
            "path",
            "filename",
            "size",
            "file_size",
            "format",
            "caption",
            "objects",
        }
        assert info["size"] == [512, 512] and info["format"] == "JPEG"
        assert "person" in info["objects"]
        assert "synthetic" in info["warning"]
        details = client.get(f"/api/v1/images/info/{body['image_id']}").json()
        assert any(d["label"] == "person" for d in details["detections"])
        download = client.get(f"/api/v1/images/download/{body['image_id']}")
        assert download.content == photos["astronaut"].read_bytes()
        again = process(client, photos["astronaut"])
        assert again["message"].startswith("Image already processed")


def test_search_finds_an_image_by_its_caption_and_by_a_paraphrase_of_its_objects(stack) -> None:
    gateway, _, photos = stack
    with gateway.client() as client:
        bodies = {name: process(client, path) for name, path in photos.items()}
        coffee = bodies["coffee"]["image_info"]
        assert "cup" in coffee["objects"]  # NanoDet, real weights: 0.38 on skimage's coffee
        astronaut = bodies["astronaut"]["image_info"]
        assert astronaut["caption"]
        # Tiny synthetic BLIP writes token soup ("[unused170] [unused191] …") that MiniLM can
        # hardly tell apart between photos, so the query is the image's caption with its
        # objects, as its text embedding was made (gateway/context/extractor.search_text).
        own_text = f"{astronaut['caption']}. Objects: {', '.join(astronaut['objects'])}"
        by_caption = client.get("/api/v1/images/", params={"query": own_text, "limit": 2}).json()
        assert by_caption[0]["id"] == astronaut["id"]
        assert by_caption[0]["score"] == pytest.approx(1.0, abs=1e-4)
        assert by_caption[0]["distance"] == pytest.approx(1 - by_caption[0]["score"], abs=1e-5)
        mug = client.get("/api/v1/images/", params={"query": "a mug", "limit": 4}).json()
        assert mug[0]["id"] == coffee["id"], [(m["filename"], m["score"]) for m in mug]
        human = client.get("/api/v1/images/", params={"query": "a human being"}).json()
        assert human[0]["id"] == astronaut["id"]
        people = client.get("/api/v1/images/", params={"objects": "person"}).json()
        assert [item["filename"] for item in people] == ["astronaut.jpg"]
        strict = client.get("/api/v1/images/", params={"query": "a mug", "min_score": 0.99}).json()
        assert strict == []


def test_delete_leaves_nothing_behind_and_errors_use_the_seeds_body(stack) -> None:
    gateway, _media, photos = stack
    with gateway.client() as client:
        image_id = process(client, photos["coffee"])["image_id"]
        deleted = client.delete(f"/api/v1/images/{image_id}", params={"delete_file": "true"})
        assert deleted.json()["file_deleted"] is True
        assert not photos["coffee"].exists()
        missing = client.get(f"/api/v1/images/info/{image_id}")
        assert missing.status_code == 404
        body = missing.json()
        assert body["success"] is False and body["details"] == {"status_code": 404}
        assert set(body) == {"success", "error", "message", "details", "timestamp"}
        assert client.get("/api/v1/images/").json() == [] or all(
            item["id"] != image_id for item in client.get("/api/v1/images/").json()
        )
        outside = client.post("/api/v1/images/process", json={"image_path": "/etc/passwd"})
        assert outside.status_code == 403 and "outside the media roots" in outside.json()["message"]
        escape = client.get("/api/v1/directories/scan", params={"directory_path": "../.."})
        assert escape.status_code == 403


def test_an_upload_is_stored_in_the_media_root_and_a_second_one_conflicts(stack) -> None:
    gateway, media, photos = stack
    data = photos["rocket"].read_bytes()
    with gateway.client() as client:
        first = client.post(
            "/api/v1/images/upload",
            files={"file": ("rocket_upload.jpg", data, "image/jpeg")},
            data={"process_immediately": "true"},
            timeout=120,
        )
        assert first.status_code == 200, first.text
        assert first.json()["file_path"] == "uploads/rocket_upload.jpg"
        assert (media / "uploads" / "rocket_upload.jpg").read_bytes() == data
        second = client.post(
            "/api/v1/images/upload", files={"file": ("rocket_upload.jpg", data, "image/jpeg")}
        )
        assert second.status_code == 409
        bad = client.post(
            "/api/v1/images/upload",
            files={"file": ("rocket_upload.jpg", b"garbage", "image/jpeg")},
            data={"overwrite": "true"},
        )
        assert bad.status_code == 415
        assert (media / "uploads" / "rocket_upload.jpg").read_bytes() == data  # nothing lost


async def follow_task(base: str, directory: str) -> tuple[list[dict], dict]:
    """Subscribe over /ws, start the directory task, collect events until its final one."""
    events: list[dict] = []
    url = f"{base.replace('http', 'ws')}/ws"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        first = await ws.receive_json(timeout=10)
        assert first["type"] == "connection_established"
        await ws.send_json({"type": "ping"})
        await ws.send_json({"type": "subscribe", "channel": "processing"})
        async with session.post(
            f"{base}/api/v1/directories/process-async",
            json={"directory_path": directory, "recursive": True},
        ) as answer:
            accepted = await answer.json()
        assert accepted["status"] == "queued" and accepted["task_id"].startswith("task-")
        while True:
            event = await ws.receive_json(timeout=240)
            events.append(event)
            if event.get("type") in ("task_completed", "task_failed"):
                return events, accepted


def test_a_directory_task_runs_to_the_end_with_websocket_progress(stack) -> None:
    gateway, media, photos = stack
    nested = media / "photos" / "more"
    nested.mkdir()
    shutil.copy(photos["chelsea"], nested / "chelsea_copy.jpg")
    (media / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    events, accepted = asyncio.run(follow_task(gateway.url, "photos"))
    kinds = [event["type"] for event in events]
    assert "pong" in kinds and "subscribed" in kinds
    assert kinds[-1] == "task_completed", events[-1]
    progress = [e for e in events if e["type"] == "task_progress"]
    assert progress and all(e["task_id"] == accepted["task_id"] for e in progress)
    result = events[-1]["result"]
    assert result["total_files"] == 6 and result["processed"] == 5 and result["failed"] == 1
    with gateway.client() as client:
        task = client.get(f"/api/v1/directories/task/{accepted['task_id']}").json()
        assert task["status"] == "completed" and task["progress"] == 100.0
        assert accepted["task_id"] in [
            t["task_id"] for t in client.get("/api/v1/directories/tasks").json()
        ]
        # The tiny synthetic CLIP puts every photo near every other (cosine ~0.99), so only the
        # same bytes may count here: threshold 1.0.
        check = client.post(
            "/api/v1/duplicates/check",
            json={"directory_path": "photos", "recursive": True, "similarity_threshold": 1.0},
        ).json()
        groups = check["duplicate_groups"]
        assert len(groups) == 1 and groups[0]["similarity_scores"] == [1.0]
        assert sorted(Path(p).name for p in groups[0]["paths"]) == [
            "chelsea.jpg",
            "chelsea_copy.jpg",
        ]
        dry = client.delete(
            "/api/v1/duplicates/remove-duplicates", params={"similarity_threshold": 1.0}
        ).json()
        assert dry["dry_run"] is True and dry["removed_count"] == 1
        assert len(client.get("/api/v1/images/").json()) == 5


def test_model_status_preload_and_health_answer_from_triton(stack) -> None:
    gateway, _, _ = stack
    with gateway.client() as client:
        status = client.get("/api/v1/models/status").json()
        assert status["models"]["sentence_transformer"] is True
        assert status["models"]["blip_model"] is True and status["device"] == "cpu"
        assert status["models"]["clip_model"] is True
        assert status["synthetic"]["sentence_transformer"] is False
        assert status["synthetic"]["clip_model"] is True
        preload = client.post("/api/v1/models/preload", timeout=120).json()
        assert preload["success"] is True, preload
        assert set(preload["timings"]) >= {
            "sentence_transformer",
            "blip_model",
            "clip_model",
            "total",
        }
        assert preload["not_installed"] == []
        health = client.get("/api/v1/health").json()
        assert health["database_connected"] is True and health["models_loaded"] is True
        assert health["stats"]["collection_name"] == "image_contexts"


def test_an_image_with_a_wrong_extension_or_format_is_a_clear_4xx(stack) -> None:
    gateway, media, _ = stack
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "GIF")
    (media / "tiny.gif").write_bytes(buffer.getvalue())
    with gateway.client() as client:
        answer = client.post("/api/v1/images/process", json={"image_path": "tiny.gif"})
        assert answer.status_code == 415, answer.text
        assert (
            client.post("/api/v1/images/process", json={"image_path": "nope.jpg"}).status_code
            == 404
        )


# The seed's Python client example (../shared/seeds/003, "API Client Examples"), unchanged but
# for the server's port and the image path (a photo copied into the media root).
SEED_PYTHON = """
import aiohttp
import asyncio

async def process_image(image_path):
    async with aiohttp.ClientSession() as session:
        payload = {"image_path": image_path}
        async with session.post(
            "http://localhost:8000/api/v1/images/process",
            json=payload
        ) as response:
            return await response.json()

# Usage
result = asyncio.run(process_image("/path/to/image.jpg"))
print(result)
"""


def test_the_seeds_python_example_runs_unchanged(stack) -> None:
    gateway, _, photos = stack
    source = SEED_PYTHON.replace("localhost:8000", f"127.0.0.1:{gateway.port}").replace(
        "/path/to/image.jpg", str(photos["rocket"])
    )
    namespace: dict[str, Any] = {"print": lambda *args: None}
    exec(compile(source, "seed_003_example.py", "exec"), namespace)
    result = namespace["result"]
    assert result["success"] is True and result["image_info"]["filename"] == "rocket.jpg"


def facet(*argv: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "clients", *argv]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)


def test_facet_caption_indexes_a_photo_that_facet_search_then_finds(stack) -> None:
    gateway, media, photos = stack
    captioned = facet("caption", str(photos["coffee"]), "--url", gateway.url, "--json")
    assert captioned.returncode == 0, captioned.stderr
    answer = json.loads(captioned.stdout)
    assert answer["file_path"] == "uploads/coffee.jpg" and "cup" in answer["image_info"]["objects"]
    assert (media / "uploads" / "coffee.jpg").is_file()
    again = facet("caption", str(photos["coffee"]), "--url", gateway.url)
    assert again.returncode != 0 and "file exists" in again.stderr
    found = facet("search", "a mug", "--url", gateway.url, "--limit", "1")
    assert found.returncode == 0, found.stderr
    assert "uploads/coffee.jpg" in found.stdout and "warning: " in found.stderr
    assert facet("search", "--help").returncode == 0
