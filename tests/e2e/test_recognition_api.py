"""The AI Multimedia Platform's recognition API against a real tritonserver, with the real
offline face embedder (dlib's ResNet, package weights) and the real MTCNN and NanoDet, on real
photos from registry packages (tests/photos.py): enrol Obama from one photo, recognise him in
another, not Biden nor anyone of a six-person group photo; delete, and nothing of him remains in
the gallery's files. Consent and bearer-token rules as a new user would meet them."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import pytest

from gateway.vectors.sqlite_vec import SqliteVecStore
from tests.e2e.conftest import Gateway, astronaut_png
from tests.photos import photo_bytes

pytestmark = pytest.mark.integration
TOKEN = "test-token-6f1d"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONSENT = json.dumps({"purpose": "face_recognition", "text_version": "2026-12-01"})
SPACE = "dlib_resnet_v1"
GROUP_FACES = 6


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    names = ["obama", "obama2", "obama3", "biden", "t1"]
    return photo_bytes(names, tmp_path_factory.mktemp("recognition_photos"))


@pytest.fixture(scope="module")
def gateway(swap_triton, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    from tests.e2e.conftest import make_gateway

    root = tmp_path_factory.mktemp("recognition_gateway")
    started = make_gateway(swap_triton, root, api_token=TOKEN)
    started.start()
    yield started
    started.stop()


def post(
    client: httpx.Client, path: str, image: bytes, *, auth: bool = True, **data: str
) -> httpx.Response:
    headers = AUTH if auth else {}
    files = {"image": ("photo.jpg", image)}
    return client.post(path, files=files, data=data, headers=headers, timeout=120)


def register(client: httpx.Client, image: bytes, name: str, person_id: str | None = None) -> dict:
    form = {"name": name, "consent": CONSENT} | ({"person_id": person_id} if person_id else {})
    answer = client.post(
        "/api/face-recognition/register",
        files={"image": ("photo.jpg", image)},
        data=form,
        headers=AUTH,
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def recognise(client: httpx.Client, image: bytes) -> list[dict]:
    answer = post(client, "/api/face-recognition/recognize", image)
    assert answer.status_code == 200, answer.text
    return answer.json()["faces"]


def data_dir(gateway: Gateway) -> Path:
    folder = gateway.settings.data_dir
    assert folder is not None
    return folder


def gallery_files(gateway: Gateway) -> list[Path]:
    data = data_dir(gateway)
    return sorted(p for p in data.glob("gallery*") if p.is_file())


def test_detect_finds_every_face_of_the_group_photo_with_named_landmarks(gateway, photos):
    with gateway.client() as client:
        answer = post(client, "/api/face-recognition/detect", photos["t1"], auth=False)
    assert answer.status_code == 200, answer.text
    faces = answer.json()["faces"]
    assert len(faces) == GROUP_FACES
    assert [f["face_id"] for f in faces] == [f"face_{i:03d}" for i in range(1, 7)]
    for face in faces:
        x1, y1, x2, y2 = face["bbox"]
        assert x2 > x1 and y2 > y1 and face["confidence"] >= 0.9
        assert set(face["landmarks"]) == {
            "left_eye",
            "right_eye",
            "nose",
            "mouth_left",
            "mouth_right",
        }
        assert x1 <= face["landmarks"]["nose"][0] <= x2
    assert answer.json()["model"] == "face_detect_mtcnn" and "warning" not in answer.json()


def test_the_gallery_routes_refuse_callers_without_the_token(gateway, photos):
    with gateway.client() as client:
        missing = post(client, "/api/face-recognition/recognize", photos["obama"], auth=False)
        wrong = client.get("/api/face-recognition/people", headers={"Authorization": "Bearer x"})
        basic = client.get("/api/face-recognition/people", headers={"Authorization": "Basic x"})
        open_policy = client.get("/api/face-recognition/policy")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["detail"]
    assert wrong.status_code == 401 and basic.status_code == 401
    assert open_policy.status_code == 200
    policy = open_policy.json()
    assert policy["token_required"] is True and policy["recognizer"] == "dlib"
    assert policy["threshold"] == 0.6 and policy["retention_days"] == 365


def test_register_without_consent_is_refused_and_stores_nothing(gateway, photos):
    with gateway.client() as client:
        bare = post(client, "/api/face-recognition/register", photos["obama"], name="Obama")
        bad_version = post(
            client,
            "/api/face-recognition/register",
            photos["obama"],
            name="Obama",
            consent=json.dumps({"purpose": "face_recognition", "text_version": "0.1"}),
        )
        people = client.get("/api/face-recognition/people", headers=AUTH).json()
    assert bare.status_code == 400 and "consent" in bare.json()["detail"]
    assert bad_version.status_code == 400 and "2026-12-01" in bad_version.json()["detail"]
    assert people == {"people": [], "total": 0}


def test_a_group_photo_cannot_register_one_person(gateway, photos):
    with gateway.client() as client:
        answer = post(
            client, "/api/face-recognition/register", photos["t1"], name="who", consent=CONSENT
        )
    assert answer.status_code == 400 and "6 faces" in answer.json()["detail"]


def test_enrol_recognise_delete_and_nothing_remains(gateway, photos):
    with gateway.client() as client:
        enrolled = register(client, photos["obama"], "Barack Obama")
        assert enrolled["success"] is True and enrolled["face_id"].startswith("face_")
        assert enrolled["model"] == SPACE and "warning" not in enrolled

        same = recognise(client, photos["obama2"])
        other = recognise(client, photos["biden"])
        group = recognise(client, photos["t1"])
        print(f"obama2 vs enrolled obama: {same[0]['distance']}")
        print(f"biden: {other[0]['distance']}; group: {[f['distance'] for f in group]}")
        assert len(same) == 1 and same[0]["known"] is True
        assert same[0]["name"] == "Barack Obama" and same[0]["face_id"] == enrolled["face_id"]
        assert same[0]["distance"] < 0.6 and same[0]["metric"] == "euclidean"
        assert len(other) == 1 and other[0]["known"] is False and other[0]["name"] is None
        assert len(group) == GROUP_FACES and not any(face["known"] for face in group)

        second = register(client, photos["obama3"], "ignored", person_id=enrolled["person_id"])
        assert second["person_id"] == enrolled["person_id"] and second["name"] == "Barack Obama"
        people = client.get("/api/face-recognition/people", headers=AUTH).json()
        assert people["total"] == 1 and len(people["people"][0]["faces"]) == 2
        consent = people["people"][0]["faces"][0]["consent"]
        assert consent["purpose"] == "face_recognition" and consent["text_version"] == "2026-12-01"

        vectors = stored_vectors(gateway, [enrolled["face_id"], second["face_id"]])
        deleted = client.delete(
            f"/api/face-recognition/people/{enrolled['person_id']}", headers=AUTH
        )
        assert deleted.status_code == 200 and deleted.json()["faces_deleted"] == 2
        after = recognise(client, photos["obama2"])
        assert after[0]["known"] is False and after[0]["distance"] is None
        again = client.delete(f"/api/face-recognition/people/{enrolled['person_id']}", headers=AUTH)
        assert again.status_code == 404

    contents = b"".join(path.read_bytes() for path in gallery_files(gateway))
    for vector in vectors:  # every 16-byte window: a vector may straddle two pages
        raw = vector.tobytes()
        left = [i for i in range(0, len(raw), 16) if raw[i : i + 16] in contents]
        assert not left, f"a deleted face's embedding is still on disk at offsets {left}"
    assert b"Barack Obama" not in contents
    audit = sqlite3.connect(data_dir(gateway) / "gallery-audit.sqlite3")
    events = [row[0] for row in audit.execute("SELECT event FROM audit ORDER BY seq")]
    assert events == ["enrolled", "enrolled", "person_deleted"]
    assert "Barack" not in (gateway.log_path.read_text(errors="replace"))


def stored_vectors(gateway: Gateway, face_ids: list[str]) -> list[np.ndarray]:
    """The gallery's stored unit vectors, read through a second connection to its file."""
    store = SqliteVecStore(data_dir(gateway) / "gallery.sqlite3", {})
    try:
        vectors = [store.get_vector(face_id, SPACE) for face_id in face_ids]
    finally:
        store.close()
    assert all(v is not None for v in vectors)
    return [v for v in vectors if v is not None]


