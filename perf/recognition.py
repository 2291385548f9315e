"""Face recognition as users call it: every face of a six-face group photo recognised against a
10,000-person gallery through the gateway, beyond the time detection takes (target p50 ≤ 300 ms),
and the live camera at 640×480 (frames answered per second, latency per frame).

    python -m perf.recognition                     # 10,000 people, 30 timed calls, 20 s camera
    python -m perf.recognition --people 2000 --camera-seconds 5

The gallery holds one enrolled face per person: seeded random unit vectors with dlib-like norms
(a search costs the same whatever they hold) plus Obama, enrolled through the API from a real
photo, so the timed calls match for real. The group photo is insightface's t1.jpg, the camera
frames real photos resized to 640×480 (tests/photos.py fetches them). Needs the models in
model_repository/ (`make models`). Report: perf/reports/<date>-<machine>-recognition.md.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Final

import aiohttp
import httpx
import numpy as np
import numpy.typing as npt
from PIL import Image
from tqdm import tqdm

from gateway.faces.embed_align import cut_embedding_chips
from gateway.faces.types import LANDMARK_NAMES
from gateway.recognition.recognizers import DLIB
from gateway.vectors.sqlite_vec import SqliteVecStore
from perf.machine import describe
from perf.servers import Gateway, start_triton
from perf.short_report import machine_line, report_path, save_report
from perf.vector_search import random_units
from tests.photos import photo_bytes

ROOT = Path(__file__).resolve().parents[1]
TARGET_P50_MS: Final = 300.0
DIM: Final = 128
MODELS: Final = (
    "mtcnn_pnet",
    "mtcnn_rnet",
    "mtcnn_onet",
    "face_detect_mtcnn",
    "face_to_float",
    "dlib_resnet_v1",
    "embed_dlib_resnet_v1",
    "nanodet_coco",
    "detect_objects",
)
TOKEN: Final = "perf-token"
AUTH: Final = {"Authorization": f"Bearer {TOKEN}"}
CONSENT: Final = json.dumps({"purpose": "face_recognition", "text_version": "2026-12-01"})
CAMERA_PHOTOS: Final = ("t1", "obama2", "biden", "obama3", "hanks")
CAMERA_SIZE: Final = (640, 480)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m perf.recognition",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--people", type=int, default=10_000, help="gallery size (10,000)")
    parser.add_argument("--calls", type=int, default=30, help="timed calls of each route (30)")
    parser.add_argument("--camera-seconds", type=float, default=20.0, help="camera run (20 s)")
    parser.add_argument("--camera-fps", type=float, default=30.0, help="frames sent per second")
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--out", type=Path, default=ROOT / "perf" / "reports")
    return parser.parse_args(argv)


def fill_gallery(path: Path, people: int) -> None:
    """`people` enrolments as the gallery stores them (gateway/recognition/gallery.py)."""
    store = SqliteVecStore(path, {DLIB.space: DIM})
    try:
        if store.count() >= people:
            return
        vectors = random_units(people, DIM, seed=3)
        far = time.time() + 300 * 86_400
        for i in tqdm(range(people), desc="enrolling people", unit="person"):
            person = f"person_{i:016x}"
            store.upsert(
                f"face_{uuid.uuid4().hex[:16]}",
                {DLIB.space: vectors[i]},
                {
                    "objects": [person],
                    "person_id": person,
                    "name": f"Person {i}",
                    "model": DLIB.space,
                    "norm": 1.45,
                    "consent": {"purpose": "face_recognition", "text_version": "2026-12-01"},
                    "enrolled_at": time.time(),
                    "expires_at": far,
                },
            )
    finally:
        store.close()


def timed_pairs(client: httpx.Client, image: bytes, calls: int) -> tuple[list[float], list[float]]:
    """detect and recognize of the same photo, alternated call by call, so load that drifts
    during the run weighs on both alike."""
    files = {"image": ("t1.jpg", image)}
    paths = ("/api/face-recognition/detect", "/api/face-recognition/recognize")
    for path in paths:  # warm-up
        client.post(path, files=files, headers=AUTH).raise_for_status()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in tqdm(range(calls), desc="detect + recognize", unit="pair"):
        for path, kept in zip(paths, times, strict=True):
            started = time.perf_counter()
            client.post(path, files=files, headers=AUTH).raise_for_status()
            kept.append(1000 * (time.perf_counter() - started))
    return times


def time_chip_cutting(photo: bytes, chips_of: Any, calls: int) -> list[float]:
    rgb = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        chips_of(rgb)
        times.append(1000 * (time.perf_counter() - started))
    return times


def camera_frames(photos: dict[str, bytes]) -> list[bytes]:
    frames = []
    for name in CAMERA_PHOTOS:
        image = Image.open(io.BytesIO(photos[name])).convert("RGB").resize(CAMERA_SIZE)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=85)
        frames.append(buffer.getvalue())
    return frames


async def run_camera(url: str, frames: list[bytes], seconds: float, fps: float) -> dict[str, Any]:
    """Send frames at `fps` for `seconds`; collect every answer until the last one's."""
    results: list[dict[str, Any]] = []
    sent = 0
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers=AUTH, max_msg_size=0) as ws,
    ):

        async def send() -> None:
            nonlocal sent
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                await ws.send_bytes(frames[sent % len(frames)])
                sent += 1
                await asyncio.sleep(1.0 / fps)

        async def receive() -> None:
            while True:
                message = json.loads((await ws.receive()).data)
                if message["type"] == "frame_result":
                    results.append(message["data"])

        receiver = asyncio.create_task(receive())
        started = time.monotonic()
        await send()
        deadline = time.monotonic() + 30
        while (not results or results[-1]["seq"] < sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        receiver.cancel()
    latencies = [r["latency_ms"] for r in results]
    return {
        "frames_sent": sent,
        "frames_answered": len(results),
        "frames_dropped": sum(r["dropped"] for r in results),
        "answered_per_s": round(len(results) / elapsed, 2),
        "latency_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "processing_p50_ms": round(statistics.median(r["processing_ms"] for r in results), 1)
        if results
        else None,
        "faces_per_frame": round(statistics.mean(len(r["faces"]) for r in results), 2)
        if results
        else None,
    }


def group_landmarks(client: httpx.Client, photo: bytes) -> npt.NDArray[np.float64]:
    """The group photo's landmarks as the detect route answers them."""
    faces = client.post("/api/face-recognition/detect", files={"image": ("t1.jpg", photo)}).json()[
        "faces"
    ]
    return np.asarray(
        [[face["landmarks"][name] for name in LANDMARK_NAMES] for face in faces], np.float64
    )


def time_served_embedding(url: str, chips: npt.NDArray[np.uint8], calls: int) -> list[float]:
    """All the photo's chips in one call to the served ensemble, as the gateway sends them."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    tensor = grpcclient.InferInput("face", list(chips.shape), "UINT8")
    tensor.set_data_from_numpy(chips)
    client.infer(DLIB.model, [tensor])
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        client.infer(DLIB.model, [tensor])
        times.append(1000 * (time.perf_counter() - started))
    client.close()
    return times


def time_dlib_in_process(chips: npt.NDArray[np.uint8], calls: int) -> list[float]:
    """The seed's way: dlib itself in the API's process, one face after another (what
    face_recognition.face_encodings does), on the same chips."""
    from export.models.dlib_face import dlib_descriptor

    dlib_descriptor(chips[0])
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        for chip in chips:
            dlib_descriptor(chip)
        times.append(1000 * (time.perf_counter() - started))
    return times


def time_store(path: Path, calls: int) -> list[float]:
    """The gallery's one query for six faces (search_many, k=5), in this process."""
    store = SqliteVecStore(path, {})
    try:
        queries = random_units(6, DIM, seed=11)
        store.search_many(DLIB.space, queries, k=5)
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            store.search_many(DLIB.space, queries, k=5)
            times.append(1000 * (time.perf_counter() - started))
        return times
    finally:
        store.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = ROOT / "build" / "perf" / "recognition"
    data = work / f"gateway-{args.people}"
    data.mkdir(parents=True, exist_ok=True)
    photos = photo_bytes(["t1", *CAMERA_PHOTOS, "obama"], Path(tempfile.mkdtemp()))
    fill_gallery(data / "gallery.sqlite3", args.people)
    store_ms = time_store(data / "gallery.sqlite3", args.calls)
    triton = start_triton(args.repository, work / "triton", list(MODELS))
    gateway = Gateway(
        triton.grpc_url,
        args.repository,
        data,
        {"FACET_API_TOKEN": TOKEN, "FACET_MEDIA_ROOTS": json.dumps([str(work / "media")])},
    )
    try:
        gateway.start()
        with httpx.Client(base_url=gateway.url, timeout=120) as client:
            enrolled = client.post(
                "/api/face-recognition/register",
                files={"image": ("obama.jpg", photos["obama"])},
                data={"name": "Barack Obama", "consent": CONSENT},
                headers=AUTH,
            )
            if enrolled.status_code != 200:
                raise RuntimeError(f"registering the real photo failed: {enrolled.text}")
            detect_ms, recognise_ms = timed_pairs(client, photos["t1"], args.calls)
            faces = client.post(
                "/api/face-recognition/recognize",
                files={"image": ("t1.jpg", photos["t1"])},
                headers=AUTH,
            ).json()["faces"]
            people = client.get("/api/face-recognition/people", headers=AUTH).json()["total"]
            landmarks = group_landmarks(client, photos["t1"])
            person = enrolled.json()["person_id"]  # the next run enrols Obama again
            client.delete(f"/api/face-recognition/people/{person}", headers=AUTH)

        def chips_of(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
            return cut_embedding_chips(rgb, landmarks)

        cut_ms = time_chip_cutting(photos["t1"], chips_of, args.calls)
        rgb = np.asarray(Image.open(io.BytesIO(photos["t1"])).convert("RGB"))
        chips = chips_of(rgb)
        served_ms = time_served_embedding(triton.grpc_url, chips, args.calls)
        url = gateway.url.replace("http", "ws", 1) + "/ws/camera"
        camera = asyncio.run(
            run_camera(url, camera_frames(photos), args.camera_seconds, args.camera_fps)
        )
    finally:
        gateway.stop()
        triton.stop()
    dlib_ms = time_dlib_in_process(chips, args.calls)
    detect_p50, recognise_p50 = statistics.median(detect_ms), statistics.median(recognise_ms)
    paired = statistics.median(r - d for r, d in zip(recognise_ms, detect_ms, strict=True))
    parts = [statistics.median(ms) for ms in (cut_ms, served_ms, store_ms)]
    return {
        "people": people,
        "faces_in_photo": len(faces),
        "recognised": sum(f["known"] for f in faces),
        "detect_p50_ms": round(detect_p50, 1),
        "recognize_p50_ms": round(recognise_p50, 1),
        "recognize_p90_ms": round(float(np.percentile(recognise_ms, 90)), 1),
        "beyond_detection_p50_ms": round(sum(parts), 1),
        "paired_difference_p50_ms": round(paired, 1),
        "cut_chips_p50_ms": round(parts[0], 1),
        "store_query_p50_ms": round(statistics.median(store_ms), 2),
        "embed_served_p50_ms": round(statistics.median(served_ms), 1),
        "embed_dlib_in_process_p50_ms": round(statistics.median(dlib_ms), 1),
        "chips": len(chips),
        "camera": camera | {"size": list(CAMERA_SIZE), "sent_fps": args.camera_fps},
    }


def write_report(result: dict[str, Any], out: Path) -> Path:
    machine = describe()
    day, path = report_path(out, machine, "recognition")
    beyond = result["beyond_detection_p50_ms"]
    met = "met" if beyond <= TARGET_P50_MS else f"missed by {beyond - TARGET_P50_MS:.0f} ms"
    camera = result["camera"]
    lines = [
        f"# Face recognition against a {result['people']:,}-person gallery ({day})",
        "",
        machine_line(machine),
        "MTCNN (package weights) finds the faces, dlib's ResNet (package weights) embeds them "
        "in one Triton call, the embedded gallery (sqlite-vec, exact) answers all of them in "
        f"one query. The photo: insightface's t1.jpg, {result['faces_in_photo']} faces "
        f"found, {result['recognised']} of them enrolled (nobody in it is).",
        "",
        "| what | p50 ms |",
        "|---|---|",
        f"| POST /api/face-recognition/detect (detection alone) | {result['detect_p50_ms']} |",
        f"| POST /api/face-recognition/recognize (detect + embed + match) | "
        f"{result['recognize_p50_ms']} |",
        f"| recognize − detect, call by call (median of the paired differences) | "
        f"{result['paired_difference_p50_ms']} |",
        f"| **recognition beyond detection: the three parts below, each timed alone** | "
        f"**{beyond}** |",
        f"| cutting the {result['chips']} dlib chips (gateway, this process) | "
        f"{result['cut_chips_p50_ms']} |",
        f"| the {result['chips']} faces embedded in one call to `{DLIB.model}` (gRPC, alone) | "
        f"{result['embed_served_p50_ms']} |",
        f"| the same chips through dlib itself in-process, one by one (the seed's way) | "
        f"{result['embed_dlib_in_process_p50_ms']} |",
        f"| the gallery's one query for the {result['chips']} faces (in this process) | "
        f"{result['store_query_p50_ms']} |",
        "",
        f"recognize p90 {result['recognize_p90_ms']} ms. **Target: beyond detection p50 ≤ "
        f"{TARGET_P50_MS:.0f} ms: {met}.** The paired difference subtracts two calls of "
        "about a second each, mostly detection, so it is noise-dominated (it can come out "
        "negative); the verdict uses the three parts timed alone (the answer's HTTP and JSON "
        "are not in them). Served batched vs dlib in-process one face at a time: "
        f"{ratio(result['embed_dlib_in_process_p50_ms'], result['embed_served_p50_ms'])}. "
        "Detection (MTCNN's cascade over a 1280×886 photo) is most of the time.",
        "",
        f"## Live camera, {camera['size'][0]}×{camera['size'][1]} JPEG frames",
        "",
        f"Sent {camera['frames_sent']} frames at {camera['sent_fps']:.0f} per second over "
        f"/ws/camera (faces with names, and objects, for every processed frame): "
        f"**{camera['answered_per_s']} frames answered per second**, "
        f"{camera['frames_dropped']} dropped as stale (the server always takes the newest). "
        f"Latency from a frame's arrival to its answer p50 {camera['latency_p50_ms']} ms; "
        f"processing p50 {camera['processing_p50_ms']} ms; "
        f"{camera['faces_per_frame']} faces per frame on average.",
        "",
    ]
    return save_report(path, lines, result | {"machine": machine.as_dict()})


def ratio(slow: float, fast: float) -> str:
    return f"{slow / fast:.2f}× faster" if fast > 0 else "n/a"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    path = write_report(result, args.out)
    sys.stderr.write(
        f"beyond detection p50 {result['beyond_detection_p50_ms']} ms; "
        f"camera {result['camera']['answered_per_s']} frames/s; report {path}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
