"""`clients.gfpp` over a fake session (no server): the registry's answers and errors, plan's
face probe and options, the restorer's options, checks and result, the manifest, weight
checks, server selection, reading the gateway's /health, and the image conventions."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import text_format
from PIL import Image
from tritonclient.grpc import model_config_pb2 as mc

from clients.errors import NotFoundError, UnavailableError
from clients.gfpp import (
    BackendUnavailableError,
    FacetGFPGANRestorer,
    FacetServer,
    RestoreResult,
    RunManifest,
    SyntheticWeightsWarning,
    UnknownBackendError,
    UnknownWeightError,
    ensure_weight,
    get,
    list_backends,
    plan,
    write_manifest,
)
from clients.gfpp import session as session_module
from clients.gfpp.io.images import ImageInput, Pixels, decode_image, pixels_from_array, to_array
from clients.gfpp.names import (
    DETECTORS,
    RESTORER_INPUT,
    RESTORER_OUTPUT,
    UPSCALERS,
    VERSIONS,
    entry_point,
    served_models,
)
from clients.gfpp.rest_session import NO_FACES_OVER_REST, models_from_health
from clients.gfpp.session import Detection, Restored, RestoreRequest, ServedModel
from serving.launcher import free_port

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"
SYNTHETIC = "gfpgan_v1_4: synthetic weights: outputs are not meaningful"
FACE = Detection(
    box=(20.0, 20.0, 60.0, 70.0),
    score=0.99,
    landmarks=((30.0, 40.0), (50.0, 40.0), (40.0, 50.0), (32.0, 60.0), (48.0, 60.0)),
)


def model(name: str, **changes: Any) -> ServedModel:
    base = ServedModel(
        name=name,
        entry_point=entry_point(name),
        installed=True,
        ready=True,
        version="1",
        weights="package",
        licence="MIT",
        synthetic=False,
        warning=None,
    )
    return replace(base, **changes)


def served(**changes: ServedModel) -> dict[str, ServedModel]:
    models = {name: model(name) for name in served_models()}
    models["gfpgan_v1_4"] = model(
        "gfpgan_v1_4", weights="synthetic", synthetic=True, warning=SYNTHETIC
    )
    models["face_detect_scrfd"] = model("face_detect_scrfd", installed=False, ready=None)
    models.update(changes)
    return models


class FakeSession:
    """A server that answers from tables and records what it was asked."""

    def __init__(
        self,
        models: dict[str, ServedModel] | None = None,
        detections: Sequence[Detection] = (FACE,),
        detect_error: Exception | None = None,
        faces: int = 1,
    ) -> None:
        self.server = FacetServer(gateway_url="http://gateway.test", triton_url="triton.test:1")
        self.models = served() if models is None else models
        self.detections = list(detections)
        self.detect_error = detect_error
        self.faces = faces
        self.requests: list[RestoreRequest] = []
        self.closed = False

    def served_models(self) -> dict[str, ServedModel]:
        return self.models

    def detect(self, rgb: np.ndarray, *, detector: str, min_score: float) -> list[Detection]:
        if self.detect_error is not None:
            raise self.detect_error
        return [d for d in self.detections if d.score >= min_score]

    def restore(self, image: ImageInput, request: RestoreRequest) -> Restored:
        self.requests.append(request)
        rgb = image.pixels().rgb
        scaled = np.repeat(np.repeat(rgb, request.upscale, axis=0), request.upscale, axis=1)
        crop = np.full((512, 512, 3), (200, 100, 0), np.uint8)  # RGB: red-ish
        wanted = self.faces if request.want_faces else 0
        return Restored(
            rgb=scaled,
            alpha=None,
            faces_detected=self.faces,
            faces_restored=self.faces,
            warning=SYNTHETIC,
            timings={"total_s": 0.1},
            cropped_faces=[crop] * wanted,
            restored_faces=[crop] * wanted,
        )

    def close(self) -> None:
        self.closed = True


def photo(height: int = 40, width: int = 30) -> np.ndarray:
    """A BGR array whose channels differ, so an order mix-up shows."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 120, 250
    return image


