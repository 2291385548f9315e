"""Property-based fuzzing of the gateway's own OpenAPI document with schemathesis: for every
documented operation, requests generated from the schema (valid ones and invalid ones) must
never get a server error. Derandomised and bounded, so every run sends the same requests.

Driven from plain test functions (hypothesis' `@given` over `APIOperation.as_strategy`), not
through schemathesis' pytest plugin: the schema only exists once a real gateway is up, and a
plain loop keeps the number of examples, the seed and the request rewriting explicit.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from PIL import Image
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error

from serving.launcher import TritonServer
from tests.e2e.conftest import Gateway, astronaut_png, make_gateway

pytestmark = pytest.mark.integration

# The Image Context Extractor's (seed 003); the fuzzed gateway has none of its models, so
# its routes answer 503 or a 4xx, never a 500.
CONTEXT_READS = [
    ("GET", f"/api/v1/{name}")
    for name in ("health", "status", "config", "metrics", "info", "models/status")
]
CONTEXT_OPERATIONS = [
    *CONTEXT_READS,
    ("POST", "/api/v1/models/preload"),
    ("POST", "/api/v1/images/process"),
    ("POST", "/api/v1/images/upload"),
    ("GET", "/api/v1/images/info/{image_id}"),
    ("GET", "/api/v1/images/download/{image_id}"),
    ("GET", "/api/v1/images/"),
    ("DELETE", "/api/v1/images/{image_id}"),
    ("POST", "/api/v1/directories/process"),
    ("POST", "/api/v1/directories/process-async"),
    ("GET", "/api/v1/directories/scan"),
    ("GET", "/api/v1/directories/task/{task_id}"),
    ("GET", "/api/v1/directories/tasks"),
    ("POST", "/api/v1/duplicates/check"),
    ("GET", "/api/v1/duplicates/check-image"),
    ("GET", "/api/v1/duplicates/check-directory"),
    ("POST", "/api/v1/duplicates/compare"),
    ("DELETE", "/api/v1/duplicates/remove-duplicates"),
    ("GET", "/ws/stats"),
]
# The AI Multimedia Platform's recognition routes (seed 004); the fuzzed gateway has no token.
RECOGNITION_READS = [
    ("GET", "/api/face-recognition/people"),
    ("GET", "/api/face-recognition/people/{person_id}"),
    ("DELETE", "/api/face-recognition/people/{person_id}"),
    ("DELETE", "/api/face-recognition/people/{person_id}/faces/{face_id}"),
    ("GET", "/api/face-recognition/policy"),
    ("GET", "/api/image-recognition/labels"),
]
RECOGNITION_UPLOADS = [
    ("POST", "/api/face-recognition/detect"),
    ("POST", "/api/face-recognition/register"),
    ("POST", "/api/face-recognition/recognize"),
    ("POST", "/api/image-recognition/classify"),
    ("POST", "/api/image-recognition/detect"),
]
# Every operation /openapi.json documents; a test below fails when one is added or removed
# without this list (and so the fuzzing) following.
OPERATIONS = [
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("POST", "/metrics"),
    ("GET", "/metrics/prometheus"),
    ("POST", "/upscale"),
    ("GET", "/status/{job_id}"),
    ("DELETE", "/job/{job_id}"),
    ("GET", "/results/{result_id}"),
    ("POST", "/restore"),
    ("GET", "/download/{name}"),
    ("POST", "/batch"),
    ("GET", "/batch/{batch_id}/status"),
    ("POST", "/process/image"),
    ("POST", "/process/video"),
    ("GET", "/processors"),
    ("DELETE", "/output/{filename}"),
    *CONTEXT_OPERATIONS,
    *RECOGNITION_READS,
    *RECOGNITION_UPLOADS,
]
# Operations with nothing to make invalid, so they are fuzzed with valid requests only: no
# parameter or body at all, or only an id in the path, which may be any string (schemathesis
# cannot make a path segment "not a string").
ONLY_VALID_INPUT = {
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/metrics/prometheus"),
    ("GET", "/status/{job_id}"),
    ("DELETE", "/job/{job_id}"),
    ("GET", "/results/{result_id}"),
    ("GET", "/batch/{batch_id}/status"),
    ("GET", "/processors"),
    ("DELETE", "/output/{filename}"),
    *CONTEXT_READS,
    ("POST", "/api/v1/models/preload"),
    ("GET", "/api/v1/images/info/{image_id}"),
    ("GET", "/api/v1/images/download/{image_id}"),
    ("GET", "/api/v1/directories/task/{task_id}"),
    ("GET", "/ws/stats"),
    *RECOGNITION_READS,
}
MAX_EXAMPLES = 25
# POST /batch fetches its image_urls in a job. Generated URLs could name any host on the
# internet, so every generated URL string is replaced by one on the loopback, which the gateway
# refuses as not public without connecting anywhere; the settings around it are still fuzzed.
LOOPBACK_URL = "http://127.0.0.1:9/fuzzed.png"
FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,  # a fixed seed: the same requests on every run
    database=None,  # nothing remembered between runs either
    deadline=None,  # latency is not what is tested; the gateway's timeout is
    # No shrinking: the first failing request is reported as is, and a failure cannot make the
    # run take minutes.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


@pytest.fixture(scope="module")
def gateway(
    swap_triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """One gateway for the module, on the Triton that also serves the face and swap models, so
    /restore, face_enhance and the face swap can be ready; the settings are start_gateway's
    (rate limits off)."""
    server = make_gateway(swap_triton, tmp_path_factory.mktemp("fuzz_gateway"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def schema(gateway: Gateway) -> Any:
    return schemathesis.openapi.from_url(f"{gateway.url}/openapi.json")


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


def small_png(level: int) -> bytes:
    """A 32×32 gradient: big enough for SSIM's window, small enough to restore in a blink."""
    ramp = np.linspace(0, 255, 32, dtype=np.uint8)
    rgb = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], np.uint8(level)), axis=-1)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, format="PNG")
    return buffer.getvalue()


