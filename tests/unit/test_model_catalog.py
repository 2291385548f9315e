"""The gateway reads model facts from Triton's configs: every name, dtype and limit it relies on
must be what the committed configs say, and weight facts resolve through composite models."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from export.models.realesrgan import SR_PROFILE
from gateway.faces import swap_sessions
from gateway.faces.align import ARCFACE_SIZE, FFHQ_SIZE
from gateway.faces.swap_pipeline import EMBEDDING_SIZE, SWAPPER_SIZE
from gateway.faces.triton_sessions import (
    DETECTOR_INPUTS,
    DETECTOR_OUTPUTS,
    DETECTORS,
    RESTORE_ENSEMBLE_PREFIX,
    RESTORER_INPUT,
    RESTORER_OUTPUT,
    RESTORERS,
)
from gateway.pipelines import triton_upscaler
from gateway.settings import Settings
from triton_core.catalog import ModelCatalog, ModelFacts, facts_from_config
from triton_core.tiling import window_size

REPOSITORY = Path(__file__).resolve().parents[2] / "model_repository"


def committed_catalog() -> ModelCatalog:
    configs = [
        text_format.Parse(path.read_text(), mc.ModelConfig())
        for path in sorted(REPOSITORY.glob("*/config.pbtxt"))
    ]
    return ModelCatalog(facts_from_config(config) for config in configs)


CATALOG = committed_catalog()


def facts(name: str) -> ModelFacts:
    found = CATALOG.get(name)
    assert found is not None, f"no committed config for '{name}'"
    return found


def test_the_upscale_ensemble_has_the_tensors_the_gateway_sends_and_reads():
    ensemble = facts(f"upscale_{Settings().upscale_model}")
    assert ensemble.input(triton_upscaler.INPUT).datatype == "UINT8"
    assert ensemble.input(triton_upscaler.INPUT).dims == (-1, -1, 3)
    assert ensemble.output(triton_upscaler.OUTPUT).datatype == "UINT8"
    assert ensemble.max_batch_size >= 1


@pytest.mark.parametrize("model", sorted(RESTORERS.values()))
def test_each_restore_ensemble_takes_the_crops_the_gateway_cuts(model):
    ensemble = facts(f"{RESTORE_ENSEMBLE_PREFIX}{model}")
    assert ensemble.input(RESTORER_INPUT).dims == (FFHQ_SIZE, FFHQ_SIZE, 3)
    assert ensemble.input(RESTORER_INPUT).datatype == "UINT8"
    assert ensemble.output(RESTORER_OUTPUT).dims == (FFHQ_SIZE, FFHQ_SIZE, 3)


@pytest.mark.parametrize("model", sorted(DETECTORS.values()))
def test_each_detector_has_the_inputs_and_outputs_the_gateway_uses(model):
    detector = facts(model)
    for name, datatype in DETECTOR_INPUTS.items():
        assert detector.input(name).datatype == datatype
    for name in DETECTOR_OUTPUTS:
        detector.output(name)


def test_the_tensorrt_profile_is_tuned_for_the_window_the_gateway_sends():
    settings = Settings()
    window = window_size(settings.tile_size, settings.tile_pad)
    assert SR_PROFILE.opt_shape[2:] == (window, window)
    batch = facts(f"upscale_{settings.upscale_model}").max_batch_size
    assert SR_PROFILE.min_shape[0] <= SR_PROFILE.opt_shape[0] <= batch <= SR_PROFILE.max_shape[0]


def test_a_synthetic_model_inside_an_ensemble_makes_the_ensemble_synthetic():
    weights = CATALOG.weights(f"{RESTORE_ENSEMBLE_PREFIX}gfpgan_v1_4")
    assert weights.kind == "synthetic" and weights.synthetic_models == ("gfpgan_v1_4",)
    assert weights.warning is not None and "gfpgan_v1_4" in weights.warning


def test_a_bls_detector_takes_the_weight_facts_of_the_nets_it_calls():
    weights = CATALOG.weights("face_detect_mtcnn")
    assert weights.kind == "package" and not weights.synthetic
    assert any("MIT" in licence for licence in weights.licences)


def test_pre_and_post_graphs_add_no_weight_kind_of_their_own():
    assert CATALOG.weights("upscale_realesrgan_x4plus").kind == "package"


def test_a_model_the_catalog_does_not_know_is_never_called_real():
    weights = ModelCatalog().weights("restore_gfpgan_v1_4")
    assert weights.kind == "unknown" and not weights.synthetic


def test_listed_but_unready_models_count_as_installed_not_as_known():
    catalog = ModelCatalog([], listed=["restore_gfpgan_v1_4"])
    assert catalog.is_installed("restore_gfpgan_v1_4")
    assert "restore_gfpgan_v1_4" not in catalog


def config_at(path: Path) -> mc.ModelConfig:
    return text_format.Parse(path.read_text(), mc.ModelConfig())


def test_each_model_says_the_execution_provider_its_config_asks_for():
    repository = REPOSITORY
    assert facts("realesrgan_x4plus").execution == "cpu"
    assert facts("gfpgan_v1_4").execution == "openvino"
    assert facts("restore_gfpgan_v1_4").execution is None  # an ensemble runs nothing itself
    gpu = config_at(repository / "gfpgan_v1_4" / "configs" / "gpu_ort_trt.pbtxt")
    plan = config_at(repository / "gfpgan_v1_4" / "configs" / "gpu_trt_plan.pbtxt")
    assert facts_from_config(gpu).execution == "tensorrt"
    assert facts_from_config(plan).execution == "tensorrt"


def test_an_ensemble_reports_the_providers_of_every_step():
    assert CATALOG.executions("restore_gfpgan_v1_4") == ["cpu", "openvino"]


def test_the_swap_sessions_send_and_read_what_the_committed_configs_declare():
    embedder = facts(swap_sessions.EMBEDDER)
    assert embedder.input(swap_sessions.EMBEDDER_INPUT).dims == (ARCFACE_SIZE, ARCFACE_SIZE, 3)
    assert embedder.input(swap_sessions.EMBEDDER_INPUT).datatype == "UINT8"
    assert embedder.output(swap_sessions.EMBEDDER_OUTPUT).dims == (EMBEDDING_SIZE,)
    latent = facts(swap_sessions.LATENT_MODEL)
    assert latent.input(swap_sessions.LATENT_INPUT).dims == (EMBEDDING_SIZE,)
    assert latent.output(swap_sessions.LATENT_OUTPUT).dims == (EMBEDDING_SIZE,)
    swapper = facts(swap_sessions.SWAPPER)
    assert swapper.input(swap_sessions.SWAPPER_TARGET).dims == (SWAPPER_SIZE, SWAPPER_SIZE, 3)
    assert swapper.input(swap_sessions.SWAPPER_TARGET).datatype == "UINT8"
    assert swapper.input(swap_sessions.SWAPPER_SOURCE).dims == (EMBEDDING_SIZE,)
    assert swapper.output(swap_sessions.SWAPPER_OUTPUT).dims == (SWAPPER_SIZE, SWAPPER_SIZE, 3)
    for model in swap_sessions.SWAP_MODELS:
        assert facts(model).max_batch_size >= 1


def test_the_clip_session_sends_and_reads_what_the_committed_configs_declare():
    from export.models.clip import CLIP_VIT_B32_VISUAL
    from gateway.context import clip_session

    image = facts(clip_session.IMAGE_MODEL)
    side = clip_session.IMAGE_SIZE
    assert image.input(clip_session.IMAGE_INPUT).dims == (side, side, 3)
    assert image.input(clip_session.IMAGE_INPUT).datatype == "UINT8"
    assert image.output(clip_session.IMAGE_OUTPUT).dims == (clip_session.EMBEDDING_SIZE,)
    assert image.max_batch_size >= 1
    profile = CLIP_VIT_B32_VISUAL.tensorrt
    assert profile is not None and profile.opt_shape[1:] == (side, side, 3)
    assert profile.min_shape[0] <= profile.opt_shape[0] <= image.max_batch_size
    assert image.max_batch_size <= profile.max_shape[0]
    text = facts(clip_session.TEXT_MODEL)
    assert text.input(clip_session.TEXT_INPUT).datatype == "STRING"
    assert text.output(clip_session.TEXT_OUTPUT).dims == (-1, clip_session.EMBEDDING_SIZE)
    assert text.components == (clip_session.TEXT_ENCODER,)
    assert int(text.parameters[clip_session.MAX_TEXTS_PARAMETER]) >= 1
    encoder = facts(clip_session.TEXT_ENCODER)
    assert encoder.output("embedding").dims == (clip_session.EMBEDDING_SIZE,)
    assert int(text.parameters["encoder_max_batch"]) == encoder.max_batch_size


def test_the_object_and_text_sessions_send_and_read_what_the_committed_configs_declare():
    from gateway.context import objects_session, text_session

    detector = facts(objects_session.MODEL)
    for name, datatype in objects_session.INPUTS.items():
        assert detector.input(name).datatype == datatype
    assert [detector.output(name).name for name in objects_session.OUTPUTS] == list(
        objects_session.OUTPUTS
    )
    assert detector.output("label_names").datatype == "STRING"
    text = facts(text_session.MODEL)
    assert text.input(text_session.INPUT).datatype == "STRING"
    assert text.output(text_session.OUTPUT).dims == (-1, 384)
    assert int(text.parameters[text_session.MAX_TEXTS_PARAMETER]) >= 1


def test_the_blip_captioner_sends_and_reads_what_the_committed_configs_declare():
    from gateway.context import blip_session

    captioner = facts(blip_session.MODEL)
    image = captioner.input(blip_session.IMAGE_INPUT)
    side = blip_session.IMAGE_SIZE
    assert image.datatype == "UINT8" and image.dims == (-1, side, side, 3)
    assert captioner.input(blip_session.NUM_BEAMS_INPUT).datatype == "INT32"
    assert captioner.input(blip_session.MAX_NEW_TOKENS_INPUT).datatype == "INT32"
    assert captioner.output(blip_session.CAPTION_OUTPUT).datatype == "STRING"
    assert captioner.max_batch_size == 0 and blip_session.request_limit(captioner) >= 1
    for parameter in (
        blip_session.MAX_NUM_BEAMS_PARAMETER,
        blip_session.MAX_NEW_TOKENS_PARAMETER,
    ):
        assert int(captioner.parameters[parameter]) >= 1
    vision = facts(captioner.components[0])
    assert vision.input("image").dims == (side, side, 3)
    weights = CATALOG.weights(blip_session.MODEL)
    assert weights.synthetic_models == tuple(sorted(captioner.components))