# The registry --------------------------------------------------------------------------------


def test_list_backends_reports_what_the_server_has_installed() -> None:
    assert list_backends(server=FakeSession()) == {
        "gfpgan": True,
        "codeformer": False,
        "restoreformerpp": False,
        "ensemble": False,
    }
    missing = FakeSession(served(gfpgan_v1_4=model("gfpgan_v1_4", installed=False)))
    assert list_backends(server=missing)["gfpgan"] is False
    experimental = list_backends(True, server=FakeSession())
    assert {k: v for k, v in experimental.items() if v} == {"gfpgan": True}
    assert {"gfpgan-ort", "diffbir", "hypir", "guided"} <= set(experimental)


def test_list_backends_raises_when_the_server_cannot_be_reached() -> None:
    offline = FacetServer(gateway_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(UnavailableError, match="cannot reach"):
        list_backends(server=offline)


def test_get_returns_the_restorer_class_and_names_what_is_wrong_otherwise() -> None:
    assert get("gfpgan") is FacetGFPGANRestorer
    with pytest.raises(BackendUnavailableError, match="'codeformer' is not served by Facet"):
        get("codeformer")
    with pytest.raises(ImportError, match="restoreformer"):  # the seed raises ImportError too
        get("restoreformer")
    with pytest.raises(KeyError) as unknown:
        get("magic")
    assert isinstance(unknown.value, UnknownBackendError)
    assert str(unknown.value).startswith("unknown backend 'magic'; the seed's backends are:")


def test_open_session_closes_the_sessions_it_opens_and_only_those(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[FakeSession] = []

    def new_session(server: FacetServer) -> FakeSession:
        made.append(FakeSession())
        return made[-1]

    monkeypatch.setattr(session_module, "new_session", new_session)
    list_backends(server="http://gateway.test")
    assert made and made[0].closed
    given = FakeSession()
    list_backends(server=given)
    assert not given.closed


# plan ------------------------------------------------------------------------------------------


def test_plan_reports_the_faces_the_quality_and_the_restore_params() -> None:
    pl = plan(photo(120, 100), {"weight": 0.6, "upscale": 1}, server=FakeSession())
    assert pl.backend == "gfpgan" and pl.faces["count"] == 1 and pl.faces["restorable"] == 1
    assert pl.faces["sizes"] == [50.0] and pl.faces["eye_distances"] == [20.0]
    assert pl.params == {
        "version": "1.4",
        "upscale": 1,
        "only_center_face": False,
        "face_detector_model": "mtcnn",
        "face_detector_score": 0.9,
        "weight": 0.6,
    }
    assert pl.quality["niqe"] is None and pl.quality["face_blur_laplacian_var"] is not None
    assert pl.detail["server"]["via"] == "rest" and pl.detail["experimental"]["asked"] is False


def test_plan_without_a_reachable_detector_plans_from_the_image_and_says_so() -> None:
    failing = FakeSession(detect_error=UnavailableError("Triton at triton.test:1 is unavailable"))
    pl = plan(photo(), {}, server=failing)
    assert pl.faces["count"] is None and "unavailable" in pl.faces["error"]
    assert "unavailable" in pl.detail["face_probe_error"]
    assert pl.detail["decision_inputs"]["blur_measured_on"] == "image"
    no_scrfd = plan(photo(), {"face_detector_model": "scrfd"}, server=FakeSession())
    assert "no face_detect_scrfd installed" in no_scrfd.faces["error"]


def test_plan_of_a_photo_without_faces_says_no_faces() -> None:
    pl = plan(photo(), {}, server=FakeSession(detections=[]))
    assert pl.reason == "no_faces" and pl.faces["count"] == 0


def test_plan_refuses_options_the_server_cannot_honour() -> None:
    with pytest.raises(ValueError, match="retinaface_resnet50"):
        plan(photo(), {"detector": "retinaface_resnet50"}, server=FakeSession())
    with pytest.raises(ValueError, match=r"version '1\.3' is not served"):
        plan(photo(), {"version": "1.3"}, server=FakeSession())
    with pytest.raises(FileNotFoundError):
        plan("no/such/portrait.jpg", {}, server=FakeSession())


# The restorer --------------------------------------------------------------------------------


def test_restore_returns_the_image_in_the_callers_channel_order_with_the_seeds_fields() -> None:
    session = FakeSession()
    assert get("gfpgan") is FacetGFPGANRestorer
    restorer = FacetGFPGANRestorer(server=session)
    with pytest.warns(SyntheticWeightsWarning, match="gfpgan_v1_4"):
        restorer.prepare({"device": "cuda:0", "use_parse": True})
    result = restorer.restore(photo(), {"weight": 0.6, "upscale": 1, "eye_dist_threshold": 5})
    assert isinstance(result, RestoreResult) and result.restored_image is not None
    assert np.array_equal(result.restored_image, photo())  # BGR in, BGR out
    assert result.cropped_faces == [] and result.restored_faces == [] and result.input_path is None
    metrics = result.metrics
    assert metrics["warning"] == SYNTHETIC and metrics["synthetic"] is True
    assert metrics["device"] == {"requested": "cuda:0", "placement": "server"}
    assert metrics["ignored_options"] == ["use_parse"] and metrics["weight"] == 0.6
    assert (metrics["model_name"], metrics["model_path"]) == ("GFPGANv1.4", None)
    assert session.requests[-1] == RestoreRequest(weight=0.6, upscale=1)
    rgb = restorer.restore(photo()[..., ::-1], {"channel_order": "rgb", "upscale": 1})
    assert rgb.restored_image is not None
    assert np.array_equal(rgb.restored_image, photo()[..., ::-1])
    restorer.close()
    assert not session.closed  # a session passed in belongs to the caller


def test_restore_before_prepare_prepares_and_writes_the_result_and_faces(tmp_path: Path) -> None:
    source = tmp_path / "portrait.png"
    Image.fromarray(photo()[..., ::-1]).save(source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticWeightsWarning)
        result = FacetGFPGANRestorer(server=FakeSession(faces=2)).restore(
            str(source),
            {"save_faces": tmp_path / "faces", "output_path": tmp_path / "out" / "r.png"},
        )
    assert result.input_path == str(source) and result.restored_path == str(tmp_path / "out/r.png")
    assert Image.open(result.restored_path).size == (60, 80)
    assert [Path(p).name for p in result.cropped_faces] == [
        "portrait_00_cropped.png",
        "portrait_01_cropped.png",
    ]
    assert len(result.restored_faces) == 2 and all(Path(p).is_file() for p in result.restored_faces)
    assert result.restored_face_images[0][0, 0].tolist() == [0, 100, 200]  # BGR


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"aligned": True}, "aligned=True is not supported"),
        ({"paste_back": False}, "paste_back=False"),
        ({"eye_dist_threshold": 10}, "closer than 5 px"),
        ({"weight": 1.5}, "weight must be within 0..1"),
        ({"upscale": 8}, "upscale must be a whole number from 1 to 4"),
        ({"background": "swinir"}, "use 'realesrgan' or None"),
        ({"face_detector_score": 0}, r"\(0, 1\]"),
        ({"channel_order": "yuv"}, "channel_order"),
    ],
)
def test_restore_refuses_what_the_server_cannot_do(cfg: dict[str, Any], match: str) -> None:
    restorer = FacetGFPGANRestorer(server=FakeSession())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntheticWeightsWarning)
        restorer.prepare({})
    with pytest.raises(ValueError, match=match):
        restorer.restore(photo(), cfg)