def test_classify_and_detect_answer_the_platforms_shapes(gateway):
    with gateway.client() as client:
        classes = post(client, "/api/image-recognition/classify", astronaut_png(256), auth=False)
        own = post(
            client,
            "/api/image-recognition/classify",
            astronaut_png(256),
            auth=False,
            labels="cat, astronaut, car",
            top_k="3",
        )
        objects = post(client, "/api/image-recognition/detect", astronaut_png(512), auth=False)
        unknown = post(
            client, "/api/image-recognition/classify", astronaut_png(64), auth=False, model="x"
        )
    assert classes.status_code == 200, classes.text
    ranked = classes.json()["classifications"]
    assert len(ranked) == 5 and all(set(c) == {"label", "confidence"} for c in ranked)
    assert ranked == sorted(ranked, key=lambda c: -c["confidence"])
    assert "synthetic" in classes.json()["warning"]  # tiny synthetic CLIP in this repository
    assert own.status_code == 200 and {c["label"] for c in own.json()["classifications"]} == {
        "cat",
        "astronaut",
        "car",
    }
    assert sum(c["confidence"] for c in own.json()["classifications"]) == pytest.approx(1, 1e-3)
    assert objects.status_code == 200, objects.text
    detections = objects.json()["detections"]
    assert detections and detections[0]["label"] == "person"
    assert len(detections[0]["bbox"]) == 4 and "warning" not in objects.json()
    assert unknown.status_code == 400 and "clip_vit_b32" in unknown.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"", 400), (b"not an image at all", 415), (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, 400)],
)
def test_hostile_uploads_get_a_reason_not_a_crash(gateway, body, status):
    with gateway.client() as client:
        for path in ("/api/face-recognition/detect", "/api/image-recognition/detect"):
            answer = post(client, path, body, auth=False)
            assert answer.status_code == status, (path, answer.text)
            assert answer.json()["detail"]


