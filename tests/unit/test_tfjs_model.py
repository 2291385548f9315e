"""Reading TF.js graph models: weight shards, quantisation, references and signatures."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from export.errors import ConversionError
from export.tfjs_model import decode_weight, parse_reference, read_model, read_weights
from tests.unit import tfjs_fixtures as tf
from tests.unit.tfjs_fixtures import TfjsModel, convert_and_run

RNG = np.random.default_rng(3)


@pytest.mark.parametrize("kind", ["float16", "uint8", "uint16"])
def test_quantised_weights_are_decoded_as_tfjs_decodes_them(tmp_path, kind) -> None:
    x = RNG.standard_normal((1, 5, 5, 2)).astype(np.float32)
    model = TfjsModel(x.shape)
    w = model.quantised_const("w", RNG.standard_normal((3, 3, 2, 3)), kind)
    model.op("conv", "Conv2D", ["x", "w"], strides=[1, 1, 1, 1], padding="SAME")
    (got,), _ = convert_and_run(model, tmp_path, ["conv:0"], x)
    np.testing.assert_allclose(got, tf.conv2d(x, w, 1, "SAME"), atol=1e-4)
    stored = read_model(tmp_path / "model.json").constants["w"]
    np.testing.assert_array_equal(stored, w)


def test_affine_quantisation_uses_float64_then_rounds_int32_halves_up() -> None:
    codes = np.array([0, 1, 2, 255], np.uint8).tobytes()
    spec = {
        "name": "w",
        "shape": [4],
        "dtype": "float32",
        "quantization": {"dtype": "uint8", "scale": 0.1, "min": -1.0},
    }
    value, size = decode_weight(spec, codes, 0)
    assert size == 4 and value.dtype == np.float32
    np.testing.assert_array_equal(value, np.array([-1.0, -0.9, -0.8, 24.5], np.float32))
    spec = {
        "name": "n",
        "shape": [4],
        "dtype": "int32",
        "quantization": {"dtype": "uint8", "scale": 0.5, "min": 0.0},
    }
    value, _ = decode_weight(spec, np.array([1, 3, 4, 5], np.uint8).tobytes(), 0)
    np.testing.assert_array_equal(value, [1, 2, 2, 3])  # 0.5 → 1, 1.5 → 2, 2.5 → 3


def test_weights_run_across_shards_and_groups_in_manifest_order(tmp_path) -> None:
    a, b = np.arange(6, dtype=np.float32), np.arange(3, dtype=np.int32)
    data = a.tobytes() + b.tobytes()
    (tmp_path / "s1.bin").write_bytes(data[:10])
    (tmp_path / "s2.bin").write_bytes(data[10:])
    c = np.array([7.5], np.float32)
    (tmp_path / "g2.bin").write_bytes(c.tobytes())
    manifest: list[dict[str, Any]] = [
        {
            "paths": ["s1.bin", "s2.bin"],
            "weights": [
                {"name": "a", "shape": [2, 3], "dtype": "float32"},
                {"name": "b", "shape": [3], "dtype": "int32"},
            ],
        },
        {"paths": ["g2.bin"], "weights": [{"name": "c", "shape": [], "dtype": "float32"}]},
    ]
    weights = read_weights(manifest, tmp_path)
    np.testing.assert_array_equal(weights["a"], a.reshape(2, 3))
    np.testing.assert_array_equal(weights["b"], b)
    assert weights["c"].shape == () and float(weights["c"]) == 7.5


def test_a_manifest_that_does_not_match_its_shards_is_refused(tmp_path) -> None:
    (tmp_path / "s.bin").write_bytes(b"\0" * 12)
    manifest: list[dict[str, Any]] = [
        {"paths": ["s.bin"], "weights": [{"name": "a", "shape": [2], "dtype": "float32"}]}
    ]
    with pytest.raises(ConversionError, match="12 bytes, the manifest describes 8"):
        read_weights(manifest, tmp_path)
    manifest[0]["weights"][0]["shape"] = [4]
    with pytest.raises(ConversionError, match="data ends first"):
        read_weights(manifest, tmp_path)


def test_string_weights_are_refused(tmp_path) -> None:
    spec = {"name": "s", "shape": [1], "dtype": "string"}
    with pytest.raises(ConversionError, match="not supported"):
        decode_weight(spec, b"", 0)


def test_references_and_control_inputs() -> None:
    assert parse_reference("a/b") == ("a/b", 0)
    assert parse_reference("split:1") == ("split", 1)


def test_a_graph_without_signature_outputs_what_nothing_consumes(tmp_path) -> None:
    model = TfjsModel((2,))
    model.op("a", "Relu", ["x"])
    model.op("b", "Sigmoid", ["a", "^x"])  # a control input is not data
    path = model.write(tmp_path, ["b:0"])
    raw = json.loads(path.read_text())
    del raw["signature"]
    path.write_text(json.dumps(raw))
    graph = read_model(path)
    assert graph.outputs == (("b", 0),)
    assert graph.node("b").inputs == (("a", 0),)


def test_other_formats_and_missing_weights_are_refused(tmp_path) -> None:
    model = TfjsModel((2,))
    model.const("w", np.ones(2, np.float32))
    path = model.write(tmp_path, ["w:0"])
    raw = json.loads(path.read_text())
    raw["weightsManifest"][0]["weights"] = []
    (tmp_path / "group1-shard1of1.bin").write_bytes(b"")
    path.write_text(json.dumps(raw))
    with pytest.raises(ConversionError, match="Const nodes without a weight"):
        read_model(path)
    raw["format"] = "layers-model"
    path.write_text(json.dumps(raw))
    with pytest.raises(ConversionError, match="not 'graph-model'"):
        read_model(path)
