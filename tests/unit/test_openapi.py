"""The OpenAPI document tells the truth: the error bodies and codes really sent, no 422 (the
gateway answers 400), Retry-After where it is sent, enums and ranges, tags, typed bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.settings import Settings

ERROR_REF = "#/components/schemas/ErrorBody"
CONTEXT_ERROR_REF = "#/components/schemas/ContextErrorBody"


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("data")))
    return app.openapi()


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]


def form_fields(schema: dict[str, Any], path: str) -> dict[str, Any]:
    body = schema["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[-1]
    return dict(schema["components"]["schemas"][ref]["properties"])


def test_no_operation_documents_a_422_that_is_never_sent(schema):
    assert "422" not in str([op["responses"] for _, _, op in operations(schema)])
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_every_error_answer_has_the_real_error_body(schema):
    for method, path, operation in operations(schema):
        for code, answer in operation["responses"].items():
            if int(code) < 400 or path == "/health":
                continue
            body = answer["content"]["application/json"]["schema"]
            wanted = CONTEXT_ERROR_REF if path.startswith("/api/v1") else ERROR_REF
            assert body == {"$ref": wanted}, (method, path, code)
    assert set(schema["components"]["schemas"]["ErrorBody"]["properties"]) == {"detail", "error"}
    assert set(schema["components"]["schemas"]["ContextErrorBody"]["properties"]) == {
        "success",
        "error",
        "message",
        "details",
        "timestamp",
    }


def test_refusals_that_carry_retry_after_say_so(schema):
    for method, path, operation in operations(schema):
        for code in ("429", "503"):
            if code in operation["responses"]:
                assert "Retry-After" in operation["responses"][code]["headers"], (method, path)


@pytest.mark.parametrize(
    ("method", "path", "codes"),
    [
        ("POST", "/upscale", {"400", "413", "415", "429", "503"}),
        ("POST", "/restore", {"400", "413", "415", "429", "502", "503", "504"}),
        ("POST", "/batch", {"400", "429", "503"}),
        ("GET", "/download/{name}", {"404", "429"}),
        ("POST", "/process/image", {"400", "413", "415", "429", "502", "503", "504"}),
        ("POST", "/process/video", {"400", "413", "415", "429", "502", "503", "504"}),
        ("DELETE", "/output/{filename}", {"404", "429"}),
        ("GET", "/health", {"503"}),
        ("POST", "/api/v1/images/process", {"400", "403", "404", "413", "415", "503"}),
        ("POST", "/api/v1/images/upload", {"400", "403", "409", "413", "415", "503"}),
        ("GET", "/api/v1/images/", {"400", "503"}),
        ("GET", "/api/v1/directories/scan", {"400", "403", "404"}),
        ("POST", "/api/v1/duplicates/compare", {"400", "403", "404", "503"}),
    ],
)
def test_the_codes_a_route_can_send_are_documented(schema, method, path, codes):
    documented = set(schema["paths"][path][method.lower()]["responses"])
    assert codes <= documented


def test_parameters_carry_their_enums_and_ranges(schema):
    upscale = form_fields(schema, "/upscale")
    assert upscale["scale"]["enum"] == [2, 4]
    restore = form_fields(schema, "/restore")
    assert (restore["upscale"]["minimum"], restore["upscale"]["maximum"]) == (1, 4)
    assert (restore["weight"]["minimum"], restore["weight"]["maximum"]) == (0, 1)
    assert restore["face_detector_model"]["enum"] == ["mtcnn", "scrfd"]


def test_typed_bodies_for_health_metrics_and_batch_status(schema):
    def ok_schema(path: str, method: str = "get") -> str:
        answer = schema["paths"][path][method]["responses"]["200"]["content"]
        return str(answer["application/json"]["schema"])

    assert "HealthResponse" in ok_schema("/health")
    assert "MetricsResponse" in ok_schema("/metrics")
    assert "QualityResponse" in ok_schema("/metrics", "post")
    assert "BatchStatus" in ok_schema("/batch/{batch_id}/status")


def test_prometheus_metrics_are_documented_as_text(schema):
    content = schema["paths"]["/metrics/prometheus"]["get"]["responses"]["200"]["content"]
    assert all(kind.startswith("text/plain") for kind in content)


def test_every_operation_is_tagged_with_its_api_surface(schema):
    tags = {tag for _, _, op in operations(schema) for tag in op.get("tags", [])}
    assert all(op.get("tags") for _, _, op in operations(schema))
    assert {"system", "upscale (Real-ESRGAN API)", "restore (GFPGAN API)"} <= tags


def test_the_document_is_built_once_and_reused(tmp_path: Path):
    app = create_app(Settings(data_dir=tmp_path))
    assert app.openapi() is app.openapi()