def test_prepare_checks_the_models_it_needs_are_installed_and_ready() -> None:
    unready = FakeSession(served(face_detect_mtcnn=model("face_detect_mtcnn", ready=False)))
    with pytest.raises(UnavailableError, match="face_detect_mtcnn"):
        FacetGFPGANRestorer(server=unready).prepare({})
    without = FakeSession(served(realesrgan_x4plus=model("realesrgan_x4plus", installed=False)))
    with pytest.raises(NotFoundError, match="realesrgan_x4plus"):
        FacetGFPGANRestorer(bg_upsampler="realesrgan", server=without).prepare({})
    with pytest.raises(TypeError, match="cannot run on the server"):
        FacetGFPGANRestorer(bg_upsampler=object())


def test_faces_over_rest_are_refused_with_the_way_to_get_them() -> None:
    assert "via='grpc'" in NO_FACES_OVER_REST and "FACET_VIA=grpc" in NO_FACES_OVER_REST


# The manifest and weights ------------------------------------------------------------------


def test_write_manifest_adds_the_servers_models_and_the_timings(tmp_path: Path) -> None:
    man = RunManifest(args={"backend": "gfpgan"}, device="cpu", started_at=100.0, ended_at=103.5)
    man.record(RestoreResult(None, None, None, [], [], {"psnr": np.float32(30.5)}), image="a")
    path = write_manifest(tmp_path / "out" / "manifest.json", man, server=FakeSession())
    data = json.loads(path.read_text())
    assert data["args"] == {"backend": "gfpgan"} and data["device"] == "cpu"
    assert (
        data["server"]["via"] == "rest" and data["server"]["gateway_url"] == "http://gateway.test"
    )
    gfpgan = next(m for m in data["models"] if m["name"] == "gfpgan_v1_4")
    assert gfpgan["weights"] == "synthetic" and gfpgan["version"] == "1"
    assert data["timings"] == {"elapsed_s": 3.5} and data["results"][0]["metrics"]["psnr"] == 30.5
    assert data["results"][0]["image"] == "a" and set(data["env"]) >= {"python", "packages"}
    assert not list((tmp_path / "out").glob(".*.part"))


