"""`clients.gfpp` needs only the clients' light dependencies: importing it, or any of its
modules, loads no torch, no web framework and no gateway; the one module that runs the
gateway's face pipeline (over gRPC) loads the pipeline's pure modules and nothing of the web
app. Each check runs in a fresh interpreter (see test_gateway_imports)."""

from __future__ import annotations

from tests.unit.test_gateway_imports import EXPORTER_PACKAGES, loaded_packages

WEB_PACKAGES = frozenset({"fastapi", "starlette", "pydantic_settings", "uvicorn", "huey"})
GFPP_MODULES = (
    "clients.gfpp",
    "clients.gfpp.core.orchestrator",
    "clients.gfpp.core.registry",
    "clients.gfpp.core.rules",
    "clients.gfpp.restorers.base",
    "clients.gfpp.restorers.gfpgan",
    "clients.gfpp.io.manifest",
    "clients.gfpp.io.weights",
    "clients.gfpp.rest_session",
    "clients.gfpp.grpc_session",
)


def test_importing_the_gfpp_package_loads_neither_torch_nor_the_web_framework_nor_the_gateway() -> (
    None
):
    loaded = loaded_packages(f"import {', '.join(GFPP_MODULES)}")

    assert "clients" in loaded and "tritonclient" in loaded  # really imported
    assert "torch" not in loaded and "fastapi" not in loaded
    assert not loaded & (EXPORTER_PACKAGES | WEB_PACKAGES | {"gateway"})


def test_the_seed_names_resolve_without_loading_the_client_libraries() -> None:
    loaded = loaded_packages(
        "from clients.gfpp import plan, list_backends, get, Restorer, RestoreResult, "
        "RunManifest, write_manifest, ensure_weight\n"
        "assert get('gfpgan').__name__ == 'FacetGFPGANRestorer'"
    )

    assert not loaded & {"torch", "fastapi", "gateway", "httpx", "tritonclient", "grpc"}


def test_the_grpc_face_pipeline_loads_the_gateways_pure_modules_only() -> None:
    loaded = loaded_packages("import clients.gfpp.face_pipeline")

    assert "gateway" in loaded and "cv2" in loaded
    assert not loaded & (EXPORTER_PACKAGES | WEB_PACKAGES | {"pydantic"})
