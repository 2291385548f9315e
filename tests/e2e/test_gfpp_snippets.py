"""The GFPGAN service's Python API (`clients.gfpp`) against a real stack: the README's copies
of the seed's snippets, import lines changed and nothing else, run over the gateway and over
Triton directly (the real MTCNN nets, a tiny synthetic GFPGAN), on real photos."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from clients.errors import BadRequestError
from clients.gfpp import FacetServer, plan
from clients.gfpp.errors import SyntheticWeightsWarning
from clients.gfpp.restorers.gfpgan import FacetGFPGANRestorer
from export.samples import astronaut
from serving.launcher import TritonServer
from tests.e2e.conftest import ROOT, Gateway, group_photo_png, make_gateway

pytestmark = pytest.mark.integration

SECTION = "### The seed's snippets"
SEED_IMPORTS = (
    "from clients.gfpp.core.orchestrator import plan",
    "from clients.gfpp.core.registry import list_backends, get",
    "from clients.gfpp.restorers.base import Restorer, RestoreResult",
    "from clients.gfpp.io.manifest import RunManifest, write_manifest",
)
PORTRAIT_SIZE = 256  # the astronaut photo halved: MTCNN finds her face, tiny GFPGAN is quick


def readme_snippets() -> list[str]:
    """The python blocks of the README's seed-snippets section, in order."""
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n### ", start + len(SECTION))
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.DOTALL)


@pytest.fixture(scope="module")
def gfpp_gateway(
    face_triton: TritonServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    gateway = make_gateway(face_triton, tmp_path_factory.mktemp("gfpp_gateway"))
    gateway.start()
    yield gateway
    gateway.stop()


@pytest.fixture
def stack_env(
    gfpp_gateway: Gateway, face_triton: TritonServer, monkeypatch: pytest.MonkeyPatch
) -> pytest.MonkeyPatch:
    """The environment `make up` would give, pointed at this test's stack."""
    monkeypatch.setenv("FACET_GATEWAY_URL", gfpp_gateway.url)
    monkeypatch.setenv("FACET_TRITON_URL", face_triton.grpc_url)
    monkeypatch.delenv("FACET_VIA", raising=False)
    return monkeypatch


@pytest.fixture
def samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with the seed's samples/portrait.jpg (the astronaut, a real photo)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "samples").mkdir()
    portrait = cv2.resize(astronaut(), (PORTRAIT_SIZE, PORTRAIT_SIZE), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "samples" / "portrait.jpg"), portrait[..., ::-1])
    return tmp_path


def run_snippets() -> dict[str, Any]:
    snippets = readme_snippets()
    assert [s.splitlines()[0] for s in snippets] == list(SEED_IMPORTS)
    namespace: dict[str, Any] = {"__name__": "seed_snippets"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticWeightsWarning)  # checked below
        for snippet in snippets:
            exec(compile(snippet, "README.md", "exec"), namespace)
    return namespace


def check_snippet_results(found: dict[str, Any], via: str, capsys: Any) -> None:
    pl = found["pl"]
    assert pl.backend == "gfpgan" and pl.params["weight"] == 0.6
    assert pl.faces["count"] >= 1 and pl.faces["restorable"] >= 1, pl.faces
    assert pl.quality["niqe"] is None and pl.quality["brisque"] is None
    assert pl.quality["face_blur_laplacian_var"] > 0 and pl.quality["noise_sigma"] >= 0
    assert pl.reason in pl.detail["routing_rules"] and 0.05 <= pl.confidence <= 0.95
    assert pl.detail["server"]["via"] == via
    assert "gfpgan" in capsys.readouterr().out  # the snippet's print
    assert found["avail"] == {
        "gfpgan": True,
        "codeformer": False,
        "restoreformerpp": False,
        "ensemble": False,
    }
    assert found["RestorerClass"] is FacetGFPGANRestorer
    manifest = json.loads(Path("out/manifest.json").read_text())
    assert manifest["args"] == {"backend": "gfpgan", "metrics": "fast"}
    assert manifest["device"] == "cpu" and manifest["server"]["via"] == via
    models = {m["name"]: m for m in manifest["models"]}
    assert models["gfpgan_v1_4"]["installed"] and models["gfpgan_v1_4"]["weights"] == "synthetic"
    assert models["face_detect_mtcnn"]["installed"] and manifest["timings"]["elapsed_s"] >= 0


