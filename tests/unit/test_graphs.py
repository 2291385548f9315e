"""The uint8 pre/post graphs equal their numpy definitions bit for bit."""

import numpy as np
import onnx

from export.graphs import (
    GRAPHS,
    build_image_to_tensor,
    build_tensor_to_image,
    image_to_tensor_reference,
    tensor_to_image_reference,
)
from export.validate import open_session


def _run(model: onnx.ModelProto, array: np.ndarray, tmp_path, name: str) -> np.ndarray:
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    session = open_session(path)
    return session.run(None, {session.get_inputs()[0].name: array})[0]


def test_image_to_tensor_scales_to_unit_range_and_moves_channels_first(tmp_path) -> None:
    image = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    out = _run(build_image_to_tensor(), image, tmp_path, "pre")
    assert out.shape == (2, 3, 4, 5) and out.dtype == np.float32
    np.testing.assert_array_equal(out, image_to_tensor_reference(image))
    assert out[1, 2, 3, 4] == np.float32(image[1, 3, 4, 2]) / np.float32(255)


def test_tensor_to_image_clamps_and_rounds_half_to_even(tmp_path) -> None:
    tensor = np.zeros((1, 3, 1, 6), np.float32)
    tensor[0, :, 0, :] = np.array([-0.5, 2.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.5], np.float32)
    out = _run(build_tensor_to_image(), tensor, tmp_path, "post")
    assert out.shape == (1, 1, 6, 3) and out.dtype == np.uint8
    assert out[0, 0, :, 0].tolist() == [0, 255, 0, 2, 2, 128]
    np.testing.assert_array_equal(out, tensor_to_image_reference(tensor))


def test_every_graph_matches_its_reference_on_its_sample(tmp_path) -> None:
    for spec in GRAPHS.values():
        sample = spec.sample()
        np.testing.assert_array_equal(
            _run(spec.build(), sample, tmp_path, spec.name), spec.reference(sample)
        )
