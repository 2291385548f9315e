"""A hostile-input sweep of the recognition API (/api/face-recognition/…, /api/image-recognition/…)
against one real stack for the module: the swap tests' Triton (the real MTCNN, dlib's ResNet and
NanoDet, tiny synthetic CLIP; tests/e2e/conftest.py) and one gateway with FACET_API_TOKEN set.

Before the sweep one person is enrolled from a real photo (tests/photos.py). Every hostile
request must be answered with a 4xx whose JSON `detail` says why, in bounded time, never a 5xx
or a dropped connection; no reason may echo a long input (or an embedding) back in full. After
each test that person is still listed with their face and the gateway log holds no traceback;
at the end they are still recognised in another photo of them.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import io
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from gateway.recognition.labels import DEFAULT_LABELS
from serving.launcher import TritonServer
from tests.e2e import raw_http
from tests.e2e.conftest import Gateway, make_gateway
from tests.e2e.test_hostile_media import Upload, multipart, png_claiming
from tests.photos import photo_bytes

pytestmark = pytest.mark.integration

TOKEN = "hostile-token-3c9a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONSENT = json.dumps({"purpose": "face_recognition", "text_version": "2026-12-01"})
MB = 1024 * 1024
UPLOAD_LIMIT = 15 * MB  # the gateway's default max_upload_bytes
DAY_S = 86_400
RETENTION_DAYS = 365
LONG = 10_000  # characters of a "very long" input
MAX_DETAIL = 600  # no reason needs more; a longer one is echoing something
QUICK_S = 30.0  # every answer within this (a refusal is much quicker; models run on 2 CPUs)
FACES = "/api/face-recognition"
IMAGES = "/api/image-recognition"
ROUTES = {
    "face detect": f"{FACES}/detect",
    "register": f"{FACES}/register",
    "recognize": f"{FACES}/recognize",
    "classify": f"{IMAGES}/classify",
    "object detect": f"{IMAGES}/detect",
}
# A run of numbers such as an embedding printed into a message would be.
NUMBER_RUN = re.compile(r"(-?\d+\.\d+[,\s]+){8,}")


# --- the stack -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    gateway: Gateway
    client: httpx.Client
    photos: dict[str, bytes]
    log_mark: list[int]  # where the gateway log stood when the running test began


@dataclass(frozen=True)
class Keeper:
    """The person enrolled before the sweep; every test ends with them still there."""

    person_id: str
    face_id: str
    name: str


@pytest.fixture(scope="module")
def stack(swap_triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    photos = photo_bytes(
        ["obama", "obama2", "obama3"], tmp_path_factory.mktemp("hostile_recognition_photos")
    )
    root = tmp_path_factory.mktemp("hostile_recognition")
    gateway = make_gateway(swap_triton, root, api_token=TOKEN)
    gateway.start()
    with httpx.Client(base_url=gateway.url, timeout=60) as client:
        yield Stack(gateway, client, photos, [0])
    gateway.stop()


@pytest.fixture(scope="module")
def keeper(stack: Stack) -> Keeper:
    answer = post(stack.client, "register", stack.photos["obama"], name="Keeper Obama")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return Keeper(body["person_id"], body["face_id"], body["name"])


@pytest.fixture(autouse=True)
def nothing_is_lost(stack: Stack, keeper: Keeper) -> Iterator[None]:
    """Each test reads the log from its own start, so a traceback is blamed on its cause; after
    it, the keeper is still listed with their one face."""
    log = stack.gateway.log
    stack.log_mark[0] = log.stat().st_size if log.exists() else 0
    yield
    assert_keeper_listed(stack.client, keeper)
    with log.open("rb") as handle:
        handle.seek(stack.log_mark[0])
        text = handle.read().decode(errors="replace")
    assert "Traceback" not in text, text[max(0, text.index("Traceback") - 1500) :][:5000]


def assert_keeper_listed(client: httpx.Client, keeper: Keeper) -> None:
    people = client.get(f"{FACES}/people", headers=AUTH, timeout=QUICK_S)
    assert people.status_code == 200, people.text
    body = people.json()
    assert body["total"] == len(body["people"])
    mine = [p for p in body["people"] if p["person_id"] == keeper.person_id]
    assert len(mine) == 1, body
    assert mine[0]["name"] == keeper.name
    assert [f["face_id"] for f in mine[0]["faces"]] == [keeper.face_id]
    assert "embedding" not in people.text and not NUMBER_RUN.search(people.text)


# --- sending ---------------------------------------------------------------------------------


def fields_for(route: str, **fields: str) -> dict[str, str]:
    """A register needs a name and consent; a caller's own fields replace these."""
    base = {"name": "Someone", "consent": CONSENT} if route == "register" else {}
    return {**base, **fields}


def post(
    client: httpx.Client,
    route: str,
    image: bytes | None,
    *,
    auth: bool = True,
    filename: str = "photo.jpg",
    **fields: str,
) -> httpx.Response:
    files = None if image is None else {"image": (filename, image, "application/octet-stream")}
    return client.post(
        ROUTES[route],
        files=files,
        data=fields_for(route, **fields),
        headers=AUTH if auth else {},
        timeout=QUICK_S * 2,
    )


def assert_refused(
    answer: httpx.Response, status: int, *words: str, sent: tuple[str, ...] = ()
) -> str:
    """`status`, a JSON body whose `detail` holds each of `words` (any case) and none of the
    long inputs in `sent` in full; the detail."""
    assert answer.status_code == status, (answer.status_code, answer.text[:800])
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    body = answer.json()
    detail = body.get("detail")
    assert isinstance(detail, str) and detail.strip(), body
    assert len(detail) <= MAX_DETAIL, f"{len(detail)} characters: {detail[:300]}…"
    assert "Traceback" not in detail and "internal error" not in detail.lower(), detail
    assert not NUMBER_RUN.search(answer.text), answer.text[:500]
    for word in words:
        assert word.lower() in detail.lower(), (word, detail)
    for value in sent:
        assert value not in detail, f"the detail echoes a {len(value)}-character input"
    assert answer.elapsed.total_seconds() < QUICK_S
    return detail


