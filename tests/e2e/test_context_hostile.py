"""A hostile-input sweep of the Image Context Extractor API (/api/v1, /ws*) against one real
stack for the module: the context models on the swap tests' Triton (tests/e2e/conftest.py),
one gateway with a 1 MB upload limit, and a media root holding the hostile files the sweep
names (symlinks out of the root, link loops, a FIFO, /dev/zero behind a link, files that are
not images, a name that is not UTF-8, a tree nested 1200 deep).

Every refusal is a 4xx in the seed's error body (`success`, `error`, `message`,
`details.status_code`, `timestamp`) whose message says why; never a 5xx, a hang or a dropped
connection. After each one the gateway still answers /api/v1/health, the images stored before
the sweep are still listed and download unchanged, and its log holds no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import os
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from PIL import Image

from serving.launcher import TritonServer
from tests.e2e import raw_http
from tests.e2e.conftest import Gateway, make_gateway
from tests.e2e.test_context_api import save_photos
from tests.e2e.test_hostile_media import Upload, multipart, png_claiming

pytestmark = pytest.mark.integration

MB = 1024 * 1024
UPLOAD_LIMIT = 1 * MB  # max_upload_bytes of this module's gateway
WS_LIMIT = 64 * 1024  # ws_max_message_bytes (the default)
ERROR_KEYS = {"success", "error", "message", "details", "timestamp"}
DEEP = 1200  # directory levels: past Python's recursion limit of 1000
# Hostile files under media/h/, by name (made by the `stack` fixture).
REGULAR_IMAGES_IN_H = [
    "a.gif",
    "bomb.png",
    "café 猫.jpg",
    "cut.jpg",
    "empty.jpg",
    "one.png",
    "text.jpg",
    "zip.jpg",
]


# --- the stack -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    gateway: Gateway
    media: Path
    outside: Path  # a folder beside the media root, holding secret.jpg
    photos: dict[str, Path]
    log_mark: list[int]  # where the gateway log stood when the running test began


@dataclass(frozen=True)
class Stored:
    """What the gateway holds before the sweep; each must survive every refusal."""

    processed_id: str  # photos/astronaut.jpg, processed by path
    processed_bytes: bytes
    uploaded_id: str  # uploads/chelsea_upload.jpg
    uploaded_bytes: bytes


def hostile_files(media: Path, outside: Path, photos: dict[str, Path]) -> None:
    h = media / "h"
    h.mkdir()
    (outside / "secret.jpg").write_bytes(photos["rocket"].read_bytes())
    (outside / "secrets").mkdir()
    (h / "out.jpg").symlink_to(outside / "secret.jpg")
    (h / "outdir").symlink_to(outside / "secrets")
    (h / "loop.jpg").symlink_to(h / "loop.jpg")
    (h / "loopa").symlink_to(h / "loopb")
    (h / "loopb").symlink_to(h / "loopa")
    (h / "zero.jpg").symlink_to("/dev/zero")
    os.mkfifo(h / "fifo.jpg")
    (h / "dir.jpg").mkdir()
    (h / "text.jpg").write_text("hello, not a photo\n" * 20)
    cut = photos["coffee"].read_bytes()
    (h / "cut.jpg").write_bytes(cut[: len(cut) // 2])
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("photo.jpg", photos["rocket"].read_bytes())
    (h / "zip.jpg").write_bytes(archive.getvalue())
    (h / "a.gif").write_bytes(encoded(Image.new("RGB", (8, 8)), "GIF"))
    (h / "one.png").write_bytes(encoded(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"))
    (h / "bomb.png").write_bytes(png_claiming(30_000, 30_000))
    (h / "empty.jpg").write_bytes(b"")
    (h / "café 猫.jpg").write_bytes(photos["chelsea"].read_bytes())
    with open(os.fsencode(h) + b"/\xff\xfe.jpg", "wb") as latin:  # not UTF-8: skipped
        latin.write(photos["chelsea"].read_bytes())
    deep = media / "deep"
    level = deep
    level.mkdir()
    for _ in range(DEEP):
        level = level / "d"
        level.mkdir()
    shutil.copy(photos["rocket"], level / "bottom.jpg")


def remove_deep_tree(media: Path) -> None:
    """shutil.rmtree (pytest's clean-up of old runs) recurses once per level: 1200 is too
    many for Python 3.11's, so the chain is taken down from the bottom here."""
    levels = [media / "deep" / "/".join(["d"] * depth) for depth in range(DEEP, 0, -1)]
    (levels[0] / "bottom.jpg").unlink(missing_ok=True)
    for level in [*levels, media / "deep"]:
        level.rmdir()


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def stack(swap_triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One gateway for the module (start_gateway is function-scoped), its media root inside
    this module's own folder (make_gateway's FACET_MEDIA_ROOTS)."""
    root = tmp_path_factory.mktemp("context_hostile")
    media, outside = root / "media", root / "outside"
    outside.mkdir()
    photos = save_photos(media / "photos")
    hostile_files(media, outside, photos)
    gateway = make_gateway(swap_triton, root, max_upload_bytes=UPLOAD_LIMIT, job_workers=1)
    gateway.start()
    yield Stack(gateway, media, outside, photos, [0])
    gateway.stop()
    remove_deep_tree(media)


@pytest.fixture(autouse=True)
def mark_the_log(stack: Stack) -> None:
    """Each test reads the log from here on, so a traceback is blamed on the test that caused
    it; the last test reads all of it."""
    stack.log_mark[0] = 0 if not stack.gateway.log.exists() else stack.gateway.log.stat().st_size


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway.url, timeout=120) as http:
        yield http


@pytest.fixture(scope="module")
def stored(stack: Stack, client: httpx.Client) -> Stored:
    processed = client.post("/api/v1/images/process", json={"image_path": "photos/astronaut.jpg"})
    assert processed.status_code == 200, processed.text
    chelsea = stack.photos["chelsea"].read_bytes()
    uploaded = client.post(
        "/api/v1/images/upload",
        files={"file": ("chelsea_upload.jpg", chelsea, "image/jpeg")},
        data={"process_immediately": "true"},
    )
    assert uploaded.status_code == 200, uploaded.text
    return Stored(
        processed.json()["image_id"],
        stack.photos["astronaut"].read_bytes(),
        uploaded.json()["image_id"],
        chelsea,
    )


# --- what every test checks ------------------------------------------------------------------


def assert_refused(answer: httpx.Response, status: int, *words: str) -> None:
    """`status`, in the seed's error body, with a message holding each of `words` (any case)."""
    assert answer.status_code == status, (answer.status_code, answer.text[:600])
    body = answer.json()
    assert set(body) == ERROR_KEYS, body
    assert body["success"] is False and body["details"] == {"status_code": status}, body
    message = body["message"]
    assert isinstance(message, str) and message.strip(), body
    assert "Traceback" not in message and "Internal Server Error" not in message
    for word in words:
        assert word.lower() in message.lower(), (word, message)


def assert_still_serving(client: httpx.Client, stack: Stack, stored: Stored) -> None:
    """Health answers, what was stored before is still listed and downloads unchanged, and
    nothing went wrong inside the gateway (no traceback in its log)."""
    health = client.get("/api/v1/health")
    assert health.status_code == 200 and health.json()["database_connected"] is True
    listed = client.get("/api/v1/images/", params={"limit": 1000})
    assert listed.status_code == 200, listed.text
    ids = {item["id"] for item in listed.json()}
    assert {stored.processed_id, stored.uploaded_id} <= ids
    for image_id, data in (
        (stored.processed_id, stored.processed_bytes),
        (stored.uploaded_id, stored.uploaded_bytes),
    ):
        download = client.get(f"/api/v1/images/download/{image_id}")
        assert download.status_code == 200 and download.content == data
    with stack.gateway.log.open("rb") as handle:
        handle.seek(stack.log_mark[0])
        log = handle.read().decode(errors="replace")
    assert "Traceback" not in log, log[max(0, log.index("Traceback") - 2000) :][:6000]


def raw_request(stack: Stack, head: bytes) -> httpx.Response:
    return raw_http.raw_request(stack.gateway.port, head)


# --- paths a client names --------------------------------------------------------------------

Expect = tuple[int, str] | None  # status and a word of the reason; None: not this kind


@dataclass(frozen=True)
class PathCase:
    path: str
    file: Expect  # as image_path / image1_path
    directory: Expect  # as directory_path
    upload_dir: Expect


OUTSIDE = (403, "outside the media roots")
PATH_CASES: dict[str, PathCase] = {
    "dot-dot traversal": PathCase("../../etc/passwd", OUTSIDE, OUTSIDE, OUTSIDE),
    "dot-dot inside then out": PathCase("photos/../../outside", OUTSIDE, OUTSIDE, OUTSIDE),
    "an absolute path outside": PathCase("/etc/passwd", OUTSIDE, OUTSIDE, OUTSIDE),
    "the home directory": PathCase("~", OUTSIDE, OUTSIDE, OUTSIDE),
    "a file in the home directory": PathCase("~/x.jpg", OUTSIDE, OUTSIDE, OUTSIDE),
    # Path.expanduser raised RuntimeError (a 500); now left as written, as a shell does.
    "the home of an unknown user": PathCase(
        "~nosuchuser/x.jpg", (404, "does not exist"), (404, "does not exist"), None
    ),
    "a NUL byte": PathCase("a\x00b.jpg", (400, "NUL"), (400, "NUL"), (400, "NUL")),
    "5000 characters": PathCase("a" * 5000, (400, "4096"), (400, "4096"), (400, "4096")),
    # A 300-character segment: a 500 (ENAMETOOLONG) as upload_dir before.
    "a 300-character name": PathCase(
        "a" * 300 + ".jpg",
        (400, "File name too long"),
        (400, "File name too long"),
        (400, "File name too long"),
    ),
    "a newline": PathCase(
        "h/new\nline.jpg", (404, "does not exist"), (404, "does not exist"), None
    ),
    "a symlink to a file outside": PathCase("h/out.jpg", OUTSIDE, OUTSIDE, OUTSIDE),
    "a symlink to a directory outside": PathCase("h/outdir", OUTSIDE, OUTSIDE, OUTSIDE),
    "a file through a directory symlink": PathCase("h/outdir/x.jpg", OUTSIDE, OUTSIDE, OUTSIDE),
    # A link loop as upload_dir: a 500 (mkdir's FileExistsError) before.
    "a symlink loop": PathCase(
        "h/loop.jpg",
        (400, "Too many levels of symbolic links"),
        (400, "Too many levels of symbolic links"),
        (400, "Too many levels of symbolic links"),
    ),
    "a two-link loop": PathCase(
        "h/loopa",
        (400, "Too many levels of symbolic links"),
        (400, "Too many levels of symbolic links"),
        (400, "Too many levels of symbolic links"),
    ),
    "a FIFO named .jpg": PathCase(
        "h/fifo.jpg",
        (400, "not a regular file"),
        (400, "not a directory"),
        (400, "not a directory"),
    ),
    "/dev/zero through a symlink": PathCase("h/zero.jpg", OUTSIDE, OUTSIDE, OUTSIDE),
    "a directory where a file is expected": PathCase(
        "h/dir.jpg", (400, "is a directory"), None, None
    ),
    "a file where a directory is expected": PathCase(
        "h/text.jpg", None, (400, "not a directory"), (400, "not a directory")
    ),
    # A file on the way as upload_dir: a 500 (mkdir's NotADirectoryError) before.
    "a path through a file": PathCase(
        "photos/astronaut.jpg/sub",
        (400, "not a directory"),
        (400, "not a directory"),
        (400, "not a directory"),
    ),
    # JSON can carry lone surrogates: a 500 (UnicodeEncodeError in realpath) before.
    "a lone surrogate": PathCase("h/\ud800.jpg", (400, "Unicode"), (400, "Unicode"), None),
    "a surrogate escape (a non-UTF-8 name on disk)": PathCase(
        "h/\udcff\udcfe.jpg", (400, "Unicode"), (400, "Unicode"), None
    ),
}


def is_text(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def small_jpeg(stack: Stack) -> bytes:
    return stack.photos["rocket"].read_bytes()


Send = Callable[[httpx.Client, str], httpx.Response]
# Each route that takes a path, and the kind of path it takes.
PATH_ROUTES = {
    "POST images/process": "file",
    "POST duplicates/compare": "file",
    "GET duplicates/check-image": "file",
    "GET directories/scan": "directory",
    "POST directories/process": "directory",
    "POST directories/process-async": "directory",
    "POST duplicates/check": "directory",
    "POST images/upload": "upload_dir",
}


def path_routes(stack: Stack) -> dict[str, Send]:
    """How to send a path to each of PATH_ROUTES."""

    def post_json(route: str, field: str, **extra: Any) -> Send:
        def send(client: httpx.Client, path: str) -> httpx.Response:
            # json.dumps escapes lone surrogates as \\ud800 (httpx's json= cannot encode them)
            body = json.dumps({field: path, **extra}).encode()
            headers = {"content-type": "application/json"}
            return client.post(f"/api/v1/{route}", content=body, headers=headers)

        return send

    def get(route: str, field: str) -> Send:
        return lambda client, path: client.get(f"/api/v1/{route}", params={field: path})

    def upload(client: httpx.Client, path: str) -> httpx.Response:
        return client.post(
            "/api/v1/images/upload",
            files={"file": ("hostile_dir.jpg", small_jpeg(stack), "image/jpeg")},
            data={"upload_dir": path, "process_immediately": "false"},
        )

    return {
        "POST images/process": post_json("images/process", "image_path"),
        "POST duplicates/compare": post_json(
            "duplicates/compare", "image1_path", image2_path="photos/astronaut.jpg"
        ),
        "GET duplicates/check-image": get("duplicates/check-image", "image_path"),
        "GET directories/scan": get("directories/scan", "directory_path"),
        "POST directories/process": post_json("directories/process", "directory_path"),
        "POST directories/process-async": post_json("directories/process-async", "directory_path"),
        "POST duplicates/check": post_json("duplicates/check", "directory_path"),
        "POST images/upload": upload,
    }


def path_pairs() -> list[Any]:
    """(case, route) wherever the case is hostile for that kind of path and can be sent (a
    URL or a form field cannot carry a lone surrogate; JSON can)."""
    pairs = []
    for case, spec in PATH_CASES.items():
        for route, kind in PATH_ROUTES.items():
            sendable = is_text(spec.path) or not (route.startswith("GET") or kind == "upload_dir")
            if getattr(spec, kind) is not None and sendable:
                pairs.append(pytest.param(case, route, id=f"{case} | {route}"))
    return pairs


@pytest.mark.parametrize(("case", "route"), path_pairs())
def test_a_hostile_path_is_refused_with_its_reason_and_nothing_is_lost(
    stack: Stack, client: httpx.Client, stored: Stored, case: str, route: str
) -> None:
    spec, send = PATH_CASES[case], path_routes(stack)[route]
    expected = getattr(spec, PATH_ROUTES[route])
    before = sorted(p.name for p in (stack.media / "uploads").iterdir())
    answer = send(client, spec.path)
    assert_refused(answer, *expected)
    assert answer.elapsed.total_seconds() < 10
    assert sorted(p.name for p in (stack.media / "uploads").iterdir()) == before
    assert (stack.outside / "secret.jpg").read_bytes() == stack.photos["rocket"].read_bytes()
    assert_still_serving(client, stack, stored)


def test_no_task_was_queued_for_a_refused_directory(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    for case in ("dot-dot traversal", "a symlink to a directory outside", "a FIFO named .jpg"):
        answer = client.post(
            "/api/v1/directories/process-async",
            json={"directory_path": PATH_CASES[case].path},
        )
        assert answer.status_code in (400, 403), answer.text
    tasks = client.get("/api/v1/directories/tasks").json()
    assert not [t for t in tasks if "etc" in str(t["directory_path"])], tasks
    assert not [t for t in tasks if "fifo" in str(t["directory_path"])], tasks
    assert_still_serving(client, stack, stored)


# --- files that are not (usable) images ------------------------------------------------------

CONTENT_CASES: dict[str, tuple[str, int, str]] = {
    "a text file named .jpg": ("text.jpg", 415, "unsupported image format"),
    "a truncated JPEG": ("cut.jpg", 400, "truncated"),
    "a zip named .jpg": ("zip.jpg", 415, "unsupported image format"),
    "a GIF": ("a.gif", 415, "JPEG, PNG or WebP"),
    "a PNG header claiming 30000x30000 (decompression bomb)": ("bomb.png", 413, "pixel"),
    "an empty file": ("empty.jpg", 400, "empty"),
}


@pytest.mark.parametrize("route", ["process", "compare", "check-image", "upload"])
@pytest.mark.parametrize("case", list(CONTENT_CASES))
def test_a_file_that_is_not_a_usable_image_is_a_clear_4xx(
    stack: Stack, client: httpx.Client, stored: Stored, route: str, case: str
) -> None:
    name, status, word = CONTENT_CASES[case]
    path = f"h/{name}"
    if route == "process":
        answer = client.post("/api/v1/images/process", json={"image_path": path})
    elif route == "compare":
        answer = client.post(
            "/api/v1/duplicates/compare",
            json={"image1_path": "photos/astronaut.jpg", "image2_path": path},
        )
    elif route == "check-image":
        answer = client.get("/api/v1/duplicates/check-image", params={"image_path": path})
    else:
        data = (stack.media / path).read_bytes()
        answer = client.post(
            "/api/v1/images/upload",
            files={"file": (f"refused_{name}", data, "image/jpeg")},
            data={"upload_dir": "refused"},
        )
        # Refused before anything is written: no file, no temporary file.
        assert not list((stack.media / "refused").iterdir())
    assert_refused(answer, status, word)
    assert answer.elapsed.total_seconds() < 10
    assert_still_serving(client, stack, stored)


def test_a_1x1_png_and_a_unicode_name_are_ordinary_images(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    tiny = client.post("/api/v1/images/process", json={"image_path": "h/one.png"})
    assert tiny.status_code == 200, tiny.text
    assert tiny.json()["image_info"]["size"] == [1, 1]
    cat = client.post("/api/v1/images/process", json={"image_path": "h/café 猫.jpg"})
    assert cat.status_code == 200, cat.text
    assert cat.json()["image_info"]["filename"] == "café 猫.jpg"
    upload = client.post(
        "/api/v1/images/upload",
        files={"file": ("ünïcödé 写真.png", (stack.media / "h/one.png").read_bytes(), "image/png")},
    )
    assert upload.status_code == 200, upload.text
    assert upload.json()["file_path"] == "uploads/ünïcödé 写真.png"
    listed = {i["filename"] for i in client.get("/api/v1/images/", params={"limit": 1000}).json()}
    assert {"one.png", "café 猫.jpg", "ünïcödé 写真.png"} <= listed
    assert_still_serving(client, stack, stored)


def test_a_directory_of_hostile_entries_lists_only_regular_images_inside_the_roots(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    """Links out, loops, the FIFO, /dev/zero and the non-UTF-8 name are skipped (that name
    made the scan a 500 before: it cannot be written in JSON); every broken file is listed
    with its reason and the others are processed."""
    scan = client.get("/api/v1/directories/scan", params={"directory_path": "h", "recursive": True})
    assert scan.status_code == 200, scan.text
    assert [Path(p).name for p in scan.json()["files"]] == REGULAR_IMAGES_IN_H
    done = client.post("/api/v1/directories/process", json={"directory_path": "h"})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["total_files"] == len(REGULAR_IMAGES_IN_H)
    assert body["processed"] + body["skipped"] == 2 and body["failed"] == 6, body
    reasons = {Path(path).name: reason for path, reason in body["failures"].items()}
    assert set(reasons) == set(REGULAR_IMAGES_IN_H) - {"one.png", "café 猫.jpg"}
    assert "empty" in reasons["empty.jpg"] and "pixel" in reasons["bomb.png"]
    assert all(reason.strip() for reason in reasons.values())
    assert_still_serving(client, stack, stored)


def test_a_tree_nested_1200_deep_is_scanned_and_processed(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    """The walk recursed once per level: a RecursionError (a 500) past 1000 levels before."""
    params: dict[str, str | bool] = {"directory_path": "deep", "recursive": True}
    scan = client.get("/api/v1/directories/scan", params=params)
    assert scan.status_code == 200, scan.text
    assert [Path(p).name for p in scan.json()["files"]] == ["bottom.jpg"]
    done = client.post("/api/v1/directories/process", json=params)
    assert done.status_code == 200 and done.json()["failed"] == 0, done.text
    assert_still_serving(client, stack, stored)


async def follow_task(base: str, directory: str) -> list[dict[str, Any]]:
    """Subscribe on /ws/processing, start a directory task, collect its events to the end."""
    events: list[dict[str, Any]] = []
    url = f"{base.replace('http', 'ws')}/ws/processing"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        assert (await ws.receive_json(timeout=10))["type"] == "connection_established"
        async with session.post(
            f"{base}/api/v1/directories/process-async",
            json={"directory_path": directory, "recursive": True},
        ) as answer:
            assert answer.status == 200, await answer.text()
            task_id = (await answer.json())["task_id"]
        while True:
            event = await ws.receive_json(timeout=120)
            if event.get("task_id") != task_id:
                continue
            events.append(event)
            if event["type"] in ("task_completed", "task_failed"):
                return events


def test_a_background_task_over_hostile_and_deep_directories_completes(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    for directory, total in (("h", len(REGULAR_IMAGES_IN_H)), ("deep", 1)):
        events = asyncio.run(follow_task(stack.gateway.url, directory))
        assert events[-1]["type"] == "task_completed", events[-1]
        assert events[-1]["result"]["total_files"] == total
    assert_still_serving(client, stack, stored)


# --- uploads ---------------------------------------------------------------------------------


def upload(
    client: httpx.Client,
    name: str,
    data: bytes,
    **fields: str,
) -> httpx.Response:
    return client.post(
        "/api/v1/images/upload", files={"file": (name, data, "image/jpeg")}, data=fields
    )


UPLOAD_REFUSALS: dict[str, tuple[dict[str, Any], int, str]] = {
    "no file part": ({"data": {"overwrite": "true"}}, 400, "file: Field required"),
    "a file sent as a text field": ({"data": {"file": "abc"}}, 400, "must be a file"),
    "an empty file": ({"files": {"file": ("e.jpg", b"", "image/jpeg")}}, 400, "empty"),
    "process_immediately that is no boolean": (
        {"files": "jpeg", "data": {"process_immediately": "perhaps"}},
        400,
        "process_immediately",
    ),
    "overwrite that is no boolean": (
        {"files": "jpeg", "data": {"overwrite": "2"}},
        400,
        "overwrite",
    ),
    "upload_dir sent as a file": (
        {"files": {"file": ("w.jpg", "jpeg"), "upload_dir": ("d", b"x", "text/plain")}},
        400,
        "upload_dir",
    ),
    "a filename of dot-dot": ({"files": {"file": ("..", "jpeg")}}, 400, "dot"),
    "a hidden filename": ({"files": {"file": (".hidden.jpg", "jpeg")}}, 400, "dot"),
    "a filename of 250 characters": (
        {"files": {"file": ("x" * 250 + ".jpg", "jpeg")}},
        400,
        "200 bytes",
    ),
    # 154 characters, 304 bytes: under the old character limit, over NAME_MAX (a 500 before).
    "a filename of 150 Cyrillic letters": (
        {"files": {"file": ("ж" * 150 + ".jpg", "jpeg")}},
        400,
        "200 bytes",
    ),
    "a filename without an image suffix": ({"files": {"file": ("noext", "jpeg")}}, 400, "end in"),
    "a filename that is only a slash": ({"files": {"file": ("/", "jpeg")}}, 400, "end in"),
    "1001 form fields": (
        {"files": "jpeg", "data": {f"f{i}": "x" for i in range(1001)}},
        400,
        "Too many fields",
    ),
    "a body that is not multipart": (
        {"content": b"hello", "headers": {"content-type": "image/jpeg"}},
        400,
        "file",
    ),
}


def upload_arguments(spec: dict[str, Any], jpeg: bytes) -> dict[str, Any]:
    """The httpx arguments of a table row, "jpeg" standing for a real photo's bytes."""
    arguments = dict(spec)
    files = arguments.get("files")
    if files == "jpeg":
        arguments["files"] = {"file": ("photo.jpg", jpeg, "image/jpeg")}
    elif isinstance(files, dict):
        arguments["files"] = {
            field: (value[0], jpeg, "image/jpeg") if value[1:] == ("jpeg",) else value
            for field, value in files.items()
        }
    return arguments


@pytest.mark.parametrize("case", list(UPLOAD_REFUSALS))
def test_a_hostile_upload_is_refused_and_writes_nothing(
    stack: Stack, client: httpx.Client, stored: Stored, case: str
) -> None:
    spec, status, word = UPLOAD_REFUSALS[case]
    before = sorted(p.name for p in (stack.media / "uploads").iterdir())
    answer = client.post("/api/v1/images/upload", **upload_arguments(spec, small_jpeg(stack)))
    assert_refused(answer, status, word)
    assert sorted(p.name for p in (stack.media / "uploads").iterdir()) == before
    assert_still_serving(client, stack, stored)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (b"../../evil_dots.jpg", "evil_dots.jpg"),
        (b"a/b/nested_name.jpg", "nested_name.jpg"),
        (b"..\\..\\windows_name.jpg", "windows_name.jpg"),
        (b"/etc/cron.d/absolute.jpg", "absolute.jpg"),
        (b"nul\x00byte.jpg", "nulbyte.jpg"),
        (b"\xff\xfelatin.jpg", "\xff\xfelatin.jpg"),  # not UTF-8: read as Latin-1
    ],
)
def test_an_upload_filename_with_separators_is_kept_as_its_last_segment_inside_the_root(
    stack: Stack, client: httpx.Client, stored: Stored, sent: bytes, kept: str
) -> None:
    body, headers = multipart(
        [("file", Upload(small_jpeg(stack), sent, "image/jpeg"))],
        [("process_immediately", "false")],
    )
    answer = client.post("/api/v1/images/upload", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["file_path"] == f"uploads/{kept}"
    assert (stack.media / "uploads" / kept).read_bytes() == small_jpeg(stack)
    assert (
        not (stack.media.parent / kept).exists() and not Path("/etc/cron.d/absolute.jpg").exists()
    )
    assert "image_id" not in answer.json()  # process_immediately=false: only stored as a file
    listed = client.get("/api/v1/images/", params={"limit": 1000}).json()
    assert kept not in {item["filename"] for item in listed}
    assert_still_serving(client, stack, stored)


def test_overwrite_false_twice_is_a_409_and_a_bad_overwrite_keeps_the_old_file(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    photo = stack.photos["coffee"].read_bytes()
    first = upload(client, "twice.jpg", photo, process_immediately="false")
    assert first.status_code == 200, first.text
    assert_refused(upload(client, "twice.jpg", photo), 409, "file exists", "overwrite=true")
    assert_refused(upload(client, "twice.jpg", photo, overwrite="false"), 409, "file exists")
    for bad, status in ((b"\xff\xd8\xffnot a jpeg", 400), (b"text", 415), (b"", 400)):
        assert_refused(upload(client, "twice.jpg", bad, overwrite="true"), status)
        assert (stack.media / "uploads" / "twice.jpg").read_bytes() == photo
    assert not [p for p in (stack.media / "uploads").iterdir() if p.name.endswith(".part")]
    assert_still_serving(client, stack, stored)


def test_an_upload_named_as_an_existing_directory_is_a_409_either_way(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    """overwrite=true replaced a directory with os.replace: IsADirectoryError, a 500 before."""
    (stack.media / "uploads" / "taken.jpg").mkdir()
    photo = small_jpeg(stack)
    for overwrite in ("true", "false"):
        answer = upload(client, "taken.jpg", photo, overwrite=overwrite)
        assert_refused(answer, 409, "is a directory")
    assert (stack.media / "uploads" / "taken.jpg").is_dir()
    assert_still_serving(client, stack, stored)


def chunked(head: bytes, size: int, tail: bytes = b"") -> Iterator[bytes]:
    """`head`, `size` filler bytes in 256 KB chunks, `tail`: a body with no Content-Length."""
    yield head
    for _ in range(size // (256 * 1024)):
        yield b"a" * (256 * 1024)
    yield tail


def test_a_chunked_upload_over_the_limit_is_a_413_in_the_seeds_body(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    """BodyLimit's 413 had the gateway's own body, not the seed's, under /api/v1."""
    head = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + small_jpeg(stack)
    )
    answer = client.post(
        "/api/v1/images/upload",
        content=chunked(head, 2 * UPLOAD_LIMIT, b"\r\n--B--\r\n"),
        headers={"content-type": "multipart/form-data; boundary=B"},
    )
    assert "content-length" not in answer.request.headers
    assert_refused(answer, 413, "too large", "1 MB")
    assert answer.headers["connection"] == "close"
    assert not (stack.media / "uploads" / "big.jpg").exists()
    assert_still_serving(client, stack, stored)


def test_a_chunked_json_body_over_the_limit_is_a_413(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    answer = client.post(
        "/api/v1/images/process",
        content=chunked(b'{"image_path": "', 2 * UPLOAD_LIMIT, b'"}'),
        headers={"content-type": "application/json"},
    )
    assert_refused(answer, 413, "too large")
    assert_still_serving(client, stack, stored)


def test_a_declared_content_length_over_the_limit_is_a_413_before_any_body(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    answer = raw_request(
        stack,
        b"POST /api/v1/images/upload HTTP/1.1\r\nHost: facet\r\n"
        b"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: 99999999999\r\n\r\n",
    )
    assert_refused(answer, 413, "too large")
    assert_still_serving(client, stack, stored)


@pytest.mark.parametrize("route", ["images/upload", "images/process", "duplicates/check"])
def test_a_compressed_body_is_a_415_in_the_seeds_body(
    stack: Stack, client: httpx.Client, stored: Stored, route: str
) -> None:
    """The Content-Encoding refusal had the gateway's own body under /api/v1 before."""
    if route == "images/upload":
        body, headers = multipart(
            [("file", Upload(small_jpeg(stack), b"gz.jpg", "image/jpeg"))], []
        )
    else:
        body = json.dumps({"image_path": "photos/astronaut.jpg"}).encode()
        headers = {"content-type": "application/json"}
    answer = client.post(
        f"/api/v1/{route}",
        content=gzip.compress(body),
        headers={**headers, "content-encoding": "gzip"},
    )
    assert_refused(answer, 415, "compressed")
    assert answer.headers["accept-encoding"] == "identity"
    assert not (stack.media / "uploads" / "gz.jpg").exists()
    assert_still_serving(client, stack, stored)


# --- JSON bodies -----------------------------------------------------------------------------

JSON_REFUSALS: dict[str, tuple[str, str, list[str]]] = {
    "not JSON at all": ("images/process", "image_path=photos/astronaut.jpg", ["JSON"]),
    "a JSON array": ("images/process", '["photos/astronaut.jpg"]', ["dictionary"]),
    "extra fields, named": (
        "images/process",
        '{"image_path": "photos/astronaut.jpg", "evil": 1, "more": [2]}',
        ["evil: Extra inputs are not permitted", "more: Extra inputs are not permitted"],
    ),
    "wrong types": (
        "images/process",
        '{"image_path": 123, "force_reprocess": "perhaps"}',
        ["image_path: Input should be a valid string", "force_reprocess"],
    ),
    "a null path": ("images/process", '{"image_path": null}', ["image_path"]),
    "an empty object": ("images/process", "{}", ["image_path: Field required"]),
    "an empty body": ("images/process", "", ["Field required"]),
    "a 5000-digit integer": (
        "images/process",
        '{"image_path": "x.jpg", "force_reprocess": ' + "9" * 5000 + "}",
        ["body"],
    ),
    "1e999": ("images/process", '{"image_path": "x.jpg", "force_reprocess": 1e999}', ["force"]),
    "arrays nested 100000 deep": ("images/process", "[" * 100_000 + "]" * 100_000, ["body"]),
    "an unknown directory field": (
        "directories/process",
        '{"directory_path": "photos", "recurse": true}',
        ["recurse"],
    ),
    "a list as directory_path": (
        "directories/process-async",
        '{"directory_path": ["photos"]}',
        ["directory_path"],
    ),
    "compare without image2_path": (
        "duplicates/compare",
        '{"image1_path": "photos/astronaut.jpg"}',
        ["image2_path: Field required"],
    ),
    "an unknown duplicates field": (
        "duplicates/check",
        '{"similarity_threshold": 0.9, "threshold": 0.5}',
        ["threshold: Extra inputs"],
    ),
}
for _value in ("1.5", "-2", "NaN", "Infinity", "-Infinity", "1e999", '"high"', "null"):
    JSON_REFUSALS[f"similarity_threshold {_value} to check"] = (
        "duplicates/check",
        '{"similarity_threshold": ' + _value + "}",
        ["similarity_threshold"],
    )
    JSON_REFUSALS[f"similarity_threshold {_value} to compare"] = (
        "duplicates/compare",
        '{"image1_path": "photos/astronaut.jpg", "image2_path": "photos/astronaut.jpg", '
        '"similarity_threshold": ' + _value + "}",
        ["similarity_threshold"],
    )


@pytest.mark.parametrize("case", list(JSON_REFUSALS))
def test_a_hostile_json_body_is_a_400_naming_the_problem(
    stack: Stack, client: httpx.Client, stored: Stored, case: str
) -> None:
    route, text, words = JSON_REFUSALS[case]
    answer = client.post(
        f"/api/v1/{route}", content=text.encode(), headers={"content-type": "application/json"}
    )
    assert_refused(answer, 400, *words)
    assert_still_serving(client, stack, stored)


def test_a_body_that_is_not_utf8_is_a_400(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    answer = client.post(
        "/api/v1/images/process",
        content=b'{"image_path": "\xff\xfe.jpg"}',
        headers={"content-type": "application/json"},
    )
    assert_refused(answer, 400)
    assert_still_serving(client, stack, stored)


# --- query parameters ------------------------------------------------------------------------

QUERY_REFUSALS: dict[str, tuple[str, dict[str, Any], str]] = {
    "limit 0": ("images/", {"limit": 0}, "limit"),
    "limit -1": ("images/", {"limit": -1}, "limit"),
    "limit 10^9": ("images/", {"limit": 10**9}, "limit"),
    "limit ten": ("images/", {"limit": "ten"}, "limit"),
    "offset -1": ("images/", {"offset": -1}, "offset"),
    # Past SQLite's 64-bit integers: OverflowError in the store, a 500 before.
    "offset 2^63": ("images/", {"offset": 2**63}, "offset"),
    "offset 10^30": ("images/", {"offset": 10**30}, "offset"),
    "min_score NaN": ("images/", {"query": "a cat", "min_score": "NaN"}, "min_score"),
    "min_score inf": ("images/", {"query": "a cat", "min_score": "inf"}, "min_score"),
    "min_score 2": ("images/", {"query": "a cat", "min_score": 2}, "min_score"),
    "objects of 10k commas": ("images/", {"objects": "," * 10_000}, "objects"),
    "a query of 2001 characters": ("images/", {"query": "x" * 2001}, "query"),
    "a query of only spaces": ("images/", {"query": "   "}, "query"),
    "include_metadata maybe": ("images/", {"include_metadata": "maybe"}, "include_metadata"),
    "check-image with both": (
        "duplicates/check-image",
        {"image_id": "a", "image_path": "b"},
        "exactly one",
    ),
    "check-image with neither": ("duplicates/check-image", {}, "exactly one"),
    "check-image with a 10 KB id": ("duplicates/check-image", {"image_id": "x" * 10_000}, "64"),
    "check-image threshold NaN": (
        "duplicates/check-image",
        {"image_id": "a", "similarity_threshold": "nan"},
        "similarity_threshold",
    ),
    "check-directory threshold 2": (
        "duplicates/check-directory",
        {"directory_path": "photos", "similarity_threshold": 2},
        "similarity_threshold",
    ),
    "tasks limit 0": ("directories/tasks", {"limit": 0}, "limit"),
}


@pytest.mark.parametrize("case", list(QUERY_REFUSALS))
def test_a_hostile_query_parameter_is_a_400_naming_it(
    stack: Stack, client: httpx.Client, stored: Stored, case: str
) -> None:
    route, params, word = QUERY_REFUSALS[case]
    assert_refused(client.get(f"/api/v1/{route}", params=params), 400, word)
    assert_still_serving(client, stack, stored)


@pytest.mark.parametrize("params", [{"similarity_threshold": "nan"}, {"dry_run": "maybe"}])
def test_remove_duplicates_with_a_hostile_parameter_is_a_400_and_deletes_nothing(
    stack: Stack, client: httpx.Client, stored: Stored, params: dict[str, str]
) -> None:
    count = len(client.get("/api/v1/images/", params={"limit": 1000}).json())
    answer = client.delete("/api/v1/duplicates/remove-duplicates", params=params)
    assert_refused(answer, 400, next(iter(params)))
    assert len(client.get("/api/v1/images/", params={"limit": 1000}).json()) == count
    assert_still_serving(client, stack, stored)


def test_a_100_kb_query_is_a_400_not_a_dropped_connection(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    """httpx refuses to send a 100 KB URL; the gateway answers one sent on a socket."""
    answer = raw_request(
        stack,
        b"GET /api/v1/images/?query=" + b"x" * 100_000 + b" HTTP/1.1\r\nHost: facet\r\n\r\n",
    )
    assert_refused(answer, 400, "query")
    assert_still_serving(client, stack, stored)


def test_odd_but_valid_query_parameters_answer_200(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    far = client.get("/api/v1/images/", params={"offset": 10**9})
    assert far.status_code == 200 and far.json() == []
    commas = client.get("/api/v1/images/", params={"objects": "," * 1999, "limit": 1000})
    assert commas.status_code == 200 and stored.processed_id in {i["id"] for i in commas.json()}
    names = ",".join(f"thing{i}" for i in range(200)) + ",person"  # 1,590 characters
    many = client.get("/api/v1/images/", params={"objects": names, "limit": 1000})
    assert many.status_code == 200 and stored.processed_id in {i["id"] for i in many.json()}
    control = client.get("/api/v1/images/", params={"query": "\x00\x01 a cat \x7f", "limit": 3})
    assert control.status_code == 200, control.text
    assert_still_serving(client, stack, stored)


IMAGE_ID_SHAPES = ["%2E%2E", "..%2F..%2Fetc", "%2F", "a%2Fb", "x" * 10_000, "%00", "%FF%FE"]


@pytest.mark.parametrize("method", ["GET info", "GET download", "DELETE", "GET task"])
@pytest.mark.parametrize("shape", IMAGE_ID_SHAPES, ids=lambda s: s[:16])
def test_an_unknown_image_id_of_any_shape_is_a_4xx_and_deletes_nothing(
    stack: Stack, client: httpx.Client, stored: Stored, method: str, shape: str
) -> None:
    prefix = {
        "GET info": "/api/v1/images/info/",
        "GET download": "/api/v1/images/download/",
        "DELETE": "/api/v1/images/",
        "GET task": "/api/v1/directories/task/",
    }[method]
    url = httpx.URL(stack.gateway.url + prefix + shape)  # sent as written, %2F included
    verb = method.split()[0]
    answer = client.request(verb, url, follow_redirects=True)
    assert answer.status_code in (404, 405), (answer.status_code, answer.text[:300])
    assert_refused(answer, answer.status_code)
    assert_still_serving(client, stack, stored)


# --- deleting --------------------------------------------------------------------------------


def test_delete_with_delete_file_on_an_image_whose_file_is_gone_deletes_only_the_record(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    folder = stack.media / "gone"
    folder.mkdir()
    shutil.copy(stack.photos["coffee"], folder / "coffee_gone.jpg")
    image_id = client.post(
        "/api/v1/images/process", json={"image_path": "gone/coffee_gone.jpg"}
    ).json()["image_id"]
    (folder / "coffee_gone.jpg").unlink()
    assert_refused(client.get(f"/api/v1/images/download/{image_id}"), 404, "does not exist")
    answer = client.delete(f"/api/v1/images/{image_id}", params={"delete_file": "true"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["file_deleted"] is False
    assert_refused(client.get(f"/api/v1/images/info/{image_id}"), 404, "no image")
    assert_refused(client.delete(f"/api/v1/images/{image_id}"), 404, "no image")
    assert_still_serving(client, stack, stored)


def test_delete_file_never_deletes_what_a_swapped_in_symlink_points_at(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    folder = stack.media / "swapped"
    folder.mkdir()
    shutil.copy(stack.photos["rocket"], folder / "rocket.jpg")
    image_id = client.post(
        "/api/v1/images/process", json={"image_path": "swapped/rocket.jpg"}
    ).json()["image_id"]
    (folder / "rocket.jpg").unlink()
    (folder / "rocket.jpg").symlink_to(stack.outside / "secret.jpg")
    answer = client.delete(f"/api/v1/images/{image_id}", params={"delete_file": "true"})
    assert answer.status_code == 200 and answer.json()["file_deleted"] is False, answer.text
    assert (stack.outside / "secret.jpg").read_bytes() == stack.photos["rocket"].read_bytes()
    assert_still_serving(client, stack, stored)


def test_remove_duplicates_is_a_dry_run_by_default_and_deletes_nothing(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    copy = stack.media / "dupes" / "astronaut_copy.jpg"
    copy.parent.mkdir()
    shutil.copy(stack.photos["astronaut"], copy)
    twin = client.post("/api/v1/images/process", json={"image_path": "dupes/astronaut_copy.jpg"})
    assert twin.json()["was_duplicate"] is True, twin.text
    before = client.get("/api/v1/images/", params={"limit": 1000}).json()
    for params in ({}, {"similarity_threshold": 1.0}, {"delete_files": "true"}):
        answer = client.delete("/api/v1/duplicates/remove-duplicates", params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["dry_run"] is True and body["message"].startswith("Would remove")
        assert twin.json()["image_id"] in body["removed_ids"], body
    assert client.get("/api/v1/images/", params={"limit": 1000}).json() == before
    assert copy.is_file() and stack.photos["astronaut"].is_file()
    assert_still_serving(client, stack, stored)


# --- WebSockets ------------------------------------------------------------------------------


async def connect(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(url, max_msg_size=0)
    assert (await ws.receive_json(timeout=10))["type"] == "connection_established"
    return ws


async def receive_close(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, list[dict]]:
    """The error replies before the close, and its code (None: the connection just dropped)."""
    replies: list[dict] = []
    while True:
        try:
            message = await ws.receive(timeout=20)
        except (aiohttp.ClientError, ConnectionError):
            return None, replies
        if message.type == aiohttp.WSMsgType.TEXT:
            replies.append(json.loads(message.data))
            continue
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
            return ws.close_code if ws.close_code is not None else message.data, replies
        return ws.close_code, replies  # CLOSED / ERROR: dropped by the peer


async def ping(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_json({"type": "ping"})
    while True:
        reply = await ws.receive_json(timeout=10)
        if reply["type"] == "pong":
            return
        assert reply["type"] == "heartbeat", reply


async def websocket_sweep(base: str) -> dict[str, Any]:
    ws_base = base.replace("http", "ws")
    seen: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        bystander = await connect(session, f"{ws_base}/ws/processing")

        ws = await connect(session, f"{ws_base}/ws")
        await ws.send_str("x" * (WS_LIMIT + 100))  # over the app's limit, under uvicorn's
        seen["just over the limit"] = await receive_close(ws)

        ws = await connect(session, f"{ws_base}/ws")
        await ws.send_str("x" * 200_000)  # over uvicorn's frame limit too
        seen["200 KB"] = await receive_close(ws)

        ws = await connect(session, f"{ws_base}/ws")
        # The server may drop the connection while the frame is still going out.
        with contextlib.suppress(aiohttp.ClientError, ConnectionError):
            await ws.send_str("x" * (20 * MB))
        seen["20 MB"] = await receive_close(ws)

        ws = await connect(session, f"{ws_base}/ws")
        replies = []
        for message in (b'{"type": "ping"}', "{not json", "[1, 2]", '{"type": 7}'):
            if isinstance(message, bytes):
                await ws.send_bytes(message)
            else:
                await ws.send_str(message)
            replies.append(await ws.receive_json(timeout=10))
        await ws.send_str('{"type": "search", "query": "cat"}')
        replies.append(await ws.receive_json(timeout=10))
        await ping(ws)  # still answering
        seen["garbage"] = replies
        await ws.close()

        ws = await connect(session, f"{ws_base}/ws")
        for index in range(100):
            await ws.send_json({"type": "subscribe", "channel": f"channel-{index}"})
        seen["100 unknown channels"] = await receive_close(ws)

        ws = await connect(session, f"{ws_base}/ws/search")
        replies = []
        for limit in (10**9, 0, -1, 1.5, "10", True):
            await ws.send_json({"type": "search", "query": "a cat", "limit": limit})
            replies.append(await ws.receive_json(timeout=30))
        # A lone surrogate in the query: "search failed" and a traceback in the log before.
        await ws.send_str('{"type": "search", "query": "\\ud800 cat"}')
        replies.append(await ws.receive_json(timeout=30))
        await ws.send_str('{"type": "search", "query": "cat", "min_score": NaN}')
        replies.append(await ws.receive_json(timeout=30))
        await ws.send_json({"type": "search", "query": "a person", "limit": 100})
        replies.append(await ws.receive_json(timeout=30))
        seen["search"] = replies
        await ws.close()

        await ping(bystander)
        seen["bystander"] = "pong"
        await bystander.close()
    return seen


def test_hostile_websocket_messages_get_errors_or_documented_closes_and_others_are_served(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    seen = asyncio.run(websocket_sweep(stack.gateway.url))
    code, replies = seen["just over the limit"]
    assert code == 1009 and replies == [], seen["just over the limit"]
    assert seen["200 KB"][0] == 1009
    assert seen["20 MB"][0] in (1009, 1006, None)  # closed, or dropped mid-frame (1006)
    binary, garbage, array, number, search = seen["garbage"]
    assert binary["type"] == "error" and "binary" in binary["message"]
    assert garbage["type"] == "error" and "invalid JSON" in garbage["message"]
    assert array["type"] == "error" and "JSON object" in array["message"]
    assert number["type"] == "error" and '"type"' in number["message"]
    assert search["type"] == "error" and "/ws/search" in search["message"]
    code, replies = seen["100 unknown channels"]
    assert code == 1008, seen["100 unknown channels"]
    assert all("unknown channel" in r["message"] for r in replies), replies
    *limits, surrogate, nan, found = seen["search"]
    assert all(r["type"] == "error" and '"limit"' in r["message"] for r in limits), limits
    assert surrogate["type"] == "error" and "Unicode" in surrogate["message"], surrogate
    assert nan["type"] == "error" and "min_score" in nan["message"], nan
    assert found["type"] == "search_results", found
    assert stored.processed_id in {r["id"] for r in found["results"]}
    assert seen["bystander"] == "pong"
    deadline = time.monotonic() + 10
    while (stats := client.get("/ws/stats").json())["connections"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stats["connections"] == 0, stats  # every hostile connection was let go
    assert_still_serving(client, stack, stored)


def test_the_whole_gateway_log_holds_no_traceback_after_the_sweep(
    stack: Stack, client: httpx.Client, stored: Stored
) -> None:
    stack.log_mark[0] = 0
    assert_still_serving(client, stack, stored)