def restore_portrait(found: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    image = cv2.imread("samples/portrait.jpg")
    with pytest.warns(SyntheticWeightsWarning, match="gfpgan_v1_4"):
        restored, metrics = found["run_restoration"](image)
    assert restored.shape == (2 * PORTRAIT_SIZE, 2 * PORTRAIT_SIZE, 3)
    assert restored.dtype == np.uint8
    assert metrics["faces_restored"] >= 1 and metrics["model_name"] == "GFPGANv1.4"
    assert "gfpgan_v1_4" in metrics["warning"] and metrics["synthetic"]
    assert metrics["device"] == {"requested": "auto", "placement": "server"}
    return restored, metrics


def test_the_seed_snippets_run_over_the_gateway_and_over_triton_giving_the_same_image(
    stack_env: pytest.MonkeyPatch, samples: Path, capsys: Any
) -> None:
    found = run_snippets()
    check_snippet_results(found, "rest", capsys)
    over_rest, rest_metrics = restore_portrait(found)
    assert rest_metrics["via"] == "rest" and rest_metrics["restoration_id"]

    stack_env.setenv("FACET_VIA", "grpc")
    found = run_snippets()
    check_snippet_results(found, "grpc", capsys)
    over_grpc, grpc_metrics = restore_portrait(found)
    assert grpc_metrics["via"] == "grpc" and grpc_metrics["model_version"] == "1"
    assert grpc_metrics["faces_restored"] == rest_metrics["faces_restored"]
    # The same pipeline and models on both sides: the same bytes.
    assert np.array_equal(over_rest, over_grpc)


def test_plan_of_a_group_photo_counts_its_faces_and_is_deterministic(
    stack_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    group = tmp_path / "group.png"
    group.write_bytes(group_photo_png())
    first, second = plan(str(group), {}), plan(str(group), {})
    assert asdict(first) == asdict(second)
    assert first.faces["count"] >= 6 and len(first.faces["sizes"]) == first.faces["count"]
    assert first.params == {
        "version": "1.4",
        "upscale": 2,
        "only_center_face": False,
        "face_detector_model": "mtcnn",
        "face_detector_score": 0.9,
        "weight": first.params["weight"],
    }
    assert first.postproc == {"background": "realesrgan"}
    blurred = cv2.GaussianBlur(cv2.imread(str(group)), (0, 0), 3)
    heavy = plan(blurred, {})
    assert heavy.reason == "heavy_degradation" and heavy.params["weight"] == 0.8, heavy.detail


def test_faces_come_back_over_grpc_and_are_refused_over_rest(
    stack_env: pytest.MonkeyPatch, tmp_path: Path, face_triton: TritonServer
) -> None:
    portrait = cv2.resize(astronaut(), (PORTRAIT_SIZE, PORTRAIT_SIZE))[..., ::-1]
    server = FacetServer.from_url(f"grpc://{face_triton.grpc_url}")
    with (
        warnings.catch_warnings(),
        FacetGFPGANRestorer(server=server) as restorer,
    ):
        warnings.simplefilter("ignore", SyntheticWeightsWarning)
        result = restorer.restore(
            portrait, {"upscale": 1, "save_faces": tmp_path / "faces", "bogus": 1}
        )
    count = result.metrics["faces_restored"]
    assert count >= 1 and len(result.cropped_faces) == len(result.restored_faces) == count
    assert all(Path(p).is_file() for p in result.cropped_faces + result.restored_faces)
    assert result.restored_face_images[0].shape == (512, 512, 3)
    assert result.restored_image is not None and result.restored_image.shape == portrait.shape
    assert result.metrics["ignored_options"] == ["bogus"]
    assert set(result.metrics["timings"]) >= {"detect_s", "restore_s", "total_s"}
    with FacetGFPGANRestorer() as over_rest, warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticWeightsWarning)
        with pytest.raises(BadRequestError, match="via='grpc'"):
            over_rest.restore(portrait, {"return_faces": True})