def raw_request(stack: Stack, head: bytes) -> httpx.Response:
    return raw_http.raw_request(stack.gateway.port, head)


def delete_person(client: httpx.Client, person_id: str) -> None:
    answer = client.delete(f"{FACES}/people/{person_id}", headers=AUTH, timeout=QUICK_S)
    assert answer.status_code == 200, answer.text


# --- the images ------------------------------------------------------------------------------


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose SOF0 header claims width×height."""
    data = bytearray(encoded(Image.new("RGB", (16, 16), (120, 30, 60)), "JPEG"))
    at = data.index(b"\xff\xc0") + 5  # marker, length (2), precision (1), then height, width
    data[at : at + 4] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def no_face_photo() -> bytes:
    """skimage's coffee cup: a real photo without a face."""
    from skimage import data

    return encoded(Image.fromarray(np.asarray(data.coffee())), "JPEG")  # type: ignore[no-untyped-call]


def sixteen_bit_gray(photo: Image.Image) -> bytes:
    values = np.asarray(photo.convert("L"), dtype=np.uint16) * 257
    return encoded(Image.fromarray(values.astype(np.uint16)))


def zipped(data: bytes) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photo.jpg", data)
    return buffer.getvalue()


def refused_uploads(photos: dict[str, bytes]) -> dict[str, tuple[bytes, int, str]]:
    """Each hostile file, the status every upload route must answer, and a word of the reason."""
    obama = photos["obama"]
    png = encoded(Image.open(io.BytesIO(obama)))
    return {
        "an empty file": (b"", 400, "empty"),
        "text, not an image": (b"hello, this is not a photo\n" * 40, 415, "JPEG, PNG or WebP"),
        "a zip named .jpg": (zipped(obama), 415, "unsupported"),
        "a GIF": (encoded(Image.new("RGB", (8, 8)), "GIF"), 415, "unsupported"),
        "an SVG": (b'<svg xmlns="http://www.w3.org/2000/svg" width="9"/>', 415, "unsupported"),
        "a truncated JPEG": (obama[: len(obama) // 2], 400, "decode"),
        "a JPEG's first 600 bytes": (obama[:600], 400, "decode"),
        "a truncated PNG": (png[: len(png) // 2], 400, "decode"),
        "a PNG signature only": (png[:8], 400, "decode"),
        "a PNG claiming 30000×30000 (bomb)": (png_claiming(30_000, 30_000), 413, "pixel"),
        "a PNG claiming 2100×2100": (png_claiming(2100, 2100), 413, "pixel"),
        "a PNG claiming 9000×10": (png_claiming(9000, 10), 413, "8192"),
        "a PNG claiming 0×0": (png_claiming(0, 0), 400, "image"),
        "a JPEG claiming 60000×60000 (bomb)": (jpeg_claiming(60_000, 60_000), 413, "pixel"),
        "a JPEG claiming 9000×9000": (jpeg_claiming(9000, 9000), 413, "8192"),
    }


@dataclass(frozen=True)
class Odd:
    """A valid but unusual image: served everywhere; a register enrols it only with a face."""

    data: bytes
    face: bool


def odd_images(photos: dict[str, bytes]) -> dict[str, Odd]:
    face = Image.open(io.BytesIO(photos["obama"])).convert("RGB")
    rgba = face.convert("RGBA")
    rgba.putalpha(200)
    return {
        "a 1×1 PNG": Odd(encoded(Image.new("RGB", (1, 1), (200, 10, 10))), False),
        "a 1×1 grayscale PNG": Odd(encoded(Image.new("L", (1, 1), 77)), False),
        "a 3×2000 strip": Odd(encoded(Image.new("RGB", (3, 2000), (90, 90, 90))), False),
        "a 2000×3 strip": Odd(encoded(Image.new("RGB", (2000, 3), (90, 90, 90))), False),
        "a photo with no face": Odd(no_face_photo(), False),
        "a grayscale PNG of a face": Odd(encoded(face.convert("L")), True),
        "an RGBA PNG of a face": Odd(encoded(rgba), True),
        "a 16-bit grayscale PNG of a face": Odd(sixteen_bit_gray(face), True),
        "a palette PNG of a face": Odd(encoded(face.convert("P")), True),
        "a WebP of a face": Odd(encoded(face, "WEBP"), True),
    }


# --- uploads ---------------------------------------------------------------------------------

REFUSED_NAMES = list(refused_uploads({"obama": encoded(Image.new("RGB", (64, 64)), "JPEG")}))
ODD_NAMES = [
    "a 1×1 PNG",
    "a 1×1 grayscale PNG",
    "a 3×2000 strip",
    "a 2000×3 strip",
    "a photo with no face",
    "a grayscale PNG of a face",
    "an RGBA PNG of a face",
    "a 16-bit grayscale PNG of a face",
    "a palette PNG of a face",
    "a WebP of a face",
]


@pytest.fixture(scope="module")
def refused(stack: Stack) -> dict[str, tuple[bytes, int, str]]:
    return refused_uploads(stack.photos)


@pytest.fixture(scope="module")
def odd(stack: Stack) -> dict[str, Odd]:
    return odd_images(stack.photos)


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("case", REFUSED_NAMES)
def test_a_hostile_file_is_refused_with_its_reason(
    stack: Stack, refused: dict[str, tuple[bytes, int, str]], case: str, route: str
) -> None:
    data, status, word = refused[case]
    assert_refused(post(stack.client, route, data), status, word)


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("case", ODD_NAMES)
def test_an_odd_but_valid_image_is_served(
    stack: Stack, keeper: Keeper, odd: dict[str, Odd], case: str, route: str
) -> None:
    image = odd[case]
    answer = post(stack.client, route, image.data, name="Odd Image")
    if route == "register" and not image.face:
        assert_refused(answer, 400, "no face")
        return
    assert answer.status_code == 200, answer.text
    body = answer.json()
    if route == "register":
        assert body["name"] == "Odd Image" and body["person_id"] != keeper.person_id
        delete_person(stack.client, body["person_id"])
    elif route == "face detect":
        assert (len(body["faces"]) >= 1) is image.face, body
    elif route == "recognize":
        assert (len(body["faces"]) >= 1) is image.face, body
        if image.face:  # the keeper's own photo, in another mode
            assert body["faces"][0]["person_id"] == keeper.person_id, body
    elif route == "classify":
        assert len(body["classifications"]) == 5
    else:
        assert isinstance(body["detections"], list)


def chunked(head: bytes, size: int, tail: bytes) -> Iterator[bytes]:
    """`head`, `size` filler bytes in 256 KB chunks, `tail`: a body with no Content-Length."""
    yield head
    for _ in range(size // (256 * 1024)):
        yield b"a" * (256 * 1024)
    yield tail


def part_head(photo: bytes) -> bytes:
    return (
        b'--B\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + photo
    )


def test_a_chunked_upload_under_the_limit_is_served(stack: Stack) -> None:
    answer = stack.client.post(
        ROUTES["face detect"],
        content=chunked(part_head(stack.photos["obama"]), 0, b"\r\n--B--\r\n"),
        headers={"content-type": "multipart/form-data; boundary=B"},
    )
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert answer.status_code == 200 and len(answer.json()["faces"]) >= 1, answer.text


BodyCase = Callable[[Stack, str], httpx.Response]


def form(stack: Stack, route: str, files: Any, data: dict[str, str]) -> httpx.Response:
    return stack.client.post(ROUTES[route], files=files, data=data, headers=AUTH)


def send_no_image(stack: Stack, route: str) -> httpx.Response:
    return form(stack, route, None, fields_for(route, top_k="3"))


def send_image_as_text(stack: Stack, route: str) -> httpx.Response:
    return form(stack, route, {"other": ("x.jpg", b"x")}, fields_for(route, image="/etc/passwd"))


def send_json_body(stack: Stack, route: str) -> httpx.Response:
    return stack.client.post(ROUTES[route], json={"image": "aGVsbG8="}, headers=AUTH)


def send_no_boundary(stack: Stack, route: str) -> httpx.Response:
    headers = {**AUTH, "content-type": "multipart/form-data"}
    return stack.client.post(ROUTES[route], content=b"--x\r\n\r\n", headers=headers)


def send_cut_multipart(stack: Stack, route: str) -> httpx.Response:
    headers = {**AUTH, "content-type": "multipart/form-data; boundary=B"}
    body = b'--B\r\nContent-Disposition: form-data; name="image"\r\n\r\nabc'  # no end
    return stack.client.post(ROUTES[route], content=body, headers=headers)


def send_long_filename(stack: Stack, route: str) -> httpx.Response:
    upload = Upload(stack.photos["obama"], b"a" * 5000 + b".jpg", "image/jpeg")
    body, headers = multipart([("image", upload)], list(fields_for(route).items()))
    return stack.client.post(ROUTES[route], content=body, headers={**AUTH, **headers})


def send_chunked_over_limit(stack: Stack, route: str) -> httpx.Response:
    answer = stack.client.post(
        ROUTES[route],
        content=chunked(part_head(stack.photos["obama"]), UPLOAD_LIMIT + MB, b"\r\n--B--\r\n"),
        headers={**AUTH, "content-type": "multipart/form-data; boundary=B"},
    )
    assert "content-length" not in answer.request.headers
    assert answer.request.headers["transfer-encoding"] == "chunked"
    assert answer.headers["connection"] == "close"
    return answer


def send_declared_over_limit(stack: Stack, route: str) -> httpx.Response:
    head = (
        f"POST {ROUTES[route]} HTTP/1.1\r\nHost: facet\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: multipart/form-data; boundary=B\r\n"
        f"Content-Length: {UPLOAD_LIMIT + 2 * MB}\r\n\r\n"
    )
    return raw_request(stack, head.encode())


def send_gzipped(stack: Stack, route: str) -> httpx.Response:
    upload = Upload(stack.photos["obama"], b"photo.jpg", "image/jpeg")
    body, headers = multipart([("image", upload)], list(fields_for(route).items()))
    headers = {**AUTH, **headers, "content-encoding": "gzip"}
    answer = stack.client.post(ROUTES[route], content=gzip.compress(body), headers=headers)
    assert answer.headers.get("accept-encoding") == "identity"
    return answer


# Requests whose body is wrong as a whole, each with its status and a word of the reason.
BODY_CASES: dict[str, tuple[BodyCase, int, str]] = {
    "no image part": (send_no_image, 400, "image: Field required"),
    "a text field where the file belongs": (send_image_as_text, 400, "must be a file"),
    "a JSON body": (send_json_body, 400, "image"),
    "multipart without a boundary": (send_no_boundary, 400, "boundary"),
    "a multipart body cut short": (send_cut_multipart, 400, "image"),
    "a 5000-character filename": (send_long_filename, 400, "filename"),
    "chunked, no Content-Length, over 15 MB": (send_chunked_over_limit, 413, "15 MB"),
    "a declared Content-Length over 15 MB": (send_declared_over_limit, 413, "15 MB"),
    "a gzip-compressed body": (send_gzipped, 415, "compressed"),
}


@pytest.mark.parametrize("route", list(ROUTES))
@pytest.mark.parametrize("case", list(BODY_CASES))
def test_a_hostile_request_body_is_refused_with_its_reason(
    stack: Stack, case: str, route: str
) -> None:
    send, status, word = BODY_CASES[case]
    assert_refused(send(stack, route), status, word)


# --- consent ---------------------------------------------------------------------------------

NOW = time.time()
VALID = {"purpose": "face_recognition", "text_version": "2026-12-01"}


def with_consent(**fields: Any) -> str:
    return json.dumps({**VALID, **fields})


CONSENT_REFUSALS: dict[str, tuple[str, str]] = {
    "absent": ("", "consent"),
    "only spaces": ("   ", "consent"),
    "not JSON": ("yes, I agree", "JSON object"),
    "a JSON array": (json.dumps([VALID]), "JSON object"),
    "a JSON string": (json.dumps(CONSENT), "JSON object"),
    "JSON null": ("null", "JSON object"),
    "a JSON number": ("1", "JSON object"),
    "JSON true": ("true", "JSON object"),
    "an empty object": ("{}", "purpose"),
    "no purpose": (json.dumps({"text_version": "2026-12-01"}), "purpose"),
    "no text_version": (json.dumps({"purpose": "face_recognition"}), "text_version"),
    "a number as purpose": (with_consent(purpose=7), "purpose"),
    "a list as purpose": (with_consent(purpose=["face_recognition"]), "purpose"),
    "an object as text_version": (with_consent(text_version={"v": 1}), "text_version"),
    "null purpose": (with_consent(purpose=None), "purpose"),
    "an empty purpose": (with_consent(purpose=""), "purpose"),
    "a whitespace purpose": (with_consent(purpose=" \t "), "purpose"),
    "a 10k-character purpose": (with_consent(purpose="p" * LONG), "200 characters"),
    "a 10k-character text_version": (with_consent(text_version="v" * LONG), "200 characters"),
    "a control character in purpose": (with_consent(purpose="face\x07rec"), "printable"),
    "a newline in text_version": (with_consent(text_version="2026-12-01\n"), "printable"),
    "a NUL in purpose": (with_consent(purpose="face\x00"), "printable"),
    "a lone surrogate in purpose": (with_consent(purpose="\ud800"), "printable"),
    "an RTL override in purpose": (with_consent(purpose="face\u202erec"), "printable"),
    "an unpublished text_version": (with_consent(text_version="1999-01-01"), "accepted"),
    "an unknown field": (with_consent(evil=1), "unknown fields: evil"),
    "a 10k-character unknown field": (with_consent(**{"k" * LONG: 1}), "unknown fields"),
    "1000 unknown fields": (with_consent(**{f"f{i}": i for i in range(1000)}), "unknown"),
    "expires_at in the past": (with_consent(expires_at=NOW - DAY_S), "future"),
    "expires_at zero": (with_consent(expires_at=0), "future"),
    "expires_at negative": (with_consent(expires_at=-1e18), "future"),
    "expires_at now-ish (1 s ago)": (with_consent(expires_at=NOW - 1), "future"),
    "expires_at as a string": (with_consent(expires_at=str(NOW + DAY_S)), "number"),
    "expires_at 'NaN' as a string": (with_consent(expires_at="NaN"), "number"),
    "expires_at NaN": (with_consent(expires_at=float("nan")), "number"),
    "expires_at Infinity": (with_consent(expires_at=float("inf")), "number"),
    "expires_at -Infinity": (with_consent(expires_at=float("-inf")), "number"),
    "expires_at true": (with_consent(expires_at=True), "number"),
    "expires_at false": (with_consent(expires_at=False), "number"),
    "expires_at null": (with_consent(expires_at=None), "number"),
    "expires_at a list": (with_consent(expires_at=[NOW + DAY_S]), "number"),
    "expires_at 10**400": (with_consent(expires_at=10**400), "number"),
    "expires_at with 4300 digits": (with_consent(expires_at=int("9" * 4300)), "number"),
    "a 5000-digit number anywhere": ('{"purpose": ' + "1" * 5000 + "}", "consent"),
    "arrays nested 100000 deep": ("[" * 100_000 + "]" * 100_000, "consent"),
    "objects nested 100000 deep": ('{"a":' * 100_000 + "1" + "}" * 100_000, "consent"),
    "a 900 KB value": (with_consent(purpose="p" * 900_000), "200 characters"),
}


@pytest.mark.parametrize("case", list(CONSENT_REFUSALS))
def test_a_hostile_consent_is_refused_and_nothing_is_enrolled(
    stack: Stack, keeper: Keeper, case: str
) -> None:
    raw, word = CONSENT_REFUSALS[case]
    fields = {"consent": raw} if raw else {}
    answer = stack.client.post(
        ROUTES["register"],
        files={"image": ("photo.jpg", stack.photos["obama3"])},
        data={"name": "Should Not Exist", **fields},
        headers=AUTH,
        timeout=QUICK_S * 2,
    )
    assert_refused(answer, 400, word, sent=tuple(re.findall(r"[A-Za-z0-9]{300,}", raw)))
    people = stack.client.get(f"{FACES}/people", headers=AUTH).json()
    assert [p["person_id"] for p in people["people"]] == [keeper.person_id]


def test_a_huge_but_finite_expires_at_is_capped_at_the_retention_period(
    stack: Stack, keeper: Keeper
) -> None:
    for value in (1e300, NOW + 100 * 365 * DAY_S):
        before = time.time()
        answer = post(
            stack.client,
            "register",
            stack.photos["obama3"],
            name="Capped",
            consent=with_consent(expires_at=value),
        )
        assert answer.status_code == 200, answer.text
        expires = answer.json()["expires_at"]
        retention = RETENTION_DAYS * DAY_S
        assert before + retention - 5 <= expires <= time.time() + retention
        delete_person(stack.client, answer.json()["person_id"])
    soon = post(
        stack.client,
        "register",
        stack.photos["obama3"],
        name="Soon",
        consent=with_consent(expires_at=time.time() + DAY_S),
    )
    assert soon.status_code == 200, soon.text
    assert soon.json()["expires_at"] < time.time() + 2 * DAY_S
    delete_person(stack.client, soon.json()["person_id"])


# --- names and person ids --------------------------------------------------------------------

NAME_REFUSALS: dict[str, tuple[str | None, str]] = {
    "absent": (None, "name: Field required"),
    "empty": ("", "name"),
    "spaces": ("    ", "printable text of 1 to 200"),
    "tabs and newlines": ("\t\n\r", "printable text"),
    "10k characters": ("N" * LONG, "1 to 200"),
    "201 characters": ("N" * 201, "1 to 200"),
    "a NUL": ("Bad\x00Name", "printable"),
    "a newline inside": ("Bad\nName", "printable"),
    "an escape sequence": ("Bad\x1b[31mName", "printable"),
    "an RTL override": ("Bad\u202eName", "printable"),
    "a zero-width joiner": ("Bad\u200dName", "printable"),
    "a line separator": ("Bad\u2028Name", "printable"),
}


@pytest.mark.parametrize("case", list(NAME_REFUSALS))
def test_a_hostile_name_is_refused_and_nothing_is_enrolled(
    stack: Stack, keeper: Keeper, case: str
) -> None:
    name, word = NAME_REFUSALS[case]
    data = {"consent": CONSENT, **({} if name is None else {"name": name})}
    answer = stack.client.post(
        ROUTES["register"],
        files={"image": ("photo.jpg", stack.photos["obama3"])},
        data=data,
        headers=AUTH,
        timeout=QUICK_S * 2,
    )
    assert_refused(answer, 400, word, sent=(name,) if name and len(name) > 300 else ())
    people = stack.client.get(f"{FACES}/people", headers=AUTH).json()
    assert [p["person_id"] for p in people["people"]] == [keeper.person_id]


def test_an_odd_but_printable_name_is_kept_as_given(stack: Stack) -> None:
    odd = ("  Zoë O'Brien-李  ", "N" * 200, "<script>alert(1)</script>", "'; DROP TABLE x;--")
    for name in odd:
        answer = post(stack.client, "register", stack.photos["obama3"], name=name)
        assert answer.status_code == 200, answer.text
        assert answer.json()["name"] == name.strip()
        listed = stack.client.get(f"{FACES}/people/{answer.json()['person_id']}", headers=AUTH)
        assert listed.status_code == 200 and listed.json()["name"] == name.strip()
        delete_person(stack.client, answer.json()["person_id"])


# person_id as the register form sends it; status and a word of the reason.
PERSON_ID_REFUSALS: dict[str, tuple[str, int, str]] = {
    "unknown": ("person_0000000000000000", 404, "no person"),
    "spaces": ("   ", 404, "no person"),
    "traversal-looking": ("../../../etc/passwd", 404, "no person"),
    "a SQL-looking id": ("' OR 1=1 --", 404, "no person"),
    "a LIKE wildcard": ("%", 404, "no person"),
    "10k characters": ("p" * LONG, 404, "person"),
    "a NUL": ("person_\x00", 404, "person"),
    "a face id, not a person id": ("<face>", 404, "no person"),
}


@pytest.mark.parametrize("case", list(PERSON_ID_REFUSALS))
def test_registering_to_a_hostile_person_id_is_a_404_and_adds_nothing(
    stack: Stack, keeper: Keeper, case: str
) -> None:
    person_id, status, word = PERSON_ID_REFUSALS[case]
    person_id = person_id.replace("<face>", keeper.face_id)
    answer = post(stack.client, "register", stack.photos["obama3"], name="X", person_id=person_id)
    assert_refused(answer, status, word, sent=(person_id,) if len(person_id) > 300 else ())
    people = stack.client.get(f"{FACES}/people", headers=AUTH).json()
    assert [p["person_id"] for p in people["people"]] == [keeper.person_id]


# Ids in the path: as sent (already percent-encoded where needed), a word of the reason.
PATH_IDS: dict[str, tuple[str, str]] = {
    "unknown": ("person_ffffffffffffffff", "no person"),
    "encoded traversal": ("..%2F..%2Fetc%2Fpasswd", "not found"),
    "a dot-dot segment": ("%2E%2E", "no person"),
    "a backslash traversal": ("..%5C..%5Cwindows", "no person"),
    "a NUL": ("person%00x", "person"),
    "a percent sign": ("%25", "no person"),
    "a LIKE wildcard": ("person_%25", "no person"),
    "unicode": ("%E4%BA%BA", "no person"),
    "invalid UTF-8": ("%FF%FE", "person"),
    "10k characters": ("q" * LONG, "person"),
}
ID_ROUTES = ["GET person", "DELETE person", "DELETE face of an unknown person", "DELETE face"]


def id_request(client: httpx.Client, route: str, some_id: str, keeper: Keeper) -> httpx.Response:
    if route == "GET person":
        return client.get(f"{FACES}/people/{some_id}", headers=AUTH)
    if route == "DELETE person":
        return client.delete(f"{FACES}/people/{some_id}", headers=AUTH)
    if route == "DELETE face of an unknown person":  # the keeper's face, named under another
        return client.delete(f"{FACES}/people/{some_id}/faces/{keeper.face_id}", headers=AUTH)
    return client.delete(f"{FACES}/people/{keeper.person_id}/faces/{some_id}", headers=AUTH)


@pytest.mark.parametrize("route", ID_ROUTES)
@pytest.mark.parametrize("case", list(PATH_IDS))
def test_an_unknown_or_hostile_id_in_the_path_is_a_404_and_deletes_nothing(
    stack: Stack, keeper: Keeper, case: str, route: str
) -> None:
    some_id, word = PATH_IDS[case]
    if route.startswith("DELETE face"):  # the face is looked up under the person
        word = word.replace("no person", "no face")
    if route == "DELETE face":  # the hostile id is the face's
        word = word.replace("person", "face")
    answer = id_request(stack.client, route, some_id, keeper)
    assert_refused(answer, 404, word, sent=(some_id,) if len(some_id) > 300 else ())


def test_a_method_the_routes_lack_is_a_405_with_a_reason(stack: Stack, keeper: Keeper) -> None:
    for method, path in (
        ("PUT", f"{FACES}/people/{keeper.person_id}"),
        ("DELETE", f"{FACES}/people"),
        ("POST", f"{FACES}/policy"),
        ("GET", f"{FACES}/register"),
        ("DELETE", f"{IMAGES}/labels"),
    ):
        answer = stack.client.request(method, path, headers=AUTH)
        assert_refused(answer, 405, "not allowed")


# --- classify's and detect's fields ----------------------------------------------------------

LABEL_REFUSALS: dict[str, tuple[str, str]] = {
    "malformed JSON": ('["cat", "dog"', "JSON"),
    "a trailing comma in JSON": ('["cat", "dog",]', "JSON"),
    "numbers": ("[1, 2, 3]", "list of strings"),
    "a null item": ('["cat", null]', "list of strings"),
    "a nested list": ('["cat", ["dog"]]', "list of strings"),
    "an object inside": ('["cat", {"dog": 1}]', "list of strings"),
    "a JSON object": ('{"cat": 1, "dog": 2}', "list of strings"),
    "one label": ('["cat"]', "between 2 and 100"),
    "one comma-separated label": ("cat", "between 2 and 100"),
    "two empty labels": ('["", " "]', "between 2 and 100"),
    "only commas": (",,,,", "between 2 and 100"),
    "duplicates only": ('["cat", "cat", " cat "]', "between 2 and 100"),
    "comma-separated duplicates": ("dog,dog,dog", "between 2 and 100"),
    "1000 labels": (json.dumps([f"label {i}" for i in range(1000)]), "between 2 and 100"),
    "101 labels": (",".join(f"l{i}" for i in range(101)), "between 2 and 100"),
    "a 101-character label": (json.dumps(["cat", "d" * 101]), "at most 100"),
    "a 10k-character label": (json.dumps(["cat", "d" * LONG]), "at most 100"),
    "a control character": (json.dumps(["cat", "d\x07og"]), "printable"),
    "a newline in a label": ("cat,do\ng", "printable"),
    "a lone surrogate": (json.dumps(["cat", "\ud800"]), "printable"),
    "a 5000-digit number": ("[" + "7" * 5000 + ', "cat"]', "labels"),
    "arrays nested 100000 deep": ("[" * 100_000 + "]" * 100_000, "labels"),
    "a 500 KB label list": (json.dumps(["x" * 50] * 10_000), "between 2 and 100"),
}


@pytest.mark.parametrize("case", list(LABEL_REFUSALS))
def test_hostile_labels_are_refused_with_the_reason(stack: Stack, case: str) -> None:
    labels, word = LABEL_REFUSALS[case]
    answer = post(stack.client, "classify", stack.photos["obama"], auth=False, labels=labels)
    assert_refused(answer, 400, word, sent=tuple(re.findall(r"[A-Za-z0-9]{300,}", labels)))


def test_odd_but_valid_labels_are_classified(stack: Stack) -> None:
    for labels, expected in (
        ('["cat", "cat", "dog"]', {"cat", "dog"}),
        (" cat , dog ,, ", {"cat", "dog"}),
        (json.dumps([f"label {i}" for i in range(100)]), None),
        (json.dumps(["a" * 100, "b" * 100]), {"a" * 100, "b" * 100}),
        (json.dumps(["😀" * 100, "猫"]), {"😀" * 100, "猫"}),
        (json.dumps(["<script>", "'; DROP TABLE x;--"]), {"<script>", "'; DROP TABLE x;--"}),
    ):
        answer = post(
            stack.client, "classify", stack.photos["obama"], auth=False, labels=labels, top_k="100"
        )
        assert answer.status_code == 200, answer.text
        ranked = answer.json()["classifications"]
        assert sum(c["confidence"] for c in ranked) == pytest.approx(1, abs=1e-3)
        if expected is not None:
            assert {c["label"] for c in ranked} == expected
        else:
            assert len(ranked) == 100


FIELD_REFUSALS: dict[str, tuple[str, dict[str, str], str]] = {
    "top_k 0": ("classify", {"top_k": "0"}, "top_k"),
    "top_k 101": ("classify", {"top_k": "101"}, "top_k"),
    "top_k -1": ("classify", {"top_k": "-1"}, "top_k"),
    "top_k 1.5": ("classify", {"top_k": "1.5"}, "top_k"),
    "top_k 'five'": ("classify", {"top_k": "five"}, "top_k"),
    "top_k 1e3": ("classify", {"top_k": "1e3"}, "top_k"),
    "top_k 10**30": ("classify", {"top_k": "1" + "0" * 30}, "top_k"),
    "top_k 5000 digits": ("classify", {"top_k": "9" * 5000}, "top_k"),
    "top_k true": ("classify", {"top_k": "true"}, "top_k"),
    "model unknown": ("classify", {"model": "resnet50"}, "clip_vit_b32"),
    "model 10k characters": ("classify", {"model": "m" * LONG}, "clip_vit_b32"),
    "model with a NUL": ("classify", {"model": "clip_vit_b32\x00"}, "clip_vit_b32"),
    "model in capitals": ("classify", {"model": "CLIP_VIT_B32"}, "clip_vit_b32"),
    "min_confidence -0.1": ("object detect", {"min_confidence": "-0.1"}, "min_confidence"),
    "min_confidence 1.1": ("object detect", {"min_confidence": "1.1"}, "min_confidence"),
    "min_confidence NaN": ("object detect", {"min_confidence": "nan"}, "min_confidence"),
    "min_confidence inf": ("object detect", {"min_confidence": "inf"}, "min_confidence"),
    "min_confidence -inf": ("object detect", {"min_confidence": "-inf"}, "min_confidence"),
    "min_confidence 'high'": ("object detect", {"min_confidence": "high"}, "min_confidence"),
    "min_confidence 1e400": ("object detect", {"min_confidence": "1e400"}, "min_confidence"),
}


@pytest.mark.parametrize("case", list(FIELD_REFUSALS))
def test_a_hostile_field_is_refused_naming_it(stack: Stack, case: str) -> None:
    route, fields, word = FIELD_REFUSALS[case]
    answer = post(stack.client, route, stack.photos["obama"], auth=False, **fields)
    long_values = tuple(v for v in fields.values() if len(v) > 300)
    assert_refused(answer, 400, word, sent=long_values)


def test_edge_values_of_the_fields_are_served(stack: Stack) -> None:
    for route, fields, count in (
        ("classify", {"top_k": "1"}, 1),
        ("classify", {"top_k": "100"}, len(DEFAULT_LABELS)),  # more than there are: all
        ("classify", {"top_k": " 3 "}, 3),
        ("classify", {"model": "clip_vit_b32"}, 5),
        ("object detect", {"min_confidence": "0"}, None),
        ("object detect", {"min_confidence": "1"}, 0),
        ("object detect", {"min_confidence": "1e-9"}, None),
    ):
        answer = post(stack.client, route, stack.photos["obama"], auth=False, **fields)
        assert answer.status_code == 200, (fields, answer.text)
        found = answer.json().get("classifications", answer.json().get("detections"))
        assert count is None or len(found) == count, (fields, found)


# --- the bearer token ------------------------------------------------------------------------

# Authorization header values (bytes: sent as is) and whether they let the caller in.
AUTH_VARIANTS: dict[str, tuple[bytes | None, bool]] = {
    "the token": (f"Bearer {TOKEN}".encode(), True),
    "lowercase 'bearer'": (f"bearer {TOKEN}".encode(), True),
    "uppercase 'BEARER'": (f"BEARER {TOKEN}".encode(), True),
    "extra spaces": (f"Bearer    {TOKEN}   ".encode(), True),
    "leading spaces": (f"   Bearer {TOKEN}".encode(), True),
    "no header": (None, False),
    "an empty header": (b"", False),
    "'Bearer' alone": (b"Bearer", False),
    "'Bearer' and a space": (b"Bearer ", False),
    "an empty token in spaces": (b"Bearer      ", False),
    "the token alone": (TOKEN.encode(), False),
    "Basic with the token": (f"Basic {TOKEN}".encode(), False),
    "a tab, not a space": (f"Bearer\t{TOKEN}".encode(), False),
    "no space": (f"Bearer{TOKEN}".encode(), False),
    "a wrong token": (b"Bearer wrong-token", False),
    "the token's prefix": (f"Bearer {TOKEN[:-1]}".encode(), False),
    "the token and more": (f"Bearer {TOKEN}x".encode(), False),
    "the token and a second word": (f"Bearer {TOKEN} {TOKEN}".encode(), False),
    "the token quoted": (f'Bearer "{TOKEN}"'.encode(), False),
    "the token in UTF-8 unicode": (f"Bearer {TOKEN}é".encode(), False),
    "unicode look-alike letters": (f"Bearer {TOKEN.replace('e', 'е')}".encode(), False),
    "latin-1 bytes": (b"Bearer \xff\xfe\xfd", False),
    "an 8 KB token": (b"Bearer " + b"t" * 8000, False),
}
AUTH_ROUTES = ["GET people", "DELETE an unknown person", "POST recognize"]


def with_authorization(stack: Stack, route: str, value: bytes | None) -> httpx.Response:
    """Written on a socket: httpx will not send a header value with spaces around it."""
    header = b"" if value is None else b"Authorization: " + value + b"\r\n"
    if route == "GET people":
        head = f"GET {FACES}/people HTTP/1.1\r\n".encode()
        body, kind = b"", b""
    elif route == "DELETE an unknown person":
        head = f"DELETE {FACES}/people/person_0123456789abcdef HTTP/1.1\r\n".encode()
        body, kind = b"", b""
    else:
        image = Upload(encoded(Image.new("RGB", (1, 1))), b"x.png")
        body, headers = multipart([("image", image)], [])
        head = f"POST {ROUTES['recognize']} HTTP/1.1\r\n".encode()
        kind = f"Content-Type: {headers['content-type']}\r\n".encode()
    length = f"Content-Length: {len(body)}\r\n".encode() if body else b""
    return raw_request(stack, head + b"Host: facet\r\n" + header + kind + length + b"\r\n" + body)


@pytest.mark.parametrize("route", AUTH_ROUTES)
@pytest.mark.parametrize("case", list(AUTH_VARIANTS))
def test_authorization_header_variants(stack: Stack, case: str, route: str) -> None:
    value, accepted = AUTH_VARIANTS[case]
    answer = with_authorization(stack, route, value)
    if not accepted:
        detail = assert_refused(answer, 401, "bearer")
        assert answer.headers["www-authenticate"] == "Bearer"
        assert TOKEN not in detail and "t" * 300 not in detail
    elif route == "DELETE an unknown person":
        assert_refused(answer, 404, "no person")
    else:
        assert answer.status_code == 200, answer.text


def long_authorization(size: int) -> bytes:
    return (
        f"GET {FACES}/people HTTP/1.1\r\nHost: facet\r\n".encode()
        + b"Authorization: Bearer "
        + b"t" * size
        + b"\r\n\r\n"
    )


def test_a_15_kb_authorization_header_is_a_401_with_a_reason(stack: Stack) -> None:
    """Under h11's 16 KB limit for a request head, so it reaches the gateway however the
    bytes arrive."""
    answer = raw_request(stack, long_authorization(15 * 1024))
    detail = assert_refused(answer, 401, "not valid")
    assert "t" * 300 not in detail


def test_a_1_mb_authorization_header_is_refused_at_once_not_a_hang(stack: Stack) -> None:
    """Past h11's limit uvicorn itself answers, before the app: a 400 and a closed connection,
    which may reset the rest of the upload (and so the answer) on the client's side."""
    began = time.monotonic()
    try:
        answer = raw_request(stack, long_authorization(MB))
    except ConnectionError:
        pass  # closed after its 400, before the client had sent the rest
    else:
        assert answer.status_code == 400 and answer.headers["connection"].lower() == "close"
    assert time.monotonic() - began < QUICK_S
    assert stack.client.get(f"{FACES}/policy").status_code == 200


@pytest.mark.xfail(
    strict=True,
    reason="uvicorn's own 400 for a request head over h11's 16 KB limit is text/plain "
    "('Invalid HTTP request received.'), never the gateway's JSON: outside the app",
)
def test_a_1_mb_authorization_header_gets_a_json_reason(stack: Stack) -> None:
    assert_refused(raw_request(stack, long_authorization(MB)), 400, "header")


def test_a_refused_token_never_reaches_the_body(stack: Stack, keeper: Keeper) -> None:
    """A wrong token with a hostile body: the 401 comes first, nothing is parsed into the
    gallery."""
    answer = stack.client.post(
        ROUTES["register"],
        files={"image": ("p.jpg", stack.photos["obama3"])},
        data={"name": "Intruder", "consent": CONSENT},
        headers={"Authorization": "Bearer nope"},
    )
    assert_refused(answer, 401, "not valid")
    policy = stack.client.get(f"{FACES}/policy")
    assert policy.status_code == 200 and policy.json()["token_required"] is True


# --- concurrency -----------------------------------------------------------------------------


def gallery_consistent(client: httpx.Client) -> dict[str, list[str]]:
    """Every listed person answers GET /people/{id} with the same faces; each face belongs to
    one person. Their faces by person id."""
    listing = client.get(f"{FACES}/people", headers=AUTH).json()
    assert listing["total"] == len(listing["people"])
    faces: dict[str, list[str]] = {}
    for person in listing["people"]:
        one = client.get(f"{FACES}/people/{person['person_id']}", headers=AUTH)
        assert one.status_code == 200, one.text
        assert sorted(f["face_id"] for f in one.json()["faces"]) == sorted(
            f["face_id"] for f in person["faces"]
        )
        faces[person["person_id"]] = sorted(f["face_id"] for f in person["faces"])
    every = [f for ids in faces.values() for f in ids]
    assert len(every) == len(set(every))
    return faces


def test_concurrent_registers_and_deletes_of_one_person_never_fail_and_leave_it_consistent(
    stack: Stack, keeper: Keeper
) -> None:
    first = post(stack.client, "register", stack.photos["obama3"], name="Raced")
    assert first.status_code == 200, first.text
    person = first.json()["person_id"]
    first_face = first.json()["face_id"]

    def add() -> httpx.Response:
        return post(stack.client, "register", stack.photos["obama2"], name="x", person_id=person)

    def remove() -> httpx.Response:
        return stack.client.delete(f"{FACES}/people/{person}", headers=AUTH, timeout=QUICK_S * 2)

    def remove_face() -> httpx.Response:
        return stack.client.delete(
            f"{FACES}/people/{person}/faces/{first_face}", headers=AUTH, timeout=QUICK_S * 2
        )

    def read() -> httpx.Response:
        return stack.client.get(f"{FACES}/people/{person}", headers=AUTH, timeout=QUICK_S * 2)

    work = [add, add, add, remove, add, remove_face, read, remove, add, read, remove_face]
    with concurrent.futures.ThreadPoolExecutor(len(work)) as pool:
        futures = [(job.__name__, pool.submit(job)) for job in work]
        results = [(name, future.result(timeout=120)) for name, future in futures]
    for name, answer in results:
        assert answer.status_code in (200, 404), (name, answer.status_code, answer.text[:300])
        if answer.status_code == 404:
            assert_refused(answer, 404, "no ")
    faces = gallery_consistent(stack.client)
    if person in faces:  # a register that passed its check before a delete: listed whole
        listed = stack.client.get(f"{FACES}/people/{person}", headers=AUTH).json()
        assert all(f["face_id"] in faces[person] for f in listed["faces"])
        delete_person(stack.client, person)
    assert stack.client.get(f"{FACES}/people/{person}", headers=AUTH).status_code == 404
    assert person not in gallery_consistent(stack.client)
    assert gallery_consistent(stack.client) == {keeper.person_id: [keeper.face_id]}


def test_concurrent_new_registrations_each_get_their_own_person(
    stack: Stack, keeper: Keeper
) -> None:
    def add() -> httpx.Response:
        return post(stack.client, "register", stack.photos["obama2"], name="Twin")

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = [f.result(timeout=120) for f in [pool.submit(add) for _ in range(4)]]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    ids = {a.json()["person_id"] for a in answers}
    assert len(ids) == 4
    faces = gallery_consistent(stack.client)
    assert ids <= set(faces) and all(len(faces[i]) == 1 for i in ids)

    def remove(person_id: str) -> httpx.Response:
        return stack.client.delete(f"{FACES}/people/{person_id}", headers=AUTH)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        twice = [pool.submit(remove, i) for i in [*ids, *ids]]
        statuses = sorted(f.result(timeout=120).status_code for f in twice)
    assert statuses == [200] * 4 + [404] * 4
    assert gallery_consistent(stack.client) == {keeper.person_id: [keeper.face_id]}


# --- at the end ------------------------------------------------------------------------------


def test_after_the_sweep_the_keeper_is_still_recognised_and_the_log_is_clean(
    stack: Stack, keeper: Keeper
) -> None:
    stack.log_mark[0] = 0  # the whole log, this time
    answer = post(stack.client, "recognize", stack.photos["obama2"])
    assert answer.status_code == 200, answer.text
    (face,) = answer.json()["faces"]
    assert face["known"] is True and face["person_id"] == keeper.person_id
    assert face["name"] == keeper.name and face["face_id"] == keeper.face_id
    assert gallery_consistent(stack.client) == {keeper.person_id: [keeper.face_id]}
    assert "embedding" not in answer.text