def test_a_manifest_records_an_unreachable_server_instead_of_failing(tmp_path: Path) -> None:
    offline = FacetServer(gateway_url=f"http://127.0.0.1:{free_port()}")
    man = RunManifest(args={}, device="cpu")
    data = json.loads(write_manifest(tmp_path / "m.json", man, server=offline).read_text())
    assert "cannot reach" in data["server"]["error"] and data["models"] == []
    assert data["ended_at"] >= data["started_at"] and man.ended_at is None
    given = RunManifest(args={}, device="cpu", models=[{"name": "mine"}])
    written = json.loads(write_manifest(tmp_path / "g.json", given, server=offline).read_text())
    assert written["models"] == [{"name": "mine"}] and "error" not in written["server"]


def test_ensure_weight_checks_the_server_and_downloads_nothing() -> None:
    with pytest.warns(SyntheticWeightsWarning, match="gfpgan_v1_4"):
        check = ensure_weight("GFPGANv1.4", server=FakeSession())
    location, sha256 = check  # the seed's (path, sha256)
    assert location == "rest://gateway.test/gfpgan_v1_4" and sha256 is None
    assert check.served.weights == "synthetic" and check.model == "gfpgan_v1_4"
    assert ensure_weight("realesrgan_x4plus", server=FakeSession()).served.weights == "package"
    with pytest.raises(NotFoundError, match=r"Facet serves no model for GFPGANv1\.3"):
        ensure_weight("GFPGANv1.3", server=FakeSession())
    with pytest.raises(UnknownWeightError, match="unknown weight name 'nope'"):
        ensure_weight("nope", server=FakeSession())
    bare = FakeSession(served(realesr_general_x4v3=model("realesr_general_x4v3", installed=False)))
    with pytest.raises(NotFoundError, match="does not serve realesr-general-x4v3"):
        ensure_weight("realesr-general-x4v3", server=bare)


# Servers, health, images -----------------------------------------------------------------------


