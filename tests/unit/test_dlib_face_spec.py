"""The dlib_resnet_v1 spec: its pinned package file, its synthetic fallback, its ensemble, and
the vector form of the reference check it uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from export.arch.dlib_resnet import DEFAULT_MEANS
from export.errors import WeightsError
from export.models import dlib_face
from export.models.dlib_face import DLIB_RESNET_V1, locate_model_file, synthetic_at_dlib_scale
from export.registry import ENSEMBLES, expand
from export.spec import ReferenceCheck, VectorTolerance
from export.validate import check_vector_against_reference, open_session
from export.weights import synthetic_weights

TOLERANCE = VectorTolerance(max_abs_error=1e-3, min_cosine=0.999)


def identity_session(tmp_path: Path, width: int) -> object:
    """An ONNX graph that returns its float input: `run` decides what the reference says."""
    node = helper.make_node("Identity", ["x"], ["y"])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", width])
    model = helper.make_model(
        helper.make_graph([node], "identity", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 9
    onnx.save(model, tmp_path / "identity.onnx")
    return open_session(tmp_path / "identity.onnx")


def run_vector_check(tmp_path: Path, reference_vector: np.ndarray) -> list:
    feed = np.array([[0.6, -0.8, 0.0]], np.float32)
    return check_vector_against_reference(
        "m",
        identity_session(tmp_path, 3),
        lambda _: reference_vector,
        np.zeros((1, 1, 3), np.uint8),
        feed,
        TOLERANCE,
        "onnxruntime_vs_ref",
        "label",
    )


def test_a_vector_within_tolerance_passes_on_both_measures(tmp_path) -> None:
    results = run_vector_check(tmp_path, np.array([0.6, -0.8, 0.0005]))
    assert [(r.metric, r.passed) for r in results] == [
        ("max_abs_error", True),
        ("cosine_similarity", True),
    ]
    assert results[0].value == pytest.approx(0.0005, abs=1e-7)


def test_a_vector_that_points_elsewhere_fails(tmp_path) -> None:
    results = run_vector_check(tmp_path, np.array([0.8, 0.6, 0.0]))
    assert not any(r.passed for r in results)
    assert results[1].value == pytest.approx(0.0, abs=1e-6)


def test_a_vector_of_another_length_fails_on_shape(tmp_path) -> None:
    (result,) = run_vector_check(tmp_path, np.zeros(4))
    assert result.metric == "shape" and not result.passed and "(3,)" in result.detail


def test_a_reference_check_compares_either_images_or_vectors() -> None:
    common: dict[str, Any] = {"name": "r", "description": "", "applies_to": ("package",)}
    common |= {"run": lambda a: a, "image": lambda: np.zeros(1)}
    with pytest.raises(ValueError, match="exactly one"):
        ReferenceCheck(**common, min_psnr_db=None)
    with pytest.raises(ValueError, match="exactly one"):
        ReferenceCheck(**common, min_psnr_db=40.0, vector=TOLERANCE)
    reference = DLIB_RESNET_V1.reference
    assert reference is not None and reference.vector is not None
    assert reference.min_psnr_db is None and reference.applies_to == ("package",)


def test_the_package_file_is_pinned_by_version_and_hash(monkeypatch) -> None:
    (path,) = locate_model_file()
    assert path.name == "dlib_face_recognition_resnet_model_v1.dat"
    monkeypatch.setattr(dlib_face, "MODEL_SHA256", "0" * 64)
    with pytest.raises(WeightsError, match="sha256"):
        locate_model_file()
    monkeypatch.setattr(dlib_face, "PACKAGE_VERSION", "0.1.3")
    with pytest.raises(WeightsError, match=r"pinned 0\.1\.3"):
        locate_model_file()


def test_synthetic_weights_keep_scales_near_one_and_dlibs_means() -> None:
    state = synthetic_at_dlib_scale(synthetic_weights(DLIB_RESNET_V1.build_tiny()).state_dict)
    assert state["input.mean"].tolist() == pytest.approx(list(DEFAULT_MEANS))
    scales = torch.cat([t for k, t in state.items() if k.endswith(".scale")])
    assert float(scales.min()) > 0.9 and float(scales.max()) < 1.1


def test_the_uint8_ensemble_runs_face_to_float_then_the_model() -> None:
    ensemble = ENSEMBLES["embed_dlib_resnet_v1"]
    assert [s.model for s in ensemble.steps] == ["face_to_float", "dlib_resnet_v1"]
    assert [(t.name, t.dtype, t.dims) for t in ensemble.inputs] == [
        ("face", "TYPE_UINT8", (150, 150, 3))
    ]
    assert [(t.name, t.dtype, t.dims) for t in ensemble.outputs] == [
        ("embedding", "TYPE_FP32", (128,))
    ]
    assert [s.name for s in expand(["dlib_resnet_v1"])] == ["face_to_float", "dlib_resnet_v1"]
