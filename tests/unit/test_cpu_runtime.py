"""The CPU runtime is chosen by measurement, OpenVINO only with a clear lead, and the install
makes config.pbtxt the chosen runtime's alternative config."""

from __future__ import annotations

import json
from pathlib import Path

from export.cpu_runtime import ORT_F32, OV_BF16, OV_F32, pick
from export.registry import MODELS
from export.repository import stamp_weight_facts
from export.triton_config import config_files, parse_config, write_configs


def test_the_fastest_validated_candidate_wins():
    timings = {"onnxruntime_f32": 100.0, "openvino_f32": 60.0, "openvino_bf16": 30.0}
    choice = pick([ORT_F32, OV_F32, OV_BF16], timings, [], [])
    assert (choice.runtime, choice.precision) == ("openvino", "bf16")
    assert "3.33x" in choice.reason


def test_a_lead_below_the_margin_keeps_onnx_runtime():
    timings = {"onnxruntime_f32": 100.0, "openvino_f32": 97.0}
    choice = pick([ORT_F32, OV_F32], timings, [], [])
    assert (choice.runtime, choice.precision) == ("onnxruntime", "f32")
    assert "kept" in choice.reason


def test_a_candidate_that_failed_its_check_is_never_chosen_however_fast():
    timings = {"onnxruntime_f32": 100.0, "openvino_f32": 90.0, "openvino_bf16": 10.0}
    choice = pick([ORT_F32, OV_F32], timings, [], [])  # bf16 not eligible
    assert (choice.runtime, choice.precision) == ("openvino", "f32")


def install_with_choice(tmp_path: Path, runtime: str, precision: str) -> Path:
    """A model folder with the configs the specs render (not the working tree's, which a local
    `make models` may have rewritten) and a manifest recording `runtime`."""
    write_configs(tmp_path, config_files([MODELS["realesr_general_x4v3"]], []))
    model_dir = tmp_path / "realesr_general_x4v3"
    committed = parse_config(model_dir / "config.pbtxt")
    manifest = {
        "weights_kind": "synthetic",
        "weights_licence": committed.parameters["weights_licence"].string_value,
        "cpu_runtime": {"runtime": runtime, "precision": precision},
    }
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    return model_dir


def test_the_install_serves_the_chosen_runtime_with_its_precision(tmp_path):
    model_dir = install_with_choice(tmp_path, "openvino", "bf16")
    rewritten = stamp_weight_facts(model_dir)
    config = parse_config(model_dir / "config.pbtxt")
    assert model_dir / "config.pbtxt" in rewritten
    assert config.backend == "facet_openvino"
    assert config.parameters["precision"].string_value == "bf16"
    assert config.parameters["weights_kind"].string_value == "synthetic"
    alternative = parse_config(model_dir / "configs" / "cpu_ort.pbtxt")
    assert alternative.backend == "facet_ort"  # still selectable with --model-config-name


def test_an_install_that_chose_onnx_runtime_leaves_the_committed_config_alone(tmp_path):
    model_dir = install_with_choice(tmp_path, "onnxruntime", "f32")
    before = (model_dir / "config.pbtxt").read_text()
    assert stamp_weight_facts(model_dir) == []
    assert (model_dir / "config.pbtxt").read_text() == before