# Generated file parts are random bytes: they stop at the decoder (400/415). These operations
# are fuzzed a second time with every file part replaced by a real PNG, so the generated form
# fields reach the work behind the decoder (detection, restoration, queued jobs, metrics).
UPLOADS = [
    ("POST", "/upscale"),
    ("POST", "/restore"),
    ("POST", "/metrics"),
    ("POST", "/process/image"),
    *RECOGNITION_UPLOADS,
]
ORIGINAL_PNG, RESTORED_PNG = small_png(40), small_png(60)  # different: PSNR stays finite
FACE_PNG = astronaut_png(128)  # a face swap's source must hold a face to get past detection


def with_real_images(case: Case) -> None:
    body: Any = case.body  # a generated multipart form: field name -> value
    if not isinstance(body, dict):
        return
    for name, data in (("file", ORIGINAL_PNG), ("original", ORIGINAL_PNG)):
        if name in body:
            body[name] = data
    if "restored" in body:
        body["restored"] = RESTORED_PNG
    with_recognition_inputs(body)
    if "target" in body:  # a face swap: a face to swap in, and a request that parses
        body["target"] = ORIGINAL_PNG
        # A part the generator left out cannot be added (it would go as a text field), so a
        # form without a source asks for the processor that needs none.
        processor = "face_swapper" if "source" in body else "face_enhancer"
        if "source" in body:
            body["source"] = FACE_PNG
        if not is_json_object(body.get("request")):
            body["request"] = json.dumps({"processors": [processor]})


def with_recognition_inputs(body: dict[str, Any]) -> None:
    if "image" in body:  # the recognition routes: a photo with a face
        body["image"] = FACE_PNG
    if "consent" in body:  # a registration: a consent record, a name and no unknown person
        body["consent"] = json.dumps({"purpose": "face_recognition", "text_version": "2026-12-01"})
        body["name"] = "Fuzzed Person"
        if "person_id" in body:
            body["person_id"] = ""


def is_json_object(text: object) -> bool:
    try:
        return isinstance(text, str) and isinstance(json.loads(text), dict)
    except ValueError:
        return False


def keep_urls_on_loopback(case: Case) -> None:
    body: Any = case.body  # generated JSON, valid or not
    if isinstance(body, dict) and isinstance(urls := body.get("image_urls"), list):
        body["image_urls"] = [LOOPBACK_URL if isinstance(url, str) else url for url in urls]


def test_every_documented_operation_is_fuzzed(schema: Any) -> None:
    documented = {
        (result.ok().method.upper(), result.ok().path) for result in schema.get_all_operations()
    }
    assert documented == set(OPERATIONS)


CASES = [
    pytest.param(method, path, mode, False, id=f"{method} {path} {mode.value}")
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if not (mode is GenerationMode.NEGATIVE and (method, path) in ONLY_VALID_INPUT)
] + [
    pytest.param(method, path, GenerationMode.POSITIVE, True, id=f"{method} {path} real images")
    for method, path in UPLOADS
]


@pytest.mark.parametrize(("method", "path", "mode", "real_images"), CASES)
def test_generated_requests_never_get_a_server_error(
    gateway: Gateway,
    schema: Any,
    session: requests.Session,
    method: str,
    path: str,
    mode: GenerationMode,
    real_images: bool,
) -> None:
    statuses: list[int] = []

    @FUZZ_SETTINGS
    @given(case=schema[path][method].as_strategy(generation_mode=mode))
    def fuzz(case: Case) -> None:
        keep_urls_on_loopback(case)
        if real_images:
            with_real_images(case)
        response = case.call_and_validate(
            base_url=gateway.url, session=session, checks=[not_a_server_error], timeout=30
        )
        statuses.append(response.status_code)

    fuzz()
    assert statuses, "no request was generated"
    if real_images:
        # The rewriting worked: some generated forms got past the decoder and were served.
        assert any(200 <= status < 300 for status in statuses), statuses
    assert "Traceback" not in gateway.log.read_text(errors="replace")


def test_restore_with_a_detector_this_server_does_not_have_is_a_client_error(
    gateway: Gateway,
) -> None:
    with gateway.client() as client:
        answer = client.post(
            "/restore",
            files={"file": ("a.png", ORIGINAL_PNG, "image/png")},
            data={"face_detector_model": "scrfd", "upscale": "1"},
        )
    assert answer.status_code == 400, (answer.status_code, answer.text)
    assert "not installed" in answer.json()["detail"]