async def stream(url: str, frames: list[bytes], headers: dict[str, str]) -> list[dict]:
    """Send every frame at once, then read answers until the last frame's arrives."""
    answers: list[dict] = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers=headers, max_msg_size=0) as ws,
    ):
        for data in frames:
            await ws.send_bytes(data)
        while not answers or answers[-1]["data"].get("seq") != len(frames):
            message = await asyncio.wait_for(ws.receive(), 120)
            assert message.type == aiohttp.WSMsgType.TEXT, message
            answers.append(json.loads(message.data))
    return answers


def test_the_camera_names_the_enrolled_person_in_the_newest_frame_and_counts_drops(gateway, photos):
    with gateway.client() as client:
        enrolled = register(client, photos["obama"], "Barack Obama")
    later = [photos[n] for n in ("biden", "t1", "obama3", "biden", "obama2")]
    frames = [astronaut_png(512), *later]
    url = gateway.url.replace("http", "ws", 1) + "/ws/camera"
    try:
        answers = asyncio.run(stream(url, frames, AUTH))
    finally:
        with gateway.client() as client:
            client.delete(f"/api/face-recognition/people/{enrolled['person_id']}", headers=AUTH)
    results = [a["data"] for a in answers if a["type"] == "frame_result"]
    print([(r["seq"], r["dropped"], r["processing_ms"]) for r in results])
    assert not [a for a in answers if a["type"] == "error"]
    assert results[0]["seq"] == 1 and results[-1]["seq"] == len(frames)
    assert len(results) + sum(r["dropped"] for r in results) == len(frames)
    assert sum(r["dropped"] for r in results) >= 1, "frames sent faster than processed"
    newest = results[-1]
    assert [f["name"] for f in newest["faces"]] == ["Barack Obama"]
    assert all(set(o) == {"label", "confidence", "bbox"} for o in newest["objects"])
    first = results[0]
    assert "person" in {o["label"] for o in first["objects"]}, "NanoDet finds the astronaut"
    assert [f["known"] for f in first["faces"]] == [False]


def test_the_camera_takes_the_token_from_a_first_message_and_refuses_a_wrong_one(gateway):
    async def connect(token: str) -> tuple[str | None, int | None]:
        url = gateway.url.replace("http", "ws", 1) + "/ws/camera"
        async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
            await ws.send_json({"type": "auth", "token": token})
            message = await asyncio.wait_for(ws.receive(), 30)
            text = message.data if message.type == aiohttp.WSMsgType.TEXT else None
            return text, ws.close_code

    accepted, _ = asyncio.run(connect(TOKEN))
    refused, code = asyncio.run(connect("wrong"))
    assert accepted is not None and json.loads(accepted) == {"type": "authenticated"}
    assert refused is None and code == 1008