def test_the_server_comes_from_the_environment_or_one_url() -> None:
    env = {
        "FACET_VIA": "grpc",
        "FACET_TRITON_URL": "triton:9001",
        "FACET_GATEWAY_URL": "http://g:1",
    }
    assert FacetServer.from_env(env) == FacetServer("grpc", "http://g:1", "triton:9001")
    assert FacetServer.from_env({}) == FacetServer()
    assert FacetServer.from_url("http://g:2/", {}).via == "rest"
    assert FacetServer.from_url("http://g:2/", {}).gateway_url == "http://g:2"
    assert FacetServer.from_url("grpc://t:3", {}) == FacetServer(via="grpc", triton_url="t:3")
    assert FacetServer.from_url("t:4", {}).url == "t:4"
    with pytest.raises(ValueError, match="FACET_VIA"):
        FacetServer.from_env({"FACET_VIA": "carrier-pigeon"})
    with pytest.raises(ValueError, match="not a gateway URL"):
        FacetServer.from_url("ftp://x/y", {})


def test_the_gateways_health_document_becomes_served_models() -> None:
    health = {
        "status": "healthy",
        "triton": {
            "server_live": True,
            "server_ready": True,
            "models": {"restore_gfpgan_v1_4": True},
        },
        "models": {
            "realesrgan_x4plus": {
                "installed": True,
                "weights": "package",
                "synthetic": False,
                "ready": True,
            },
            "gfpgan_v1_4": {
                "installed": True,
                "weights": "synthetic",
                "synthetic": True,
                "licence": "n/a",
                "warning": SYNTHETIC,
            },
            "face_detect_mtcnn": {"installed": True, "weights": "package", "synthetic": False},
            "someone_elses_model": {"installed": True},
        },
    }
    models = models_from_health(health)
    assert set(models) == {"realesrgan_x4plus", "gfpgan_v1_4", "face_detect_mtcnn"}
    assert models["gfpgan_v1_4"].ready is True and models["gfpgan_v1_4"].warning == SYNTHETIC
    assert models["face_detect_mtcnn"].ready is None and models["realesrgan_x4plus"].ready is True
    down = models_from_health({**health, "triton": {"server_ready": False}})
    assert all(m.ready is False for m in down.values())


def test_arrays_are_bgr_by_default_and_keep_their_alpha() -> None:
    bgra = np.dstack([photo(), np.full((40, 30), 77, np.uint8)])
    pixels = pixels_from_array(bgra, "bgr")
    assert pixels.rgb[0, 0].tolist() == [250, 120, 10] and pixels.alpha is not None
    assert np.array_equal(to_array(pixels, "bgr"), bgra)
    grey = pixels_from_array(np.full((4, 5), 9, np.uint8), "bgr")
    assert grey.rgb.shape == (4, 5, 3) and grey.alpha is None
    with pytest.raises(ValueError, match="uint8"):
        pixels_from_array(np.zeros((4, 4, 3), np.float32), "bgr")
    encoded = ImageInput(pixels=pixels).encoded()
    decoded = decode_image(encoded)
    assert decoded.alpha is not None
    assert np.array_equal(decoded.rgb, pixels.rgb) and np.array_equal(decoded.alpha, pixels.alpha)
    with pytest.raises(ValueError, match="not a readable image"):
        decode_image(b"not an image")
    assert isinstance(ImageInput.from_source(encoded).pixels(), Pixels)


def test_the_model_names_are_the_committed_configs() -> None:
    configs = {
        path.parent.name: text_format.Parse(path.read_text(), mc.ModelConfig())
        for path in REPOSITORY.glob("*/config.pbtxt")
    }
    for name in [*VERSIONS.values(), *DETECTORS.values(), *UPSCALERS]:
        assert name in configs and entry_point(name) in configs, name
    restorer = configs[entry_point(VERSIONS["1.4"])]
    assert [t.name for t in restorer.input] == [RESTORER_INPUT]
    assert [t.name for t in restorer.output] == [RESTORER_OUTPUT]
    for detector in DETECTORS.values():
        config = configs[detector]
        assert {"image", "score_threshold"} <= {t.name for t in config.input}
        assert [t.name for t in config.output] == ["boxes", "scores", "landmarks"]
